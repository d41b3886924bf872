//! A slow SQS through the Lambda's own wiring: the shared SDK configuration's timeouts end
//! the call, and the request is answered 503 with `Retry-After` well inside the function's
//! timeout (the template's; `tests/tests/sam_template.rs` checks the two against each other).
//! The "queue" is a loopback listener that accepts connections and never answers.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use referral_aws::config::OPERATION_TIMEOUT;
use referral_aws::sqs::SqsQueue;
use referral_ingest::{Config, Deps, WebhookSecret, handle};
use tokio::net::TcpListener;

const SECRET: &str = "whsec_fixture_only_not_a_real_secret";
const SIGNED_AT: i64 = 1_768_230_247;

fn request() -> ApiGatewayV2httpRequest {
    let path = format!(
        "{}/../../events/lambda/apigw-http-v2-request.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn a_queue_that_never_answers_is_a_503_with_retry_after_before_the_operation_timeout_ends() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    // Accepts every connection and holds it open without a byte of answer.
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    // A loopback endpoint gets an emulator's lenient bounds; this one plays AWS, so the
    // deployed bounds are put back.
    let sdk = referral_aws::config::load(Some(&endpoint))
        .await
        .into_builder()
        .timeout_config(referral_aws::config::deployed_timeouts())
        .build();
    let queue_url = format!("{endpoint}/123456789012/webhooks");
    let deps = Deps {
        config: Config {
            secrets: vec![WebhookSecret::new(SECRET.as_bytes()).unwrap()],
            queue_url: queue_url.clone(),
            signature_tolerance: Duration::from_secs(300),
        },
        queue: SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), queue_url),
        replays: Default::default(),
    };

    let started = Instant::now();
    let response = handle(
        &deps,
        request(),
        chrono::DateTime::from_timestamp(SIGNED_AT + 2, 0).unwrap(),
    )
    .await;
    let took = started.elapsed();
    silent.abort();

    assert_eq!(response.status_code, 503, "{:?}", response.body);
    let retry_after = response.headers.get("retry-after").expect("Retry-After");
    assert!(retry_after.to_str().unwrap().parse::<u32>().unwrap() > 0);
    // The SDK gave up at its operation timeout, not later: the function's timeout (15 s in
    // the template) leaves room to answer.
    assert!(
        took >= OPERATION_TIMEOUT - Duration::from_millis(500)
            && took < OPERATION_TIMEOUT + Duration::from_secs(2),
        "answered after {took:?}; the operation timeout is {OPERATION_TIMEOUT:?}"
    );
}
