//! The handler's log: one JSON line per request, with the outcome's fields and without the
//! body, the secret or the customer's address. (Its own file: it installs a subscriber.)
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use common::{Failure, TestQueue};
use referral_domain::redact::customer_ref;
use referral_ingest::{Config, Deps, WebhookSecret, handle};
use serde_json::Value;

const SECRET: &str = "whsec_fixture_only_not_a_real_secret";
const SIGNED_AT: i64 = 1_768_230_247;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn request() -> ApiGatewayV2httpRequest {
    let path = format!(
        "{}/../../events/lambda/apigw-http-v2-request.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn deps(queue: TestQueue) -> Deps<TestQueue> {
    Deps {
        config: Config {
            secrets: vec![WebhookSecret::new(SECRET.as_bytes()).unwrap()],
            queue_url: "https://sqs.us-east-1.amazonaws.com/123456789012/webhooks".to_owned(),
            signature_tolerance: Duration::from_secs(300),
        },
        queue,
        replays: Default::default(),
    }
}

/// Runs one request under a JSON subscriber like the Lambda's and returns its log lines.
async fn logged(deps: &Deps<TestQueue>, request: ApiGatewayV2httpRequest, now: i64) -> Vec<Value> {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(move || writer.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let now = chrono::DateTime::from_timestamp(now, 0).unwrap();
    handle(deps, request, now).await;
    drop(guard);

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lower = text.to_lowercase();
    for forbidden in [
        "jane.doe@example.com",
        "jane doe",
        "1 elm st",
        "whsec_",
        "satisfaction_score",
    ] {
        assert!(
            !lower.contains(forbidden),
            "the log shows `{forbidden}`: {text}"
        );
    }
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test]
async fn accepted_request_logs_one_line_with_event_and_customer_ref() {
    let deps = deps(TestQueue::new());
    let lines = logged(&deps, request(), SIGNED_AT + 1).await;

    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!(line["status"], 202);
    assert_eq!(line["reason"], "accepted");
    assert_eq!(line["event_id"], "evt_01KESBRMM8A7S6MM0A78RMXX32");
    assert_eq!(line["customer_ref"], customer_ref("jane.doe@example.com"));
    // The fixture is generated (`referral events apigw`): its request id, whatever it is.
    let request_id = request().request_context.request_id.unwrap();
    assert!(!request_id.is_empty());
    assert_eq!(line["request_id"], request_id.as_str());
    assert_eq!(line["secret"], 1);
    assert_eq!(line["level"], "INFO");
    // The customer appears as the ref alone: no address, no name, no place.
    let text = line.to_string().to_lowercase();
    for personal in ["jane.doe", "@example.com", "jane doe", "austin", "78701"] {
        assert!(!text.contains(personal), "{personal} logged: {text}");
    }
}

#[tokio::test]
async fn the_line_carries_the_trace_id_given_or_started() {
    let given = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut traced = request();
    traced.headers.insert("traceparent", given.parse().unwrap());
    let queue = TestQueue::new();
    let deps = deps(queue);
    let lines = logged(&deps, traced, SIGNED_AT + 1).await;
    assert_eq!(lines[0]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert!(lines[0].get("traceparent_refused").is_none(), "{lines:?}");

    let mut malformed = request();
    malformed
        .headers
        .insert("traceparent", "00-zz-00f067aa0ba902b7-01".parse().unwrap());
    let lines = logged(&deps_fresh(), malformed, SIGNED_AT + 1).await;
    assert_eq!(lines[0]["status"], 202);
    assert_eq!(lines[0]["traceparent_refused"], "shape");
    let started = lines[0]["trace_id"].as_str().unwrap();
    assert_eq!(started.len(), 32);
    assert_ne!(started, "4bf92f3577b34da6a3ce929d0e0e4736");

    // Even a refused request's line is findable by its trace.
    let lines = logged(&deps_fresh(), request(), SIGNED_AT + 10_000).await;
    assert_eq!(lines[0]["status"], 401);
    assert_eq!(lines[0]["trace_id"].as_str().map(str::len), Some(32));
}

fn deps_fresh() -> Deps<TestQueue> {
    deps(TestQueue::new())
}

#[tokio::test]
async fn refusals_and_failures_log_their_reason() {
    let deps_ok = deps(TestQueue::new());
    let lines = logged(&deps_ok, request(), SIGNED_AT + 10_000).await;
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["status"], 401);
    assert_eq!(lines[0]["reason"], "stale");
    assert_eq!(lines[0]["level"], "WARN");

    let failing = deps(TestQueue::failing(Failure::Transient));
    let lines = logged(&failing, request(), SIGNED_AT).await;
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["status"], 503);
    assert_eq!(lines[0]["reason"], "enqueue_transient");
    assert_eq!(lines[0]["event_id"], "evt_01KESBRMM8A7S6MM0A78RMXX32");
    assert!(
        lines[0]["detail"]
            .as_str()
            .unwrap()
            .contains("simulated throttling")
    );
    assert_eq!(lines[0]["level"], "WARN");

    let broken = deps(TestQueue::failing(Failure::Permanent));
    let lines = logged(&broken, request(), SIGNED_AT).await;
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["status"], 500);
    assert_eq!(lines[0]["reason"], "enqueue_failed");
    assert_eq!(lines[0]["level"], "ERROR");
}
