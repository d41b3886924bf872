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

use serde::Deserialize;
use tokio::io::BufReader;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};

use crate::http::{self, HttpError, Message};

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
    // Owned here so that aborting this task aborts every connection with it.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            incoming = listener.accept() => match incoming {
                Ok((stream, _)) => {
                    let id = accepted.fetch_add(1, Ordering::SeqCst);
                    connections.spawn(serve(stream, id, requests.clone()));
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

/// Answers requests on one connection until the client closes it.
async fn serve(stream: TcpStream, id: u64, requests: mpsc::UnboundedSender<ApiRequest>) {
    // Small request/response exchanges: do not wait on Nagle.
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut request = match http::read_head(&mut reader).await {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(error) => return refuse(&mut write, 400, &error.to_string()).await,
        };
        let route = Route::of(&request.start.0, &request.start.1);
        match http::read_body(&mut reader, &mut request, MAX_PAYLOAD_BYTES).await {
            Ok(()) => {}
            Err(HttpError::TooLarge { limit }) => {
                if let Route::Response(request_id) = route {
                    let _ = requests.send(ApiRequest::Error {
                        request_id,
                        error: FunctionError {
                            error_type: RESPONSE_TOO_LARGE.to_owned(),
                            message: format!(
                                "Response payload size exceeded maximum allowed payload size ({limit} bytes)."
                            ),
                        },
                    });
                }
                // The rest of the body is still on the wire: the connection cannot go on.
                return refuse(&mut write, 413, "payload too large").await;
            }
            Err(error) => return refuse(&mut write, 400, &error.to_string()).await,
        }
        let close = request.wants_close();
        let Some((status, headers, body)) = answer(route, request, id, &requests).await else {
            return;
        };
        let headers = headers.iter().map(|(n, v)| (*n, v.as_str()));
        if http::write_keep_alive(&mut write, status, headers, &body, close)
            .await
            .is_err()
            || close
        {
            return;
        }
    }
}

/// What a request asks for, by method and path.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Next,
    Response(String),
    Error(String),
    InitError,
    WrongMethod,
    Unknown,
}

impl Route {
    fn of(method: &str, target: &str) -> Self {
        let path = target.split('?').next().unwrap_or_default();
        let Some(rest) = path.strip_prefix(PREFIX) else {
            return Route::Unknown;
        };
        let segments: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
        let (route, expected) = match segments.as_slice() {
            ["invocation", "next"] => (Route::Next, "GET"),
            ["invocation", id, "response"] if !id.is_empty() => {
                (Route::Response((*id).to_owned()), "POST")
            }
            ["invocation", id, "error"] if !id.is_empty() => {
                (Route::Error((*id).to_owned()), "POST")
            }
            ["init", "error"] => (Route::InitError, "POST"),
            _ => return Route::Unknown,
        };
        if method == expected {
            route
        } else {
            Route::WrongMethod
        }
    }
}

type Answer = (i64, Vec<(&'static str, String)>, Vec<u8>);

/// The response to one request; `None` closes the connection unanswered.
async fn answer(
    route: Route,
    request: Message,
    connection: u64,
    requests: &mpsc::UnboundedSender<ApiRequest>,
) -> Option<Answer> {
    let forward = match route {
        Route::Next => {
            let (reply, invocation) = oneshot::channel();
            if requests
                .send(ApiRequest::Next { connection, reply })
                .is_err()
            {
                return Some(status_answer(500, "the runner has stopped"));
            }
            return invocation.await.ok().map(event_answer);
        }
        Route::Response(request_id) => ApiRequest::Response {
            request_id,
            body: request.body,
        },
        Route::Error(request_id) => ApiRequest::Error {
            request_id,
            error: function_error(&request),
        },
        Route::InitError => ApiRequest::InitError {
            error: function_error(&request),
        },
        Route::WrongMethod => return Some(status_answer(405, "method not allowed")),
        Route::Unknown => return Some(status_answer(404, "not a Runtime API path")),
    };
    if requests.send(forward).is_err() {
        return Some(status_answer(500, "the runner has stopped"));
    }
    Some((
        202,
        vec![("content-type", "application/json".to_owned())],
        br#"{"status":"OK"}"#.to_vec(),
    ))
}

fn event_answer(invocation: NextInvocation) -> Answer {
    let headers = vec![
        ("content-type", "application/json".to_owned()),
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
    ];
    (200, headers, invocation.body)
}

fn status_answer(status: i64, message: &str) -> Answer {
    let body = serde_json::json!({ "errorType": "RuntimeApi", "errorMessage": message });
    (
        status,
        vec![("content-type", "application/json".to_owned())],
        body.to_string().into_bytes(),
    )
}

async fn refuse(write: &mut OwnedWriteHalf, status: i64, message: &str) {
    let (status, headers, body) = status_answer(status, message);
    let headers = headers.iter().map(|(n, v)| (*n, v.as_str()));
    let _ = http::write_keep_alive(write, status, headers, &body, true).await;
}

/// The error a function posted: the JSON body names it; the header is the fallback for a
/// runtime that sends something else.
fn function_error(request: &Message) -> FunctionError {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Diagnostic {
        error_type: Option<String>,
        error_message: Option<String>,
    }
    let header = request
        .headers
        .get("lambda-runtime-function-error-type")
        .cloned();
    match serde_json::from_slice::<Diagnostic>(&request.body) {
        Ok(diagnostic) => FunctionError {
            error_type: diagnostic
                .error_type
                .or(header)
                .unwrap_or_else(|| "Unknown".to_owned()),
            message: diagnostic.error_message.unwrap_or_default(),
        },
        Err(_) => FunctionError {
            error_type: header.unwrap_or_else(|| "Unknown".to_owned()),
            message: String::from_utf8_lossy(&request.body).into_owned(),
        },
    }
}

#[cfg(test)]
#[path = "runtime_api_tests.rs"]
mod tests;
