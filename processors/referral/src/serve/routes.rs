//! The HTTP face of `local serve`: `POST /webhooks` is API Gateway in front of the ingest
//! handler; `GET /features/{email}`, `GET /messages/{email}` and `GET /dead-letters` answer
//! JSON from the running pipeline's stores; `GET /` is a page that shows them, with what
//! this process saw (`/counters`, `/webhooks`, `/customers`) and a replay button per dead
//! letter (`POST /dead-letters/{message_id}/replay`).

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::encodings::Body as LambdaBody;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HOST};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Body as _;
use referral_aws_local::apigw_event::http_request;
use referral_domain::event::normalise_email;
use referral_domain::ports::{FeatureStore, MessageStore, OutgoingMessage, WorkQueue};
use referral_ingest::Deps;
use serde_json::{Value, json};

use super::activity::Activity;
use super::lookups::{DeadLetters, LookupError, Lookups};

/// The largest body the listener reads. Larger than SQS's limit, so the ingest handler (not
/// the listener) answers 413 for bodies up to it, as it does deployed; past it the listener
/// refuses without reading further.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Everything a request may reach.
#[derive(Debug)]
pub struct Routes<Q, S, M, D> {
    pub ingest: Deps<Q>,
    pub lookups: Lookups<S, M, D>,
    pub activity: Arc<Activity>,
}

/// The header the page's replay button sends. A header no form can set makes a browser ask
/// first (a CORS preflight, which this server never grants), so another site open in the
/// same browser cannot replay letters through it.
pub const REPLAY_HEADER: &str = "x-referral-replay";

/// The page: one file, its script and style inline, nothing from elsewhere.
const PAGE: &str = include_str!("page.html");
/// No origin but this one; the page's own inline script and style, and nothing else.
const PAGE_POLICY: &str = "default-src 'none'; connect-src 'self'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

impl<Q, S, M, D> Routes<Q, S, M, D>
where
    Q: WorkQueue + 'static,
    S: FeatureStore + 'static,
    M: MessageStore + 'static,
    D: DeadLetters + 'static,
{
    /// The routes: the `GET` lookups; everything else goes to the ingest handler, as API
    /// Gateway sends every request of the webhook route to the Lambda.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/", get(Self::page))
            .route("/counters", get(Self::counters))
            .route("/webhooks", get(Self::webhooks))
            .route("/customers", get(Self::customers))
            .route("/dead-letters/{message_id}/replay", post(Self::replay))
            .route("/features/{email}", get(Self::features))
            .route("/messages/{email}", get(Self::messages))
            .route("/dead-letters", get(Self::dead_letters))
            .method_not_allowed_fallback(Self::other)
            .fallback(Self::other)
            .with_state(self)
    }

    async fn page() -> Response {
        (
            StatusCode::OK,
            [
                (CONTENT_TYPE, "text/html; charset=utf-8"),
                (CONTENT_SECURITY_POLICY, PAGE_POLICY),
                (CACHE_CONTROL, "no-store"),
            ],
            PAGE,
        )
            .into_response()
    }

    async fn counters(State(routes): State<Arc<Self>>) -> Response {
        json_answer(StatusCode::OK, &routes.activity.counters())
    }

    async fn webhooks(State(routes): State<Arc<Self>>) -> Response {
        json_answer(StatusCode::OK, &routes.activity.webhooks())
    }

    async fn customers(State(routes): State<Arc<Self>>) -> Response {
        match routes.lookups.customers(&routes.activity.customers()).await {
            Ok(customers) => json_answer(StatusCode::OK, &customers),
            Err(error) => lookup_failed(&error, "customers"),
        }
    }

    /// Sends a dead letter back to the webhook queue as it was (body and attributes), then
    /// removes it: a failure in between leaves it in both, never in neither, and a second
    /// replay of it is a duplicate the enricher recognises.
    async fn replay(
        State(routes): State<Arc<Self>>,
        headers: HeaderMap,
        message_id: Result<Path<String>, PathRejection>,
    ) -> Response {
        if !headers.contains_key(REPLAY_HEADER) {
            return error_answer(
                StatusCode::FORBIDDEN,
                &format!("a replay needs the {REPLAY_HEADER} header, as the page sends it"),
            );
        }
        // A page whose name was rebound to this address is same-origin and may send the
        // header; its requests still carry its own name.
        if !headers
            .get(HOST)
            .and_then(|host| host.to_str().ok())
            .is_some_and(is_loopback_host)
        {
            return error_answer(
                StatusCode::FORBIDDEN,
                "a replay is accepted only for a loopback host (127.0.0.1, localhost, [::1])",
            );
        }
        let Ok(Path(message_id)) = message_id else {
            return error_answer(StatusCode::BAD_REQUEST, "the message id is not valid UTF-8");
        };
        if !D::REPLAYS {
            return error_answer(
                StatusCode::NOT_IMPLEMENTED,
                &LookupError::ReplayElsewhere.to_string(),
            );
        }
        let letter = match routes.lookups.dead_letters.look().await {
            Ok(letters) => letters
                .into_iter()
                .find(|letter| letter.message_id == message_id),
            Err(error) => return lookup_failed(&error, "dead-letters"),
        };
        let Some(letter) = letter else {
            return error_answer(StatusCode::NOT_FOUND, "no such dead letter");
        };
        let resent = OutgoingMessage {
            body: letter.body,
            attributes: letter.attributes,
        };
        if let Err(error) = routes.ingest.queue.send(vec![resent]).await {
            return lookup_failed(&LookupError::Store(error), "dead-letters");
        }
        match routes.lookups.dead_letters.remove(&message_id).await {
            Ok(_) => json_answer(StatusCode::ACCEPTED, &json!({ "replayed": message_id })),
            Err(error) => lookup_failed(&error, "dead-letters"),
        }
    }

    async fn features(
        State(routes): State<Arc<Self>>,
        email: Result<Path<String>, PathRejection>,
    ) -> Response {
        let email = match customer(email) {
            Ok(email) => email,
            Err(refused) => return error_answer(StatusCode::BAD_REQUEST, &refused),
        };
        match routes.lookups.features(&email).await {
            Ok(Some(features)) => json_answer(StatusCode::OK, &features),
            Ok(None) => error_answer(StatusCode::NOT_FOUND, "no features for that customer"),
            Err(error) => lookup_failed(&error, "features"),
        }
    }

    async fn messages(
        State(routes): State<Arc<Self>>,
        email: Result<Path<String>, PathRejection>,
    ) -> Response {
        let email = match customer(email) {
            Ok(email) => email,
            Err(refused) => return error_answer(StatusCode::BAD_REQUEST, &refused),
        };
        match routes.lookups.messages(&email).await {
            Ok(messages) => json_answer(StatusCode::OK, &messages),
            Err(error) => lookup_failed(&error, "messages"),
        }
    }

    async fn dead_letters(State(routes): State<Arc<Self>>) -> Response {
        match routes.lookups.dead_letters().await {
            Ok(letters) => json_answer(StatusCode::OK, &letters),
            Err(error) => lookup_failed(&error, "dead-letters"),
        }
    }

    /// A `GET` of no lookup is not found; any other method is the ingest handler's.
    async fn other(State(routes): State<Arc<Self>>, request: Request) -> Response {
        if request.method() == Method::GET {
            return error_answer(StatusCode::NOT_FOUND, "not found");
        }
        routes.ingest(request).await
    }

    async fn ingest(&self, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let body = match read_body(body).await {
            Ok(body) => body,
            Err(answer) => return answer,
        };
        let event = api_gateway_request(parts, body);
        let response = referral_ingest::handle(&self.ingest, event, Utc::now()).await;
        let body = response.body;
        let status = u16::try_from(response.status_code)
            .ok()
            .and_then(|status| StatusCode::from_u16(status).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let answer_json = match &body {
            Some(LambdaBody::Text(text)) => serde_json::from_str::<Value>(text).ok(),
            _ => None,
        };
        self.activity.webhook(status.as_u16(), answer_json.as_ref());
        let body = match body {
            Some(LambdaBody::Text(text)) => Body::from(text),
            Some(LambdaBody::Binary(bytes)) => Body::from(bytes),
            _ => Body::empty(),
        };
        let mut answer = (status, body).into_response();
        answer.headers_mut().extend(response.headers);
        answer
    }
}

/// The body, at most [`MAX_BODY_BYTES`]: a declared length over it is refused before a byte
/// of the body is read, a chunked body as soon as it passes the limit.
async fn read_body(body: Body) -> Result<Bytes, Response> {
    let too_large = || {
        json_answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            &json!({ "error": "payload_too_large", "max_bytes": MAX_BODY_BYTES }),
        )
    };
    if body.size_hint().lower() > MAX_BODY_BYTES as u64 {
        return Err(too_large());
    }
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(too_large()),
        Err(error) => Err(error_answer(
            StatusCode::BAD_REQUEST,
            &format!("cannot read the body: {error}"),
        )),
    }
}

fn json_answer(status: StatusCode, document: &Value) -> Response {
    (
        status,
        [(CONTENT_TYPE, "application/json")],
        document.to_string(),
    )
        .into_response()
}

fn error_answer(status: StatusCode, message: &str) -> Response {
    json_answer(status, &json!({ "error": message }))
}

fn lookup_failed(error: &LookupError, route: &str) -> Response {
    tracing::warn!(error = %referral_domain::error_chain(error), path = %redacted_path(route), "lookup failed");
    error_answer(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("the store did not answer: {error}"),
    )
}

/// Whether a `Host` header names this machine's loopback interface, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !name.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    matches!(
        name.to_ascii_lowercase().as_str(),
        "127.0.0.1" | "localhost" | "[::1]"
    )
}

/// The customer a path names (percent-decoded by axum, as clients may encode `@`), as the
/// webhook schema normalises e-mail addresses.
/// Refused: why, for a 400.
fn customer(segment: Result<Path<String>, PathRejection>) -> Result<String, String> {
    let Path(decoded) =
        segment.map_err(|_| "the e-mail address in the path is not valid UTF-8".to_owned())?;
    normalise_email(&decoded).map_err(|error| error.to_string())
}

/// The route without the customer it names, for logs.
fn redacted_path(route: &str) -> String {
    format!("/{route}/…")
}

/// The API Gateway HTTP API (payload v2) event for a request, as the ingest Lambda gets it.
fn api_gateway_request(parts: axum::http::request::Parts, body: Bytes) -> ApiGatewayV2httpRequest {
    let target = parts.uri.path_and_query().map_or_else(
        || parts.uri.path().to_owned(),
        |target| target.as_str().to_owned(),
    );
    let mut event = http_request(parts.method, &target, parts.headers, body.to_vec(), false);
    event.request_context.request_id = Some(format!("local-{:x}", fastrand::u64(..)));
    event
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
