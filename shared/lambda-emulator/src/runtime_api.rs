//! The Lambda Runtime API on a loopback port, as a function process sees it in Lambda:
//! `GET /2018-06-01/runtime/invocation/next` (long poll), `POST .../invocation/{id}/response`,
//! `POST .../invocation/{id}/error`, `POST .../init/error`. The server only carries requests
//! to the one who drives it ([`RuntimeApi::recv`]); deciding what to deliver and when is the
//! runner's business.
//!
//! Checked against `lambda_runtime` 1.5 (`lambda-runtime/src/requests.rs`): its hyper client
//! keeps connections alive, so every connection serves many requests; errors come as JSON
//! `{"errorType", "errorMessage"}` with `Lambda-Runtime-Function-Error-Type: unhandled`
//! (init errors: `Runtime.InitError`), so the body, not the header, names the error.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::header::{CONNECTION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::{Body as _, Incoming};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt;

/// The API version prefix every path starts with.
pub const PREFIX: &str = "/2018-06-01/runtime";
/// Lambda's limit for a synchronous invocation's event and response.
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;
/// What Lambda answers a response over [`MAX_PAYLOAD_BYTES`] with.
pub const RESPONSE_TOO_LARGE: &str = "Function.ResponseSizeTooLarge";

/// An error as the function reported it (or as Lambda reports what happened to it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionError {
    pub error_type: String,
    pub message: String,
}

/// One invocation as `GET .../invocation/next` hands it to the function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextInvocation {
    pub request_id: String,
    /// Milliseconds since the Unix epoch by which the function must answer.
    pub deadline_ms: u64,
    pub function_arn: String,
    pub trace_id: String,
    pub body: Vec<u8>,
}

/// A request of the function process.
#[derive(Debug)]
pub enum ApiRequest {
    /// The function waits for its next event. Answer through `reply`; dropping it closes the
    /// connection unanswered. `connection` numbers connections in the order they were
    /// accepted (see [`RuntimeApi::connections_accepted`]).
    Next {
        connection: u64,
        reply: oneshot::Sender<NextInvocation>,
    },
    /// The answer to an invocation.
    Response { request_id: String, body: Vec<u8> },
    /// The invocation failed.
    Error {
        request_id: String,
        error: FunctionError,
    },
    /// The function could not initialise.
    InitError { error: FunctionError },
}

/// The server: a loopback port and the requests that arrive on it. Dropping it stops the
/// server and closes every connection.
#[derive(Debug)]
pub struct RuntimeApi {
    address: SocketAddr,
    requests: mpsc::UnboundedReceiver<ApiRequest>,
    accepted: Arc<AtomicU64>,
    server: JoinHandle<()>,
}

impl RuntimeApi {
    /// Listens on 127.0.0.1, on a port the system picks.
    pub async fn bind() -> std::io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let address = listener.local_addr()?;
        let (sender, requests) = mpsc::unbounded_channel();
        let accepted = Arc::new(AtomicU64::new(0));
        let server = tokio::spawn(accept(listener, sender, Arc::clone(&accepted)));
        Ok(RuntimeApi {
            address,
            requests,
            accepted,
            server,
        })
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Connections accepted so far. Read just before starting a process, it separates that
    /// process's connections (numbered from it on) from those of processes before it.
    pub fn connections_accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    /// The next request of the function process.
    pub async fn recv(&mut self) -> Option<ApiRequest> {
        self.requests.recv().await
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn accept(
    listener: TcpListener,
    requests: mpsc::UnboundedSender<ApiRequest>,
    accepted: Arc<AtomicU64>,
) {
    let router = router().with_state(requests);
    let mut http = http1::Builder::new();
    // lambda_runtime pools its connections and picks an idle one for its next request: a
    // connection the server closed meanwhile fails that request, which ends the function
    // process. So no header timeout (hyper's would also run while a connection is idle).
    http.header_read_timeout(None);
    // Owned here so that aborting this task aborts every connection with it.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            incoming = listener.accept() => match incoming {
                Ok((stream, _)) => {
                    let id = accepted.fetch_add(1, Ordering::SeqCst);
                    connections.spawn(serve(http.clone(), stream, id, router.clone()));
                }
                Err(error) => {
                    tracing::debug!(%error, "runtime API accept failed");
                    // Out of descriptors, say: retry without spinning.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next() => {}
        }
    }
}

/// The number of a connection in accept order, for [`ApiRequest::Next`].
#[derive(Debug, Clone, Copy)]
struct ConnectionId(u64);

/// Marks an answer that must not be sent: the connection closes instead.
#[derive(Debug, Clone, Copy)]
struct Unanswered;

/// What hyper is told when a poll is left unanswered; it closes the connection.
#[derive(Debug, thiserror::Error)]
#[error("the runner dropped the poll unanswered")]
struct PollDropped;

/// Answers requests on one connection until the client closes it.
async fn serve(http: http1::Builder, stream: TcpStream, id: u64, router: Router) {
    // Small request/response exchanges: do not wait on Nagle.
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectionId(id));
        let router = router.clone();
        async move {
            let Ok(response) = router.oneshot(request).await;
            if response.extensions().get::<Unanswered>().is_some() {
                return Err(PollDropped);
            }
            Ok(response)
        }
    });
    if let Err(error) = http.serve_connection(TokioIo::new(stream), service).await {
        tracing::debug!(%error, "runtime API connection ended");
    }
}

type Requests = mpsc::UnboundedSender<ApiRequest>;

fn router() -> Router<Requests> {
    Router::new()
        .route(&format!("{PREFIX}/invocation/next"), get(next))
        .route(
            &format!("{PREFIX}/invocation/{{request_id}}/response"),
            post(response),
        )
        .route(
            &format!("{PREFIX}/invocation/{{request_id}}/error"),
            post(invocation_error),
        )
        .route(&format!("{PREFIX}/init/error"), post(init_error))
        .method_not_allowed_fallback(wrong_method)
        .fallback(not_found)
}

async fn wrong_method(uri: Uri) -> Response {
    // axum's router matches an empty request id; the Runtime API has no such path.
    if uri.path().contains("//") {
        return not_found().await;
    }
    status_answer(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
}

async fn not_found() -> Response {
    status_answer(StatusCode::NOT_FOUND, "not a Runtime API path")
}

/// The long poll: answered when the runner hands over an invocation, which may take as long
/// as the runner likes.
async fn next(
    State(requests): State<Requests>,
    method: Method,
    axum::Extension(ConnectionId(connection)): axum::Extension<ConnectionId>,
) -> Response {
    // axum routes HEAD to a GET handler; the Runtime API has no HEAD.
    if method != Method::GET {
        return status_answer(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    let (reply, invocation) = oneshot::channel();
    if requests
        .send(ApiRequest::Next { connection, reply })
        .is_err()
    {
        return runner_stopped();
    }
    match invocation.await {
        Ok(invocation) => event_answer(invocation),
        Err(_) => {
            let mut response = Response::default();
            response.extensions_mut().insert(Unanswered);
            response
        }
    }
}

async fn response(
    State(requests): State<Requests>,
    Path(request_id): Path<String>,
    request: Request,
) -> Response {
    if request_id.is_empty() {
        return not_found().await;
    }
    let body = match payload(request).await {
        Ok(body) => body,
        Err(Payload::TooLarge) => {
            let _ = requests.send(ApiRequest::Error {
                request_id,
                error: FunctionError {
                    error_type: RESPONSE_TOO_LARGE.to_owned(),
                    message: format!(
                        "Response payload size exceeded maximum allowed payload size \
                         ({MAX_PAYLOAD_BYTES} bytes)."
                    ),
                },
            });
            return Payload::TooLarge.refusal();
        }
        Err(unreadable) => return unreadable.refusal(),
    };
    forward(
        &requests,
        ApiRequest::Response {
            request_id,
            body: body.to_vec(),
        },
    )
}

async fn invocation_error(
    State(requests): State<Requests>,
    Path(request_id): Path<String>,
    request: Request,
) -> Response {
    if request_id.is_empty() {
        return not_found().await;
    }
    let headers = request.headers().clone();
    match payload(request).await {
        Ok(body) => forward(
            &requests,
            ApiRequest::Error {
                request_id,
                error: function_error(&headers, &body),
            },
        ),
        Err(refused) => refused.refusal(),
    }
}

async fn init_error(State(requests): State<Requests>, request: Request) -> Response {
    let headers = request.headers().clone();
    match payload(request).await {
        Ok(body) => forward(
            &requests,
            ApiRequest::InitError {
                error: function_error(&headers, &body),
            },
        ),
        Err(refused) => refused.refusal(),
    }
}

/// Why a request's body was not read.
#[derive(Debug)]
enum Payload {
    TooLarge,
    Unreadable(axum::Error),
}

impl Payload {
    /// The answer; the connection closes after it, since the rest of the body may still be
    /// on the wire.
    fn refusal(self) -> Response {
        let mut response = match self {
            Payload::TooLarge => status_answer(StatusCode::PAYLOAD_TOO_LARGE, "payload too large"),
            Payload::Unreadable(error) => {
                status_answer(StatusCode::BAD_REQUEST, &error.to_string())
            }
        };
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
        response
    }
}

/// The body, at most [`MAX_PAYLOAD_BYTES`]; a declared length over it is refused before a
/// byte of the body is read.
async fn payload(request: Request) -> Result<Bytes, Payload> {
    let body = request.into_body();
    if body.size_hint().lower() > MAX_PAYLOAD_BYTES as u64 {
        return Err(Payload::TooLarge);
    }
    match Limited::new(body, MAX_PAYLOAD_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(Payload::TooLarge),
        Err(error) => Err(Payload::Unreadable(axum::Error::new(error))),
    }
}

/// Hands a request to the runner: 202 as Lambda answers it.
fn forward(requests: &Requests, request: ApiRequest) -> Response {
    if requests.send(request).is_err() {
        return runner_stopped();
    }
    (
        StatusCode::ACCEPTED,
        [(CONTENT_TYPE, "application/json")],
        r#"{"status":"OK"}"#,
    )
        .into_response()
}

fn runner_stopped() -> Response {
    status_answer(StatusCode::INTERNAL_SERVER_ERROR, "the runner has stopped")
}

fn event_answer(invocation: NextInvocation) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in [
        ("lambda-runtime-aws-request-id", invocation.request_id),
        (
            "lambda-runtime-deadline-ms",
            invocation.deadline_ms.to_string(),
        ),
        (
            "lambda-runtime-invoked-function-arn",
            invocation.function_arn,
        ),
        ("lambda-runtime-trace-id", invocation.trace_id),
    ] {
        // The runner makes these values; one that is not a header value is left out.
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    (StatusCode::OK, headers, invocation.body).into_response()
}

fn status_answer(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "errorType": "RuntimeApi", "errorMessage": message });
    (
        status,
        [(CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The error a function posted: the JSON body names it; the header is the fallback for a
/// runtime that sends something else.
fn function_error(headers: &HeaderMap, body: &[u8]) -> FunctionError {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Diagnostic {
        error_type: Option<String>,
        error_message: Option<String>,
    }
    let header = headers
        .get("lambda-runtime-function-error-type")
        .and_then(|value| value.to_str().ok())
        .map(|value| value.trim().to_owned());
    match serde_json::from_slice::<Diagnostic>(body) {
        Ok(diagnostic) => FunctionError {
            error_type: diagnostic
                .error_type
                .or(header)
                .unwrap_or_else(|| "Unknown".to_owned()),
            message: diagnostic.error_message.unwrap_or_default(),
        },
        Err(_) => FunctionError {
            error_type: header.unwrap_or_else(|| "Unknown".to_owned()),
            message: String::from_utf8_lossy(body).into_owned(),
        },
    }
}

#[cfg(test)]
#[path = "runtime_api_tests.rs"]
mod tests;
