//! The model behind [`MessageGenerator`]: Amazon Bedrock's Converse API.
//!
//! The model is asked for one JSON object, `{"recommended_service": "<catalogue id>",
//! "message": "<text>"}` (the system prompt says so); anything else is an unusable answer,
//! which the caller's fallback turns into a template message. The prompt and the answer
//! are never logged: both can carry customer data.

use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::operation::converse::{ConverseError, ConverseOutput};
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, InferenceConfiguration, Message, StopReason, SystemContentBlock,
};
use referral_domain::answer::{Answer, AnswerError, parse_answer};
use referral_domain::env::{EnvError, Vars};
use referral_domain::ports::{
    Generated, GenerationError, GenerationRequest, MessageGenerator, TokenUsage,
};
use referral_domain::prompt::Prompt;

/// The generator name recorded on the messages it writes.
pub const BEDROCK_GENERATOR: &str = "bedrock";

pub const MODEL_ID_VAR: &str = "BEDROCK_MODEL_ID";
pub const MAX_TOKENS_VAR: &str = "BEDROCK_MAX_TOKENS";
pub const TEMPERATURE_VAR: &str = "BEDROCK_TEMPERATURE";
pub const TIMEOUT_MS_VAR: &str = "BEDROCK_TIMEOUT_MS";

/// Every environment variable [`BedrockConfig::from_env`] reads.
pub const ENV_VARS: &[&str] = &[
    MODEL_ID_VAR,
    MAX_TOKENS_VAR,
    TEMPERATURE_VAR,
    TIMEOUT_MS_VAR,
];

/// IAM actions the generator needs: Converse is authorised as `bedrock:InvokeModel`.
pub const IAM_ACTIONS: &[&str] = &["bedrock:InvokeModel"];

/// How the model is called.
#[derive(Debug, Clone, PartialEq)]
pub struct BedrockConfig {
    /// Model id, inference-profile id or ARN passed to Converse (`BEDROCK_MODEL_ID`).
    pub model_id: String,
    /// Upper bound on the answer's tokens (`BEDROCK_MAX_TOKENS`, default 400).
    pub max_tokens: u32,
    /// Sampling temperature, 0.0 to 1.0 (`BEDROCK_TEMPERATURE`, default 0.4).
    pub temperature: f32,
    /// Budget for the whole call, SDK retries included (`BEDROCK_TIMEOUT_MS`, default 8000).
    pub timeout: Duration,
}

/// 80 words of JSON-wrapped message fit with a wide margin.
pub fn default_max_tokens() -> u32 {
    400
}

/// Some variety between customers while staying on-brief.
pub fn default_temperature() -> f32 {
    0.4
}

/// Well inside a Lambda's timeout, so the template still has time to answer.
pub fn default_timeout() -> Duration {
    Duration::from_millis(8000)
}

impl BedrockConfig {
    /// Reads the configuration from the process environment (see [`ENV_VARS`]).
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from_vars(&Vars::process())
    }

    pub fn from_vars(vars: &Vars<impl Fn(&str) -> Option<String>>) -> Result<Self, EnvError> {
        Ok(Self {
            model_id: vars.required(
                MODEL_ID_VAR,
                "the Bedrock model id or inference profile to call (for example \
                 anthropic.claude-3-haiku-20240307-v1:0)",
            )?,
            max_tokens: vars.parsed(
                MAX_TOKENS_VAR,
                default_max_tokens(),
                "a whole number of tokens greater than 0",
                // Converse takes an i32.
                |&tokens| tokens > 0 && i32::try_from(tokens).is_ok(),
            )?,
            temperature: vars.parsed(
                TEMPERATURE_VAR,
                default_temperature(),
                "a number from 0.0 to 1.0",
                |temperature| (0.0..=1.0).contains(temperature),
            )?,
            timeout: Duration::from_millis(vars.parsed(
                TIMEOUT_MS_VAR,
                millis(default_timeout()),
                "a whole number of milliseconds greater than 0",
                |&millis| millis > 0,
            )?),
        })
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Writes referral messages with a Bedrock model through the Converse API.
#[derive(Debug, Clone)]
pub struct BedrockGenerator {
    client: Client,
    config: BedrockConfig,
}

impl BedrockGenerator {
    pub fn new(client: Client, config: BedrockConfig) -> Self {
        Self { client, config }
    }

    /// Builds the client from the process's shared SDK configuration.
    /// A client from the shared configuration, with the model's own time bound in place of
    /// the data-plane calls' (a model answers in seconds, not milliseconds).
    pub fn from_sdk_config(sdk_config: &SdkConfig, config: BedrockConfig) -> Self {
        let client_config = aws_sdk_bedrockruntime::config::Builder::from(sdk_config)
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(crate::config::CONNECT_TIMEOUT)
                    .operation_attempt_timeout(config.timeout)
                    .operation_timeout(config.timeout)
                    .build(),
            )
            .build();
        Self::new(Client::from_conf(client_config), config)
    }

    pub fn config(&self) -> &BedrockConfig {
        &self.config
    }

    async fn converse(&self, prompt: &Prompt) -> Result<ConverseOutput, GenerationError> {
        let user = Message::builder()
            .role(ConversationRole::User)
            .content(ContentBlock::Text(prompt.user.clone()))
            .build()
            .map_err(|error| GenerationError::Unavailable(Box::new(error)))?;
        let inference = InferenceConfiguration::builder()
            .max_tokens(i32::try_from(self.config.max_tokens).unwrap_or(i32::MAX))
            .temperature(self.config.temperature)
            .build();
        self.client
            .converse()
            .model_id(&self.config.model_id)
            .system(SystemContentBlock::Text(prompt.system.to_owned()))
            .messages(user)
            .inference_config(inference)
            .send()
            .await
            .map_err(classify)
    }
}

impl MessageGenerator for BedrockGenerator {
    async fn generate(&self, request: GenerationRequest<'_>) -> Result<Generated, GenerationError> {
        let started = Instant::now();
        let (outcome, usage) =
            match tokio::time::timeout(self.config.timeout, self.converse(request.prompt)).await {
                Err(_elapsed) => (Err(GenerationError::Timeout), None),
                Ok(Err(error)) => (Err(error), None),
                Ok(Ok(output)) => {
                    let usage = output.usage().map(token_usage);
                    (
                        read_answer(&output).map_err(GenerationError::Unusable),
                        usage,
                    )
                }
            };
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let input_tokens = usage.map(|usage| usage.input_tokens);
        let output_tokens = usage.map(|usage| usage.output_tokens);
        match outcome {
            Ok(answer) => {
                tracing::info!(
                    model_id = %self.config.model_id,
                    latency_ms,
                    input_tokens,
                    output_tokens,
                    recommended_service = answer.recommended_service,
                    "bedrock wrote a message"
                );
                Ok(Generated {
                    recommended_service: answer.recommended_service.to_owned(),
                    body: answer.message,
                    generator: BEDROCK_GENERATOR,
                    model_id: Some(self.config.model_id.clone()),
                    usage,
                    fallback_reason: None,
                })
            }
            Err(error) => {
                // The error text holds the service's message or our own reason, never
                // the prompt or the model's answer.
                tracing::warn!(
                    model_id = %self.config.model_id,
                    latency_ms,
                    input_tokens,
                    output_tokens,
                    error_kind = error.kind(),
                    error = %error,
                    "bedrock did not write a message"
                );
                Err(error)
            }
        }
    }
}

fn token_usage(usage: &aws_sdk_bedrockruntime::types::TokenUsage) -> TokenUsage {
    TokenUsage {
        input_tokens: u32::try_from(usage.input_tokens()).unwrap_or(0),
        output_tokens: u32::try_from(usage.output_tokens()).unwrap_or(0),
    }
}

/// Error codes, beyond the modelled ThrottlingException, that mean "too many requests".
const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "ServiceQuotaExceededException",
    "TooManyRequestsException",
];

/// Maps a Converse failure onto the generation error kinds the fallback counts.
pub fn classify(error: SdkError<ConverseError>) -> GenerationError {
    let SdkError::ServiceError(context) = &error else {
        return match error {
            SdkError::TimeoutError(_) => GenerationError::Timeout,
            other => GenerationError::Unavailable(DisplayErrorContext(other).to_string().into()),
        };
    };
    let service_error = context.err();
    // The modelled field first: an error built in code has no metadata message.
    let message = |modelled: Option<&str>| {
        modelled
            .or_else(|| service_error.message())
            .unwrap_or("no message given")
            .to_owned()
    };
    match service_error {
        ConverseError::ThrottlingException(_) => GenerationError::Throttled,
        ConverseError::ModelTimeoutException(_) => GenerationError::Timeout,
        ConverseError::AccessDeniedException(_) => GenerationError::AccessDenied,
        ConverseError::ValidationException(rejection) => {
            GenerationError::Rejected(message(rejection.message()))
        }
        ConverseError::ModelErrorException(failure) => {
            GenerationError::Rejected(message(failure.message()))
        }
        other
            if other
                .code()
                .is_some_and(|code| THROTTLING_CODES.contains(&code))
                || context.raw().status().as_u16() == 429 =>
        {
            GenerationError::Throttled
        }
        _ => GenerationError::Unavailable(DisplayErrorContext(&error).to_string().into()),
    }
}

/// The answer text of a Converse output, checked (see [`parse_answer`]).
fn read_answer(output: &ConverseOutput) -> Result<Answer, AnswerError> {
    match output.stop_reason() {
        StopReason::EndTurn | StopReason::StopSequence => {}
        other => {
            return Err(AnswerError::StoppedEarly {
                reason: other.as_str().to_owned(),
            });
        }
    }
    let text: String = output
        .output()
        .and_then(|output| output.as_message().ok())
        .map(|message| {
            message
                .content()
                .iter()
                .filter_map(|block| block.as_text().ok())
                .map(String::as_str)
                .collect()
        })
        .unwrap_or_default();
    parse_answer(&text)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> Vars<impl Fn(&str) -> Option<String>> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        Vars::new(move |name: &str| map.get(name).cloned())
    }

    #[test]
    fn only_the_model_id_is_required() {
        let config = BedrockConfig::from_vars(&lookup(&[(MODEL_ID_VAR, " model-x ")]));
        assert_eq!(
            config,
            Ok(BedrockConfig {
                model_id: "model-x".to_owned(),
                max_tokens: 400,
                temperature: 0.4,
                timeout: Duration::from_millis(8000),
            })
        );
    }

    #[test]
    fn every_variable_is_read() {
        let config = BedrockConfig::from_vars(&lookup(&[
            (MODEL_ID_VAR, "model-x"),
            (MAX_TOKENS_VAR, "256"),
            (TEMPERATURE_VAR, "0"),
            (TIMEOUT_MS_VAR, "1500"),
        ]));
        assert_eq!(
            config,
            Ok(BedrockConfig {
                model_id: "model-x".to_owned(),
                max_tokens: 256,
                temperature: 0.0,
                timeout: Duration::from_millis(1500),
            })
        );
        assert_eq!(ENV_VARS.len(), 4);
    }

    #[test]
    fn a_missing_model_id_names_the_variable() {
        for pairs in [&[][..], &[(MODEL_ID_VAR, "  ")][..]] {
            let error = BedrockConfig::from_vars(&lookup(pairs));
            let text = match error {
                Err(
                    error @ EnvError::Missing {
                        name: "BEDROCK_MODEL_ID",
                        ..
                    },
                ) => error.to_string(),
                other => panic!("{other:?}"),
            };
            assert!(
                text.starts_with("environment variable BEDROCK_MODEL_ID is required: set it to the Bedrock model id"),
                "{text}"
            );
        }
    }

    #[test]
    fn invalid_values_name_their_variable() {
        for (variable, value) in [
            (MAX_TOKENS_VAR, "0"),
            (MAX_TOKENS_VAR, "-5"),
            (MAX_TOKENS_VAR, "3000000000"),
            (MAX_TOKENS_VAR, "many"),
            (TEMPERATURE_VAR, "1.5"),
            (TEMPERATURE_VAR, "NaN"),
            (TEMPERATURE_VAR, "warm"),
            (TIMEOUT_MS_VAR, "0"),
            (TIMEOUT_MS_VAR, "8s"),
        ] {
            let outcome =
                BedrockConfig::from_vars(&lookup(&[(MODEL_ID_VAR, "m"), (variable, value)]));
            match outcome {
                Err(EnvError::Invalid {
                    name: named,
                    value: seen,
                    ..
                }) => {
                    assert_eq!((named, seen.as_str()), (variable, value));
                }
                other => panic!("{variable}={value} gave {other:?}"),
            }
        }
    }
}
