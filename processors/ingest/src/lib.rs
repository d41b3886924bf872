//! The ingest Lambda: an API Gateway HTTP API (payload v2) request carrying a signed
//! webhook is verified, validated and put on the webhook queue.
//!
//! Checks, in order: method (405), size (413), content type (415), signature (401),
//! validation (400), enqueue (503 when worth retrying, else 500). Only a request that
//! passes them all is enqueued, and answered 202 with its `event_id`. One log line per
//! request says how it ended; the body, the secrets and e-mail addresses are never logged.
//! Every request gets a trace (`trace.rs`): the sender's `traceparent` continued, or a new
//! one; its id is on the log line, and the queued message carries it as `traceparent`.

pub mod config;
pub mod metrics;
pub mod queue;
pub mod replay;
pub mod signature;
pub mod trace;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::header::{ALLOW, CONTENT_TYPE, RETRY_AFTER};
use aws_lambda_events::http::{HeaderMap, HeaderName, HeaderValue, Method};
use base64::Engine;
use chrono::{DateTime, Utc};
use referral_domain::error_chain;
use referral_domain::event::parse_webhook;
use referral_domain::ports::{MAX_QUEUED_BYTES, WorkQueue};
use referral_domain::redact::mask_emails;
use referral_domain::trace::TRACEPARENT;
use serde_json::{Value, json};

use replay::{Fingerprint, ReplayCache};
use trace::{RequestTrace, request_trace};

pub use config::{Config, ENV_VARS};
pub use metrics::RequestCounters;
pub use queue::{CUSTOMER_REF_ATTRIBUTE, EVENT_ID_ATTRIBUTE, EVENT_TYPE_ATTRIBUTE, queue_message};
pub use signature::{SIGNATURE_HEADER, SignatureError, WebhookSecret, sign, verify};

/// The `service` dimension of the function's metrics.
pub const METRICS_SERVICE: &str = "ingest";

/// What the function's role must allow: reading its signing secrets at start-up, sending
/// to the queue.
pub const IAM_ACTIONS: &[&str] = &["secretsmanager:GetSecretValue", "sqs:SendMessage"];

/// Sent with a 503: how long a sender should wait before trying again.
pub const RETRY_AFTER_SECONDS: u32 = 5;

/// Built once per process (cold start), used by every request. `queue` is the webhook
/// queue: `referral_aws::sqs::SqsQueue` in the Lambda and under `referral local serve`.
#[derive(Debug)]
pub struct Deps<Q> {
    pub config: Config,
    pub queue: Q,
    /// Signed requests this process queued, so a captured one sent again is not queued twice.
    pub replays: ReplayCache,
}

impl<Q> Deps<Q> {
    pub fn new(config: Config, queue: Q) -> Self {
        Deps {
            config,
            queue,
            replays: ReplayCache::default(),
        }
    }
}

/// Handles one request. `now` is the clock the signature window is measured against.
pub async fn handle<Q: WorkQueue>(
    deps: &Deps<Q>,
    request: ApiGatewayV2httpRequest,
    now: DateTime<Utc>,
) -> ApiGatewayV2httpResponse {
    let request_id = request.request_context.request_id.clone();
    let trace = request_trace(&request.headers);
    let mut outcome = process(deps, request, trace, now).await;
    outcome.trace = trace;
    outcome.log(request_id.as_deref());
    outcome.into_response()
}

async fn process<Q: WorkQueue>(
    deps: &Deps<Q>,
    request: ApiGatewayV2httpRequest,
    trace: RequestTrace,
    now: DateTime<Utc>,
) -> Outcome {
    if request.request_context.http.method != Method::POST {
        return Outcome::new(
            405,
            "method_not_allowed",
            json!({ "error": "method_not_allowed" }),
        )
        .with_header(ALLOW, HeaderValue::from_static("POST"));
    }

    let body = match read_body(request.body, request.is_base64_encoded) {
        Ok(body) => body,
        Err(BodyError::TooLarge) => return too_large(),
        Err(BodyError::NotBase64) => {
            return invalid(
                "not_base64",
                None,
                "body",
                "`body` is flagged base64 but is not valid base64",
            );
        }
    };

    if !is_json(&request.headers) {
        return Outcome::new(
            415,
            "unsupported_media_type",
            json!({ "error": "unsupported_media_type", "expected": "application/json" }),
        );
    }

    let header = signature_header(&request.headers);
    let verified = match verify(
        &deps.config.secrets,
        header.as_deref(),
        &body,
        now.timestamp(),
        deps.config.signature_tolerance,
    ) {
        Ok(verified) => verified,
        Err(err) => {
            return Outcome::new(
                401,
                err.reason(),
                json!({ "error": "invalid_signature", "reason": err.reason(), "message": err.to_string() }),
            );
        }
    };

    let Ok(text) = String::from_utf8(body) else {
        return invalid("not_utf8", None, "body", "`body` is not UTF-8 text");
    };
    let webhook = match parse_webhook(&text) {
        Ok(webhook) => webhook,
        Err(rejection) => {
            let error = rejection.error;
            return invalid(
                error.kind(),
                rejection.event_id,
                error.field(),
                &error.to_string(),
            );
        }
    };
    let event_id = webhook.event_id().to_owned();
    let mut message = queue_message(text, &webhook);
    if let Some(trace) = trace.trace {
        message
            .attributes
            .insert(TRACEPARENT.to_owned(), trace.to_string());
    }
    let customer = message.attributes.get(CUSTOMER_REF_ATTRIBUTE).cloned();
    let carried = [
        ("body", Some(&message.body)),
        ("event_id", message.attributes.get(EVENT_ID_ATTRIBUTE)),
        ("event_type", message.attributes.get(EVENT_TYPE_ATTRIBUTE)),
    ];
    for (field, value) in carried {
        if value.is_some_and(|value| !queue::sqs_can_carry(value)) {
            let message = format!("`{field}` contains characters a queue message cannot carry");
            return invalid(
                "unsupported_characters",
                Some(event_id.clone()),
                field,
                &message,
            )
            .with_customer(customer);
        }
    }
    // The queue's size rule, body and attributes together, checked before any call, with
    // room kept for a dead letter's reason: a message that could not be dead-lettered
    // would be redriven without one, and loop on every replay.
    if message.size() > MAX_QUEUED_BYTES {
        return too_large()
            .with_event(Some(event_id))
            .with_customer(customer);
    }

    let request = Fingerprint::of(verified.timestamp, message.body.as_bytes());
    if deps.replays.was_queued(&request) {
        // The very request queued before (a replay, or a sender's retry after a lost
        // answer): accepted already, so not queued again.
        let mut outcome = Outcome::new(
            200,
            "already_accepted",
            json!({ "event_id": event_id, "status": "already_accepted" }),
        )
        .with_event(Some(event_id))
        .with_customer(customer);
        outcome.secret_index = Some(verified.secret_index);
        return outcome;
    }

    let outcome = match deps.queue.send(vec![message]).await {
        Ok(()) => {
            let tolerance = i64::try_from(deps.config.signature_tolerance.as_secs()).unwrap_or(i64::MAX);
            deps.replays.queued(request, now.timestamp(), tolerance);
            Outcome::new(202, "accepted", json!({ "event_id": event_id }))
        }
        Err(err) if err.is_transient() => Outcome::new(
            503,
            "enqueue_transient",
            json!({ "error": "temporarily_unavailable", "retry_after_seconds": RETRY_AFTER_SECONDS }),
        )
        .with_header(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS))
        .with_detail(mask_emails(&error_chain(&err))),
        Err(err) => Outcome::new(500, "enqueue_failed", json!({ "error": "internal_error" }))
            .with_detail(mask_emails(&error_chain(&err))),
    };
    let mut outcome = outcome.with_event(Some(event_id)).with_customer(customer);
    outcome.secret_index = Some(verified.secret_index);
    outcome
}

enum BodyError {
    TooLarge,
    NotBase64,
}

/// The body as signed: base64-decoded when flagged, and no larger than a queue message.
fn read_body(body: Option<String>, base64_encoded: bool) -> Result<Vec<u8>, BodyError> {
    let body = body.unwrap_or_default();
    let bytes = if base64_encoded {
        // Refuse before decoding what cannot fit once decoded.
        if body.len() > MAX_QUEUED_BYTES.div_ceil(3) * 4 {
            return Err(BodyError::TooLarge);
        }
        base64::engine::general_purpose::STANDARD
            .decode(body.trim())
            .map_err(|_| BodyError::NotBase64)?
    } else {
        body.into_bytes()
    };
    if bytes.len() > MAX_QUEUED_BYTES {
        return Err(BodyError::TooLarge);
    }
    Ok(bytes)
}

/// `application/json`, with or without parameters (`; charset=utf-8`), in any case.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media_type| media_type.trim().eq_ignore_ascii_case("application/json"))
}

/// Every `x-signature` value, joined as API Gateway joins repeated headers. A value that
/// is not visible ASCII reads as an empty (hence malformed) header.
fn signature_header(headers: &HeaderMap) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(SIGNATURE_HEADER)
        .iter()
        .map(|value| value.to_str().unwrap_or_default())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

fn too_large() -> Outcome {
    Outcome::new(
        413,
        "too_large",
        json!({ "error": "payload_too_large", "max_bytes": MAX_QUEUED_BYTES }),
    )
}

fn invalid(reason: &'static str, event_id: Option<String>, field: &str, message: &str) -> Outcome {
    Outcome::new(
        400,
        reason,
        json!({ "error": "invalid_event", "errors": [{ "field": field, "message": message }] }),
    )
    .with_event(event_id)
    .with_detail(field.to_owned())
}

/// How a request ended: the response, and what the log line says about it.
struct Outcome {
    status: u16,
    /// A short stable word: `accepted`, `stale`, `missing_field`, `enqueue_transient`, ...
    reason: &'static str,
    body: Value,
    headers: Vec<(HeaderName, HeaderValue)>,
    event_id: Option<String>,
    customer_ref: Option<String>,
    secret_index: Option<usize>,
    /// The request's trace: on the log line and, as `traceparent`, on the response.
    trace: RequestTrace,
    /// For the log only: the invalid field, or the adapter's error.
    detail: Option<String>,
}

impl Outcome {
    fn new(status: u16, reason: &'static str, body: Value) -> Self {
        Outcome {
            status,
            reason,
            body,
            headers: Vec::new(),
            event_id: None,
            customer_ref: None,
            secret_index: None,
            trace: RequestTrace {
                trace: None,
                refused: None,
            },
            detail: None,
        }
    }

    fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    fn with_event(mut self, event_id: Option<String>) -> Self {
        self.event_id = event_id;
        self
    }

    fn with_customer(mut self, customer_ref: Option<String>) -> Self {
        self.customer_ref = customer_ref;
        self
    }

    fn with_detail(mut self, detail: String) -> Self {
        self.detail = Some(detail);
        self
    }

    fn log(&self, request_id: Option<&str>) {
        let trace_id = self.trace.trace.map(|trace| trace.trace_id());
        let trace_id = trace_id.as_deref();
        let traceparent_refused = self.trace.refused.map(|error| error.kind());
        macro_rules! log_at {
            ($level:expr) => {
                tracing::event!(
                    $level,
                    status = self.status,
                    reason = self.reason,
                    event_id = self.event_id.as_deref(),
                    customer_ref = self.customer_ref.as_deref(),
                    secret = self.secret_index.map(|index| index + 1),
                    detail = self.detail.as_deref(),
                    trace_id,
                    traceparent_refused,
                    request_id,
                    "webhook request handled"
                )
            };
        }
        match self.status {
            // A 503 is retried by the sender: worth watching, not an error yet.
            503 => log_at!(tracing::Level::WARN),
            500.. => log_at!(tracing::Level::ERROR),
            400.. => log_at!(tracing::Level::WARN),
            _ => log_at!(tracing::Level::INFO),
        }
    }

    fn into_response(self) -> ApiGatewayV2httpResponse {
        let mut response = ApiGatewayV2httpResponse::default();
        response.status_code = i64::from(self.status);
        response
            .headers
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in self.headers {
            response.headers.insert(name, value);
        }
        // The sender learns the trace its webhook is found under (a trace it started, or
        // the one it sent, continued by ingest's span).
        if let Some(trace) = self.trace.trace
            && let Ok(value) = HeaderValue::from_str(&trace.to_string())
        {
            response.headers.insert(TRACEPARENT, value);
        }
        response.body = Some(Body::Text(self.body.to_string()));
        response
    }
}
