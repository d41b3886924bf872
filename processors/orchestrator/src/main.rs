//! The orchestrator Lambda: `CustomerFeatures` stream records → referral messages.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use referral_aws::bedrock::BedrockConfig;
use referral_aws::{secrets, telemetry};
use referral_orchestrator::{Config, METRICS_SERVICE, OrchestratorHandler, time_left};

// One thread: a function gets a fraction of a vCPU, and cross-thread wake-ups only cost.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env().inspect_err(telemetry::refused_setting)?;
    let bedrock = BedrockConfig::from_env().inspect_err(telemetry::refused_setting)?;
    let sdk = secrets::function_sdk_config()
        .await
        .inspect_err(telemetry::refused_setting)?;
    let handler = &OrchestratorHandler::from_sdk(&sdk, &config, bedrock);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| async move {
        let now = chrono::Utc::now();
        let left = time_left(event.context.deadline, now);
        let outcome = handler.handle_until(&event.payload, now, Some(left)).await;
        telemetry::emit_metrics(telemetry::NAMESPACE, METRICS_SERVICE, &outcome.counters);
        let generation = handler.orchestrator().generator().take_counters();
        telemetry::emit_metrics(telemetry::NAMESPACE, METRICS_SERVICE, &generation);
        Ok::<DynamoDbEventResponse, Error>(outcome.response)
    }))
    .await
}
