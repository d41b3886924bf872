//! Bedrock for the suite: the real `BedrockGenerator` over a client whose Converse calls
//! `aws-smithy-mocks` answers from a script: good answers, and on cue throttling,
//! AccessDenied, the model's own timeout, 5xx, or a garbage answer, as the service sends
//! them (modelled errors, raw HTTP errors, an answer that fails the checks). Each call is
//! logged against the change it was for, with its outcome.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::config::retry::RetryConfig;
use aws_sdk_bedrockruntime::operation::converse::{ConverseError, ConverseOutput};
use aws_sdk_bedrockruntime::types::error::{
    AccessDeniedException, ModelTimeoutException, ThrottlingException,
};
use aws_sdk_bedrockruntime::types::{ContentBlock, ConversationRole, Message, StopReason};
use aws_smithy_mocks::{MockResponse, RuleMode, mock, mock_client};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use referral_aws::bedrock::{BedrockConfig, BedrockGenerator};
use referral_domain::fallback::FallbackGenerator;
use referral_domain::ports::{Generated, GenerationError, GenerationRequest, MessageGenerator};
use referral_domain::template::TemplateGenerator;

/// What Bedrock does with one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Behaviour {
    Answer,
    /// `ThrottlingException`, after the SDK's retries.
    Throttle,
    /// `AccessDeniedException`: the model's access was revoked.
    Deny,
    /// `ModelTimeoutException`.
    ModelTimeout,
    /// HTTP 503 `ServiceUnavailableException`.
    ServerError,
    /// A well-formed answer whose text is not the JSON object asked for.
    Garbage,
}

/// The script: a stretch (every call behaves one way) or, outside stretches, good answers
/// with a fault now and then (every `sprinkle`-th call, taking the faults in turn).
#[derive(Debug, Default)]
pub struct Script {
    state: Mutex<ScriptState>,
}

#[derive(Debug, Default)]
struct ScriptState {
    stretch: Option<Behaviour>,
    sprinkle: Option<u64>,
    calls: u64,
    by_behaviour: BTreeMap<Behaviour, u64>,
}

const SPRINKLED: [Behaviour; 3] = [
    Behaviour::Garbage,
    Behaviour::ServerError,
    Behaviour::ModelTimeout,
];

impl Script {
    pub fn new(sprinkle: Option<u64>) -> Arc<Self> {
        Arc::new(Script {
            state: Mutex::new(ScriptState {
                sprinkle,
                ..ScriptState::default()
            }),
        })
    }

    pub fn set_stretch(&self, stretch: Option<Behaviour>) {
        self.state.lock().unwrap().stretch = stretch;
    }

    /// Calls answered so far, by behaviour.
    pub fn behaviours(&self) -> BTreeMap<Behaviour, u64> {
        self.state.lock().unwrap().by_behaviour.clone()
    }

    fn next(&self) -> Behaviour {
        let mut state = self.state.lock().unwrap();
        state.calls += 1;
        let calls = state.calls;
        let behaviour = match (state.stretch, state.sprinkle) {
            (Some(stretch), _) => stretch,
            (None, Some(every)) if calls % every == 0 => {
                SPRINKLED[((calls / every) % SPRINKLED.len() as u64) as usize]
            }
            _ => Behaviour::Answer,
        };
        *state.by_behaviour.entry(behaviour).or_default() += 1;
        behaviour
    }
}

fn answer(text: &str) -> ConverseOutput {
    let message = Message::builder()
        .role(ConversationRole::Assistant)
        .content(ContentBlock::Text(text.to_owned()))
        .build()
        .unwrap();
    ConverseOutput::builder()
        .output(aws_sdk_bedrockruntime::types::ConverseOutput::Message(
            message,
        ))
        .stop_reason(StopReason::EndTurn)
        .build()
        .unwrap()
}

fn unavailable() -> HttpResponse {
    let mut response = HttpResponse::new(
        StatusCode::try_from(503).unwrap(),
        SdkBody::from(r#"{"message": "try later"}"#),
    );
    response
        .headers_mut()
        .insert("content-type", "application/json");
    response
        .headers_mut()
        .insert("x-amzn-errortype", "ServiceUnavailableException");
    response
}

const GOOD_ANSWER: &str = r#"{"recommended_service": "pest_control", "message": "Hi there! Thank you for choosing us. Know a neighbour who could use pest control? Refer them today."}"#;

/// The real Bedrock generator over a client the script answers, each call sent once (the
/// SDK's retries are spent: a throttled answer here is a throttled answer after them).
pub fn bedrock(script: Arc<Script>) -> BedrockGenerator {
    let rule = mock!(Client::converse).then_compute_response(move |_input| match script.next() {
        Behaviour::Answer => MockResponse::Output(answer(GOOD_ANSWER)),
        Behaviour::Garbage => MockResponse::Output(answer("Sure! Here is a lovely message.")),
        Behaviour::Throttle => MockResponse::Error(ConverseError::ThrottlingException(
            ThrottlingException::builder().message("slow down").build(),
        )),
        Behaviour::Deny => MockResponse::Error(ConverseError::AccessDeniedException(
            AccessDeniedException::builder()
                .message("no access to the model")
                .build(),
        )),
        Behaviour::ModelTimeout => MockResponse::Error(ConverseError::ModelTimeoutException(
            ModelTimeoutException::builder().message("too slow").build(),
        )),
        Behaviour::ServerError => MockResponse::Http(unavailable()),
    });
    let client = mock_client!(
        aws_sdk_bedrockruntime,
        RuleMode::MatchAny,
        [&rule],
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

/// A generator that logs each call's outcome against its change (customer, version), and
/// takes `latency` to answer (a model's answer takes seconds, the mocks' none).
#[derive(Debug)]
pub struct Logged<G> {
    inner: G,
    latency: Duration,
    calls: Mutex<BTreeMap<(String, u64), Vec<&'static str>>>,
}

impl<G> Logged<G> {
    pub fn new(inner: G, latency: Duration) -> Self {
        Logged {
            inner,
            latency,
            calls: Mutex::default(),
        }
    }

    pub fn calls(&self) -> BTreeMap<(String, u64), Vec<&'static str>> {
        self.calls.lock().unwrap().clone()
    }
}

impl<G: MessageGenerator> MessageGenerator for Logged<G> {
    async fn generate(&self, request: GenerationRequest<'_>) -> Result<Generated, GenerationError> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let outcome = self.inner.generate(request).await;
        let kind = match &outcome {
            Ok(_) => "ok",
            Err(error) => error.kind(),
        };
        let change = request
            .features
            .map(|features| (features.customer_email.clone(), features.version))
            .unwrap_or_default();
        self.calls
            .lock()
            .unwrap()
            .entry(change)
            .or_default()
            .push(kind);
        outcome
    }
}

/// The production arrangement (Bedrock, the template behind it), Bedrock's calls logged.
pub type Generator = FallbackGenerator<Logged<BedrockGenerator>, TemplateGenerator>;

pub fn generator(script: Arc<Script>, latency: Duration) -> Generator {
    FallbackGenerator::over_template(Logged::new(bedrock(script), latency))
}
