//! The eraser Lambda: `{"emails": [...], "dry_run": false}` → what was removed, per customer
//! ref. Operators call it with `aws lambda invoke`; no event source.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use referral_aws::{secrets, telemetry};
use referral_eraser::{Config, EraserHandler, Response};
use serde_json::Value;

// One thread: a function gets a fraction of a vCPU, and cross-thread wake-ups only cost.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env().inspect_err(telemetry::refused_setting)?;
    let sdk = secrets::function_sdk_config()
        .await
        .inspect_err(telemetry::refused_setting)?;
    let handler = &EraserHandler::from_sdk(&sdk, config);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<Response, Error>(handler.handle(&event.payload).await?)
    }))
    .await
}
