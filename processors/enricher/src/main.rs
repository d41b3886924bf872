//! The enricher Lambda: SQS batches of webhooks → `CustomerFeatures`.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use referral_aws::{secrets, telemetry};
use referral_enricher::{Config, EnricherHandler, METRICS_SERVICE};

// One thread: a function gets a fraction of a vCPU, and cross-thread wake-ups only cost.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env().inspect_err(telemetry::refused_setting)?;
    let sdk = secrets::function_sdk_config()
        .await
        .inspect_err(telemetry::refused_setting)?;
    let handler = &EnricherHandler::from_sdk(&sdk, &config);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let outcome = handler.handle(&event.payload, chrono::Utc::now()).await;
        telemetry::emit_metrics(telemetry::NAMESPACE, METRICS_SERVICE, &outcome.counters);
        Ok::<SqsBatchResponse, Error>(outcome.response)
    }))
    .await
}
