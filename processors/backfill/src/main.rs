//! The backfill Lambda: one Distributed Map item (an S3 object of a partitioned history) →
//! `CustomerFeatures`.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use referral_aws::{secrets, telemetry};
use referral_backfill::{BackfillHandler, Config, METRICS_SERVICE, MapItem, Summary};

// One thread: a function gets a fraction of a vCPU, and cross-thread wake-ups only cost.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env().inspect_err(telemetry::refused_setting)?;
    let sdk = secrets::function_sdk_config()
        .await
        .inspect_err(telemetry::refused_setting)?;
    let handler = &BackfillHandler::from_sdk(&sdk, &config);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<MapItem>| async move {
        let summary = handler.handle(&event.payload).await?;
        telemetry::emit_metrics(telemetry::NAMESPACE, METRICS_SERVICE, &summary.counters);
        Ok::<Summary, Error>(summary)
    }))
    .await
}
