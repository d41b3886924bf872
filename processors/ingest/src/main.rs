//! The ingest Lambda's entry point: configuration and the SQS client once, then requests.

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use referral_aws::secrets::{function_sdk_config, read_secret_string};
use referral_aws::sqs::SqsQueue;
use referral_aws::telemetry;
use referral_ingest::config::{SECRETS_ARN_VAR, SecretsSource, Settings};
use referral_ingest::{Deps, METRICS_SERVICE, RequestCounters, handle};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let settings = Settings::from_env().inspect_err(telemetry::refused_setting)?;
    // The shared SDK configuration bounds every SQS call (shared/aws/src/config.rs) well
    // inside the function's timeout: a slow queue is answered 503 with Retry-After.
    let sdk_config = function_sdk_config()
        .await
        .inspect_err(telemetry::refused_setting)?;
    // Read once per process: a rotation (a second secret added) reaches the function at its
    // next cold start, which the README's rotation steps allow for.
    let secret_string = match &settings.secrets {
        SecretsSource::SecretsManager { secret_id } => Some(
            read_secret_string(&sdk_config, SECRETS_ARN_VAR, secret_id)
                .await
                .inspect_err(telemetry::refused_setting)?,
        ),
        SecretsSource::Inline(_) => None,
    };
    let config = settings
        .with_secret_string(secret_string.as_deref())
        .inspect_err(telemetry::refused_setting)?;
    let queue = SqsQueue::new(
        aws_sdk_sqs::Client::new(&sdk_config),
        config.queue_url.clone(),
    );
    let deps = &Deps::new(config, queue);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2httpRequest>| async move {
            let response = handle(deps, event.payload, chrono::Utc::now()).await;
            let counters = RequestCounters::of(&response);
            telemetry::emit_metrics(telemetry::NAMESPACE, METRICS_SERVICE, &counters);
            Ok::<_, Error>(response)
        },
    ))
    .await
}
