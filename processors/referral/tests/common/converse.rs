//! A stand-in for Amazon Bedrock's Converse API on loopback, for the tests that run a real
//! function binary with `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` aimed at it: it answers
//! `POST /model/{modelId}/converse` with the answer text the test picks for each request
//! (from the request itself, so that the pairing does not depend on the order of calls), and
//! keeps every call it received.
//!
//! axum's routes on hyper's HTTP/1 server, as `local serve` runs them, on a thread of its own
//! with its own runtime, so it serves whatever runtime the test uses (or none). A request it
//! cannot answer gets a Converse error, which the caller's fallback shows.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::sync::oneshot;
use tower::ServiceExt;

/// One Converse request as the stand-in received it.
#[derive(Debug, Clone)]
pub struct Call {
    /// The `{modelId}` of the path, percent-decoded.
    pub model_id: String,
    /// The system turn's text blocks, joined.
    pub system: String,
    /// The user turns' text blocks, joined: the prompt the model would read.
    pub user: String,
    /// The whole request body.
    pub body: Value,
}

/// Picks the answer text for a call; `None` answers with a `ValidationException`.
type Answerer = dyn Fn(&Call) -> Option<String> + Send + Sync;

#[derive(Clone)]
struct Shared {
    calls: Arc<Mutex<Vec<Call>>>,
    answer: Arc<Answerer>,
}

/// The running stand-in; it stops when dropped.
#[derive(Debug)]
pub struct ConverseStandIn {
    address: SocketAddr,
    calls: Arc<Mutex<Vec<Call>>>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

impl ConverseStandIn {
    /// Listens on a free 127.0.0.1 port; `answer` picks the model's text for each call.
    pub fn start(answer: impl Fn(&Call) -> Option<String> + Send + Sync + 'static) -> Self {
        // Bound here rather than on the server's thread, so the address is known on return
        // and a failure to bind fails the test where it called.
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind the Converse stand-in");
        let address = listener.local_addr().expect("the stand-in's address");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener, as tokio needs");
        let calls = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            calls: Arc::clone(&calls),
            answer: Arc::new(answer),
        };
        let (stop, stopped) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("the stand-in's runtime");
        let server = std::thread::spawn(move || runtime.block_on(serve(listener, shared, stopped)));
        ConverseStandIn {
            address,
            calls,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// The endpoint to give the SDK (`AWS_ENDPOINT_URL_BEDROCK_RUNTIME`).
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Every Converse call received so far, in the order they arrived.
    pub fn calls(&self) -> Vec<Call> {
        self.calls
            .lock()
            .map(|calls| calls.clone())
            .unwrap_or_default()
    }
}

impl Drop for ConverseStandIn {
    fn drop(&mut self) {
        drop(self.stop.take());
        // The runtime goes with the thread, and with it every connection still open.
        if let Some(server) = self.server.take() {
            let _ = server.join();
        }
    }
}

/// The body of a successful Converse answer whose one text block is `text`.
pub fn converse_response(text: &str) -> String {
    serde_json::json!({
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 10, "outputTokens": 20, "totalTokens": 30},
        "metrics": {"latencyMs": 5},
    })
    .to_string()
}

/// The value of the `label: value` line of the prompt's customer data block (as the prompt
/// writes it: escaped, white space collapsed), if there is one.
pub fn data_field<'a>(user: &'a str, label: &str) -> Option<&'a str> {
    let open = user.find("<customer_data>\n")?;
    let close = user[open..].find("</customer_data>")? + open;
    user[open..close]
        .lines()
        .find_map(|line| line.strip_prefix(label)?.strip_prefix(": "))
}

async fn serve(
    listener: std::net::TcpListener,
    shared: Shared,
    mut stopped: oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
    // Another method on the path gets the same error as another path, not axum's bare 405,
    // so that the SDK names the failure.
    let router = Router::new()
        .route(
            "/model/{model_id}/converse",
            post(converse).fallback(unknown),
        )
        .fallback(unknown)
        .with_state(shared);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
            _ = &mut stopped => return,
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            router.clone().oneshot(request)
        });
        tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
    }
}

async fn converse(
    State(shared): State<Shared>,
    Path(model_id): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return reply(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "the request body is not JSON",
        );
    };
    let texts = |blocks: &Value| -> String {
        blocks
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|block| block["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let user = body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|message| message["role"] == "user")
        .map(|message| texts(&message["content"]))
        .collect::<Vec<_>>()
        .join("\n");
    let call = Call {
        model_id,
        system: texts(&body["system"]),
        user,
        body,
    };
    let text = (shared.answer)(&call);
    if let Ok(mut calls) = shared.calls.lock() {
        calls.push(call);
    }
    match text {
        Some(text) => (
            [(CONTENT_TYPE, "application/json")],
            converse_response(&text),
        )
            .into_response(),
        None => reply(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "the test chose no answer for this prompt",
        ),
    }
}

async fn unknown() -> Response {
    reply(
        StatusCode::NOT_FOUND,
        "UnknownOperationException",
        "the stand-in answers POST /model/{modelId}/converse only",
    )
}

/// A Converse error: the SDK reads its kind from `x-amzn-errortype`.
fn reply(status: StatusCode, error_type: &'static str, message: &str) -> Response {
    let body = serde_json::json!({ "message": message }).to_string();
    let headers = [
        (CONTENT_TYPE.as_str(), "application/json"),
        ("x-amzn-errortype", error_type),
    ];
    (status, headers, body).into_response()
}
