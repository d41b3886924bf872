//! The ingest handler on the API Gateway HTTP API (v2) fixtures in `events/lambda/`, with the
//! embedded queue: what is answered, and what is (or is not) enqueued.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::{HeaderValue, Method};
use base64::Engine;
use chrono::{DateTime, Utc};
use common::{Failure, TestQueue};
use referral_domain::ports::{MAX_MESSAGE_BYTES, MAX_QUEUED_BYTES};
use referral_domain::redact::customer_ref;
use referral_domain::trace::TraceContext;
use referral_ingest::{Config, Deps, WebhookSecret, handle, sign};
use serde_json::Value;

const SECRET: &str = "whsec_fixture_only_not_a_real_secret";
const NEW_SECRET: &str = "whsec_rotated_in_0123456789abcdef";
const NEWER_SECRET: &str = "whsec_rotated_in_later_fedcba9876";
/// The `t=` of both fixtures' signatures.
const SIGNED_AT: i64 = 1_768_230_247;
const FIXTURE_EVENT_ID: &str = "evt_01KESBRMM8A7S6MM0A78RMXX32";

fn path(relative: &str) -> String {
    format!("{}/../../{relative}", env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(path(relative)).unwrap_or_else(|err| panic!("{relative}: {err}"))
}

fn fixture(name: &str) -> ApiGatewayV2httpRequest {
    serde_json::from_str(&read(&format!("events/lambda/{name}"))).unwrap()
}

fn plain_request() -> ApiGatewayV2httpRequest {
    fixture("apigw-http-v2-request.json")
}

fn fixture_body() -> String {
    plain_request().body.unwrap()
}

fn deps_with(secrets: &[&str], queue: TestQueue) -> Deps<TestQueue> {
    Deps {
        config: Config {
            secrets: secrets
                .iter()
                .map(|secret| WebhookSecret::new(secret.as_bytes()).unwrap())
                .collect(),
            queue_url: "https://sqs.us-east-1.amazonaws.com/123456789012/webhooks".to_owned(),
            signature_tolerance: Duration::from_secs(300),
        },
        queue,
        replays: Default::default(),
    }
}

fn deps() -> Deps<TestQueue> {
    deps_with(&[SECRET], TestQueue::new())
}

fn at(unix_seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(unix_seconds, 0).unwrap()
}

/// Two seconds after the fixtures were signed, as API Gateway's `timeEpoch` suggests.
fn now() -> DateTime<Utc> {
    at(SIGNED_AT + 2)
}

/// The plain fixture with `body` instead, signed with `secret` at `timestamp`.
fn signed(body: &str, secret: &str, timestamp: i64) -> ApiGatewayV2httpRequest {
    let mut request = plain_request();
    request.body = Some(body.to_owned());
    set_header(
        &mut request,
        "x-signature",
        &sign(secret, timestamp, body.as_bytes()),
    );
    request
}

fn set_header(request: &mut ApiGatewayV2httpRequest, name: &'static str, value: &str) {
    request
        .headers
        .insert(name, HeaderValue::from_str(value).unwrap());
}

fn json_body(response: &ApiGatewayV2httpResponse) -> Value {
    match &response.body {
        Some(Body::Text(text)) => serde_json::from_str(text).unwrap(),
        other => panic!("expected a JSON text body, got {other:?}"),
    }
}

fn header<'a>(response: &'a ApiGatewayV2httpResponse, name: &str) -> Option<&'a str> {
    response
        .headers
        .get(name)
        .map(|value| value.to_str().unwrap())
}

/// Runs the handler and checks what every answer has in common.
async fn call(
    deps: &Deps<TestQueue>,
    request: ApiGatewayV2httpRequest,
    now: DateTime<Utc>,
) -> ApiGatewayV2httpResponse {
    let response = handle(deps, request, now).await;
    assert_eq!(header(&response, "content-type"), Some("application/json"));
    let text = format!("{:?}", response.body);
    assert!(
        !text.contains("whsec"),
        "a secret leaked into a response: {text}"
    );
    assert!(
        !text.to_lowercase().contains("@example"),
        "an address leaked into a response: {text}"
    );
    response
}

/// A refusal: the status, and nothing enqueued.
async fn refused(
    deps: &Deps<TestQueue>,
    request: ApiGatewayV2httpRequest,
    now: DateTime<Utc>,
    status: i64,
) -> Value {
    let response = call(deps, request, now).await;
    assert_eq!(response.status_code, status, "{:?}", response.body);
    assert!(
        deps.queue.sent().is_empty(),
        "a refused request was enqueued"
    );
    json_body(&response)
}

async fn signature_refused(
    deps: &Deps<TestQueue>,
    request: ApiGatewayV2httpRequest,
    now: DateTime<Utc>,
    reason: &str,
) {
    let body = refused(deps, request, now, 401).await;
    assert_eq!(body["error"], "invalid_signature");
    assert_eq!(body["reason"], reason, "{body}");
}

// ------------------------------------------------------------------------------------
// Accepted

#[tokio::test]
async fn good_signature_is_accepted_and_enqueued_once_with_its_attributes() {
    let deps = deps();
    let response = call(&deps, plain_request(), now()).await;

    assert_eq!(response.status_code, 202, "{:?}", response.body);
    assert_eq!(
        json_body(&response),
        serde_json::json!({ "event_id": FIXTURE_EVENT_ID })
    );
    let sent = deps.queue.sent();
    assert_eq!(sent.len(), 1);
    let message = &sent[0];
    assert_eq!(
        message.body,
        fixture_body(),
        "the body must be enqueued exactly as signed"
    );
    // The customer's ref (a hash of the normalised address), never the address itself.
    let mut attributes = message.attributes.clone();
    // A trace started here (the request had no `traceparent`), the one the response names.
    let traceparent = attributes.remove("traceparent").unwrap();
    assert_eq!(header(&response, "traceparent"), Some(traceparent.as_str()));
    assert!(TraceContext::parse(&traceparent).is_ok(), "{traceparent}");
    assert_eq!(
        &attributes,
        &BTreeMap::from([
            ("event_id".to_owned(), FIXTURE_EVENT_ID.to_owned()),
            ("event_type".to_owned(), "service.completed".to_owned()),
            (
                "customer_ref".to_owned(),
                customer_ref("jane.doe@example.com")
            ),
        ])
    );
    assert!(attributes.values().all(|value| !value.contains('@')));
}

const SENDERS_TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// The `traceparent` attribute of the one message a request queued.
fn queued_trace(deps: &Deps<TestQueue>) -> TraceContext {
    let sent = deps.queue.sent();
    assert_eq!(sent.len(), 1);
    TraceContext::parse(&sent[0].attributes["traceparent"]).unwrap()
}

#[tokio::test]
async fn a_sender_s_traceparent_is_continued_on_the_queue_by_ingest_s_span() {
    let deps = deps();
    let mut request = plain_request();
    set_header(&mut request, "traceparent", SENDERS_TRACE);
    let response = call(&deps, request, now()).await;
    assert_eq!(response.status_code, 202, "{:?}", response.body);

    let queued = queued_trace(&deps);
    assert_eq!(queued.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_ne!(
        queued.parent_id(),
        "00f067aa0ba902b7",
        "ingest's own span is the parent"
    );
    assert!(queued.sampled());
    assert_eq!(
        header(&response, "traceparent"),
        Some(queued.to_string().as_str())
    );
}

#[tokio::test]
async fn a_malformed_traceparent_starts_a_new_trace_and_never_refuses_the_webhook() {
    for malformed in [
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "garbage",
    ] {
        let deps = deps();
        let mut request = plain_request();
        set_header(&mut request, "traceparent", malformed);
        let response = call(&deps, request, now()).await;
        assert_eq!(
            response.status_code, 202,
            "{malformed}: {:?}",
            response.body
        );
        let queued = queued_trace(&deps);
        assert_ne!(
            queued.trace_id(),
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "{malformed}"
        );
        assert_ne!(queued.trace_id(), "0".repeat(32), "{malformed}");
    }
}

#[tokio::test]
async fn each_request_without_a_traceparent_starts_its_own_trace() {
    let first = deps();
    call(&first, plain_request(), now()).await;
    let second = deps();
    call(&second, plain_request(), now()).await;
    assert_ne!(
        queued_trace(&first).trace_id(),
        queued_trace(&second).trace_id()
    );
}

#[tokio::test]
async fn the_signing_helper_reproduces_the_fixture_header() {
    let request = plain_request();
    let expected = request
        .headers
        .get("x-signature")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(sign(SECRET, SIGNED_AT, fixture_body().as_bytes()), expected);
}

#[tokio::test]
async fn base64_body_is_decoded_before_verifying() {
    let deps = deps();
    let request = fixture("apigw-http-v2-request-base64.json");
    assert!(request.is_base64_encoded);
    let response = call(&deps, request, now()).await;

    assert_eq!(response.status_code, 202, "{:?}", response.body);
    let sent = deps.queue.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].body,
        fixture_body(),
        "the decoded body is what is enqueued"
    );
}

#[tokio::test]
async fn rotation_either_configured_secret_verifies() {
    // Signed with the second of two configured secrets.
    let deps = deps_with(&[NEW_SECRET, SECRET], TestQueue::new());
    let response = call(&deps, plain_request(), now()).await;
    assert_eq!(response.status_code, 202, "{:?}", response.body);
    assert_eq!(deps.queue.sent().len(), 1);

    // And with the first.
    let deps = deps_with(&[NEW_SECRET, SECRET], TestQueue::new());
    let response = call(&deps, signed(&fixture_body(), NEW_SECRET, SIGNED_AT), now()).await;
    assert_eq!(response.status_code, 202, "{:?}", response.body);
    assert_eq!(deps.queue.sent().len(), 1);
}

#[tokio::test]
async fn signed_with_a_retired_secret_is_refused() {
    let deps = deps_with(&[NEW_SECRET, NEWER_SECRET], TestQueue::new());
    signature_refused(&deps, plain_request(), now(), "mismatch").await;
}

#[tokio::test]
async fn header_names_are_case_insensitive_and_several_v1_entries_are_accepted() {
    let mut raw: Value =
        serde_json::from_str(&read("events/lambda/apigw-http-v2-request.json")).unwrap();
    let headers = raw["headers"].as_object_mut().unwrap();
    let signature = headers.remove("x-signature").unwrap();
    let signature = signature.as_str().unwrap();
    let digest = signature.split_once(",v1=").unwrap().1;
    let content_type = headers.remove("content-type").unwrap();
    headers.insert(
        "X-Signature".to_owned(),
        format!("t={SIGNED_AT},v1={},v1={digest}", "0".repeat(64)).into(),
    );
    headers.insert("Content-Type".to_owned(), content_type);
    let request: ApiGatewayV2httpRequest = serde_json::from_value(raw).unwrap();

    let deps = deps();
    let response = call(&deps, request, now()).await;
    assert_eq!(response.status_code, 202, "{:?}", response.body);
    assert_eq!(deps.queue.sent().len(), 1);
}

#[tokio::test]
async fn json_content_type_with_parameters_in_any_case_is_accepted() {
    for content_type in [
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/json;charset=UTF-8",
    ] {
        let deps = deps();
        let mut request = plain_request();
        set_header(&mut request, "content-type", content_type);
        let response = call(&deps, request, now()).await;
        assert_eq!(
            response.status_code, 202,
            "{content_type}: {:?}",
            response.body
        );
        assert_eq!(deps.queue.sent().len(), 1);
    }
}

#[tokio::test]
async fn the_window_edges_are_accepted() {
    for now in [at(SIGNED_AT - 300), at(SIGNED_AT + 300)] {
        let deps = deps();
        let response = call(&deps, plain_request(), now).await;
        assert_eq!(response.status_code, 202, "{now}: {:?}", response.body);
    }
}

#[tokio::test]
async fn a_valid_event_of_another_type_is_accepted_for_the_enricher_to_acknowledge() {
    let body = r#"{"event_id":"evt_other_1","event_type":"invoice.paid","amount":12}"#;
    let deps = deps();
    let response = call(&deps, signed(body, SECRET, SIGNED_AT), now()).await;

    assert_eq!(response.status_code, 202, "{:?}", response.body);
    assert_eq!(json_body(&response)["event_id"], "evt_other_1");
    let sent = deps.queue.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].attributes["event_type"], "invoice.paid");
    assert!(!sent[0].attributes.contains_key("customer_ref"));
    assert_eq!(sent[0].body, body);
}

// ------------------------------------------------------------------------------------
// Refused: signature

#[tokio::test]
async fn wrong_secret_is_refused() {
    let deps = deps();
    let request = signed(
        &fixture_body(),
        "whsec_not_the_configured_one_00",
        SIGNED_AT,
    );
    signature_refused(&deps, request, now(), "mismatch").await;
}

#[tokio::test]
async fn tampered_body_is_refused() {
    let deps = deps();
    let mut request = plain_request();
    let body = fixture_body();
    let tampered = body.replace("\"satisfaction_score\":4.5", "\"satisfaction_score\":1.0");
    assert_ne!(body, tampered);
    request.body = Some(tampered);
    signature_refused(&deps, request, now(), "mismatch").await;
}

#[tokio::test]
async fn tampered_base64_body_is_refused() {
    let deps = deps();
    let mut request = fixture("apigw-http-v2-request-base64.json");
    let tampered = fixture_body().replace("Jane.Doe@", "Jane.Dee@");
    request.body = Some(base64::engine::general_purpose::STANDARD.encode(tampered));
    signature_refused(&deps, request, now(), "mismatch").await;
}

#[tokio::test]
async fn stale_timestamp_is_refused() {
    let deps = deps();
    signature_refused(&deps, plain_request(), at(SIGNED_AT + 301), "stale").await;
    signature_refused(&deps, plain_request(), at(SIGNED_AT + 86_400), "stale").await;
}

#[tokio::test]
async fn future_timestamp_is_refused() {
    let deps = deps();
    signature_refused(&deps, plain_request(), at(SIGNED_AT - 301), "stale").await;
}

#[tokio::test]
async fn replaying_with_a_fresh_timestamp_but_the_old_digest_is_refused() {
    let deps = deps();
    let mut request = plain_request();
    let header = request
        .headers
        .get("x-signature")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let moved = header.replace(
        &format!("t={SIGNED_AT}"),
        &format!("t={}", SIGNED_AT + 3600),
    );
    set_header(&mut request, "x-signature", &moved);
    signature_refused(&deps, request, at(SIGNED_AT + 3600), "mismatch").await;
}

#[tokio::test]
async fn missing_signature_is_refused() {
    let deps = deps();
    let mut request = plain_request();
    request.headers.remove("x-signature");
    signature_refused(&deps, request, now(), "missing").await;
}

#[tokio::test]
async fn malformed_signature_is_refused() {
    for value in [
        "",
        "v1=abc",
        "t=1768230247",
        "t=soon,v1=00",
        "sha256=deadbeef",
    ] {
        let deps = deps();
        let mut request = plain_request();
        set_header(&mut request, "x-signature", value);
        signature_refused(&deps, request, now(), "malformed").await;
    }
}

// ------------------------------------------------------------------------------------
// Refused: method, size, content type

#[tokio::test]
async fn other_methods_are_refused_with_allow_post() {
    for method in [Method::GET, Method::PUT, Method::DELETE, Method::OPTIONS] {
        let deps = deps();
        let mut request = plain_request();
        request.request_context.http.method = method.clone();
        let response = call(&deps, request, now()).await;
        assert_eq!(response.status_code, 405, "{method}");
        assert_eq!(header(&response, "allow"), Some("POST"));
        assert!(deps.queue.sent().is_empty());
    }
}

#[tokio::test]
async fn oversize_body_is_refused_even_when_correctly_signed() {
    let deps = deps();
    // Valid JSON, correctly signed, one byte over the limit.
    let padding = "x".repeat(MAX_MESSAGE_BYTES + 1 - r#"{"event_id":"evt_big","pad":""}"#.len());
    let body = format!(r#"{{"event_id":"evt_big","pad":"{padding}"}}"#);
    assert_eq!(body.len(), MAX_MESSAGE_BYTES + 1);
    let response = refused(&deps, signed(&body, SECRET, SIGNED_AT), now(), 413).await;
    assert_eq!(response["error"], "payload_too_large");
    assert_eq!(response["max_bytes"], MAX_QUEUED_BYTES);

    // The same, base64-encoded.
    let mut request = signed(&body, SECRET, SIGNED_AT);
    request.body = Some(base64::engine::general_purpose::STANDARD.encode(&body));
    request.is_base64_encoded = true;
    refused(&deps, request, now(), 413).await;
}

#[tokio::test]
async fn a_body_that_fits_but_not_with_its_attributes_is_refused() {
    let deps = deps();
    let envelope = r#"{"event_id":"evt_edge","event_type":"invoice.paid","pad":""}"#;
    let padding = "x".repeat(MAX_MESSAGE_BYTES - envelope.len());
    let body =
        format!(r#"{{"event_id":"evt_edge","event_type":"invoice.paid","pad":"{padding}"}}"#);
    assert_eq!(body.len(), MAX_MESSAGE_BYTES);
    refused(&deps, signed(&body, SECRET, SIGNED_AT), now(), 413).await;
}

#[tokio::test]
async fn a_body_its_dead_letter_could_not_carry_is_refused() {
    // Fits the queue (262,057 bytes and a few attributes), but its dead letter, with the
    // enricher's reason attributes, would not: it would be redriven without a reason.
    let deps = deps();
    let mut event: Value = serde_json::from_str(&fixture_body()).expect("the fixture is JSON");
    // An unknown field: validation skips it, the queue carries it.
    event["note"] = Value::String(String::new());
    let envelope = event.to_string();
    event["note"] = Value::String("x".repeat(262_057 - envelope.len()));
    let body = event.to_string();
    assert_eq!(body.len(), 262_057);
    let response = refused(&deps, signed(&body, SECRET, SIGNED_AT), now(), 413).await;
    assert_eq!(response["max_bytes"], MAX_QUEUED_BYTES);
    assert!(deps.queue.sent().is_empty());
}

#[tokio::test]
async fn size_is_checked_before_the_signature() {
    let deps = deps();
    let mut request = plain_request();
    request.body = Some("x".repeat(MAX_MESSAGE_BYTES + 1));
    refused(&deps, request, now(), 413).await;
}

#[tokio::test]
async fn wrong_content_type_is_refused() {
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/jsonx"),
        None,
    ] {
        let deps = deps();
        let mut request = plain_request();
        match content_type {
            Some(value) => set_header(&mut request, "content-type", value),
            None => {
                request.headers.remove("content-type");
            }
        }
        let body = refused(&deps, request, now(), 415).await;
        assert_eq!(body["error"], "unsupported_media_type", "{content_type:?}");
    }
}

#[tokio::test]
async fn content_type_is_checked_before_the_signature() {
    let deps = deps();
    let mut request = plain_request();
    request.headers.remove("x-signature");
    set_header(&mut request, "content-type", "text/plain");
    refused(&deps, request, now(), 415).await;
}

// ------------------------------------------------------------------------------------
// Refused: validation

#[tokio::test]
async fn invalid_event_is_refused_naming_the_field() {
    let deps = deps();
    let body = read("events/webhooks/invalid/customer.email--no-at-sign.json");
    let response = refused(&deps, signed(&body, SECRET, SIGNED_AT), now(), 400).await;

    assert_eq!(response["error"], "invalid_event");
    let errors = response["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["field"], "customer.email");
    let message = errors[0]["message"].as_str().unwrap();
    assert!(!message.is_empty());
    assert!(
        !message.contains("yuki"),
        "the value must not be echoed: {message}"
    );
}

#[tokio::test]
async fn every_invalid_fixture_is_refused_with_the_field_its_name_gives() {
    let dir = path("events/webhooks/invalid");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        let Some((field, _)) = name.split_once("--") else {
            continue;
        };
        let body = std::fs::read_to_string(entry.path()).unwrap();
        let deps = deps();
        let response = refused(&deps, signed(&body, SECRET, SIGNED_AT), now(), 400).await;
        assert_eq!(response["errors"][0]["field"], field, "{name}: {response}");
        seen += 1;
    }
    assert!(seen >= 20, "only {seen} invalid fixtures found in {dir}");
}

#[tokio::test]
async fn the_signature_is_checked_before_validation() {
    let deps = deps();
    let mut request = signed(
        &read("events/webhooks/invalid/customer.email--no-at-sign.json"),
        SECRET,
        SIGNED_AT,
    );
    request.headers.remove("x-signature");
    signature_refused(&deps, request, now(), "missing").await;
}

#[tokio::test]
async fn a_signed_body_that_is_not_utf8_is_invalid() {
    let deps = deps();
    let bytes = b"{\"event_id\":\"\xff\"}";
    let mut request = plain_request();
    request.body = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
    request.is_base64_encoded = true;
    let signature = format!(
        "t={SIGNED_AT},v1={}",
        WebhookSecret::new(SECRET.as_bytes())
            .unwrap()
            .signature(SIGNED_AT, bytes)
    );
    set_header(&mut request, "x-signature", &signature);
    let response = refused(&deps, request, now(), 400).await;
    assert_eq!(response["errors"][0]["field"], "body");
}

#[tokio::test]
async fn text_a_queue_cannot_carry_is_invalid() {
    let deps = deps();
    let body = r#"{"event_id":"evt_odd","event_type":"bell\u0007"}"#;
    let response = refused(&deps, signed(body, SECRET, SIGNED_AT), now(), 400).await;
    assert_eq!(response["errors"][0]["field"], "event_type");
}

#[tokio::test]
async fn a_body_flagged_base64_that_is_not_is_invalid() {
    let deps = deps();
    let mut request = plain_request();
    request.is_base64_encoded = true;
    let response = refused(&deps, request, now(), 400).await;
    assert_eq!(response["errors"][0]["field"], "body");
}

// ------------------------------------------------------------------------------------
// Enqueue failures

#[tokio::test]
async fn retryable_enqueue_failure_answers_503_with_retry_after() {
    let deps = deps_with(&[SECRET], TestQueue::failing(Failure::Transient));
    let response = call(&deps, plain_request(), now()).await;

    assert_eq!(response.status_code, 503, "{:?}", response.body);
    let retry_after: u32 = header(&response, "retry-after").unwrap().parse().unwrap();
    assert!(retry_after > 0);
    assert!(deps.queue.sent().is_empty());
    let body = json_body(&response);
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(
        !body.to_string().contains("simulated"),
        "internal errors stay in the log: {body}"
    );
}

#[tokio::test]
async fn permanent_enqueue_failure_answers_500_without_details() {
    let deps = deps_with(&[SECRET], TestQueue::failing(Failure::Permanent));
    let response = call(&deps, plain_request(), now()).await;

    assert_eq!(response.status_code, 500, "{:?}", response.body);
    assert_eq!(header(&response, "retry-after"), None);
    assert!(deps.queue.sent().is_empty());
    assert_eq!(
        json_body(&response),
        serde_json::json!({ "error": "internal_error" })
    );
}

#[tokio::test]
async fn a_signed_request_sent_again_is_not_queued_twice() {
    let deps = deps();
    let body = fixture_body();
    let first = call(&deps, signed(&body, SECRET, SIGNED_AT), now()).await;
    assert_eq!(first.status_code, 202);
    // The captured request, replayed within the window (or a sender's retry after a lost
    // answer): answered, never queued again.
    for _ in 0..3 {
        let again = call(&deps, signed(&body, SECRET, SIGNED_AT), now()).await;
        assert_eq!(again.status_code, 200);
        assert_eq!(json_body(&again)["status"], "already_accepted");
    }
    assert_eq!(deps.queue.sent().len(), 1);
    // Signed anew, it is a new request: the enricher dedupes the event itself.
    let resigned = call(&deps, signed(&body, SECRET, SIGNED_AT + 1), now()).await;
    assert_eq!(resigned.status_code, 202);
    assert_eq!(deps.queue.sent().len(), 2);
}

#[tokio::test]
async fn a_request_that_failed_to_queue_is_queued_when_sent_again() {
    let deps = deps_with(&[SECRET], TestQueue::failing(Failure::Transient));
    let body = fixture_body();
    let failed = call(&deps, signed(&body, SECRET, SIGNED_AT), now()).await;
    assert_eq!(failed.status_code, 503);
    assert!(
        !deps
            .replays
            .was_queued(&referral_ingest::replay::Fingerprint::of(
                SIGNED_AT,
                body.as_bytes()
            ))
    );
}
