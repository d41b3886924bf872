//! Bedrock for the tests: the real adapter over `aws-smithy-mocks` answers, and the
//! orchestrator wired from an environment as its Lambda wires it.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_bedrockruntime::config::retry::RetryConfig;
use aws_sdk_bedrockruntime::operation::converse::ConverseOutput;
use aws_sdk_bedrockruntime::types::{ContentBlock, ConversationRole, Message, StopReason};
use aws_smithy_mocks::{Rule, RuleMode, mock_client};
use referral_aws::bedrock::{BedrockConfig, BedrockGenerator};
use referral_aws::dynamo::DynamoMessageStore;
use referral_domain::env::Vars;
use referral_domain::fallback::FallbackGenerator;
use referral_domain::orchestrator::Orchestrator;
use referral_orchestrator::{Config, ProductionGenerator};

/// The adapter over `rules` (whichever matches, in turn), with the SDK's retries off so
/// that each mocked answer meets exactly the call the adapter makes.
pub fn mocked_bedrock(rules: &[&Rule]) -> BedrockGenerator {
    let client = mock_client!(
        aws_sdk_bedrockruntime,
        RuleMode::MatchAny,
        rules.iter().copied(),
        |config| config.retry_config(RetryConfig::disabled())
    );
    BedrockGenerator::new(
        client,
        BedrockConfig {
            model_id: "anthropic.claude-3-haiku-20240307-v1:0".to_owned(),
            max_tokens: 400,
            temperature: 0.4,
            timeout: Duration::from_secs(5),
        },
    )
}

/// The orchestrator as the Lambda builds it from `env` (its `Config`: table, policy,
/// throttling), over `bedrock` with the template behind it; panics on a bad environment,
/// which is the test's own mistake.
pub fn lambda_orchestrator(
    sdk: &SdkConfig,
    env: &[(&str, &str)],
    bedrock: BedrockGenerator,
) -> Orchestrator<ProductionGenerator, DynamoMessageStore> {
    let config = Config::from_vars(&Vars::fixed(env))
        .unwrap_or_else(|error| panic!("the function's configuration: {error}"));
    Orchestrator::new(
        FallbackGenerator::over_template(bedrock),
        config.message_store(sdk),
        config.orchestrator_config(),
    )
}

/// A Converse answer the adapter accepts: a catalogue service and a message with the offer.
pub fn usable_answer() -> ConverseOutput {
    let answer = serde_json::json!({
        "recommended_service": "home_protection_plan",
        "message": "Thank you for trusting us. Know a neighbour who would love our home \
                    protection plan? Refer them and you both get $25 off.",
    });
    ConverseOutput::builder()
        .output(aws_sdk_bedrockruntime::types::ConverseOutput::Message(
            Message::builder()
                .role(ConversationRole::Assistant)
                .content(ContentBlock::Text(answer.to_string()))
                .build()
                .unwrap_or_else(|error| panic!("a Converse message: {error}")),
        ))
        .stop_reason(StopReason::EndTurn)
        .build()
        .unwrap_or_else(|error| panic!("a Converse output: {error}"))
}
