//! The Runtime API server driven by a fake function: raw HTTP/1.1 on kept-alive
//! connections, as `lambda_runtime`'s hyper client sends it.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::*;

const WAIT: Duration = Duration::from_secs(5);

struct FakeFunction {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl FakeFunction {
    async fn connect(api: &RuntimeApi) -> Self {
        let stream = TcpStream::connect(api.address()).await.unwrap();
        let (read, writer) = stream.into_split();
        FakeFunction {
            reader: BufReader::new(read),
            writer,
        }
    }

    async fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) {
        let mut head = format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !headers.iter().any(|(name, _)| *name == "transfer-encoding") {
            head.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        self.writer.write_all(head.as_bytes()).await.unwrap();
        self.writer.write_all(body).await.unwrap();
    }

    async fn read(&mut self) -> Answer {
        tokio::time::timeout(WAIT, read_answer(&mut self.reader))
            .await
            .expect("an answer")
    }

    /// Whether the server closed the connection.
    async fn closed(&mut self) -> bool {
        let mut byte = [0; 1];
        matches!(
            tokio::time::timeout(WAIT, self.reader.read(&mut byte)).await,
            Ok(Ok(0))
        )
    }
}

/// A response as the tests look at it; header names lower-cased.
struct Answer {
    status: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Answer {
    fn wants_close(&self) -> bool {
        self.headers
            .get("connection")
            .is_some_and(|value| value.eq_ignore_ascii_case("close"))
    }
}

/// One response off the wire: the head through httparse, the body by its length.
async fn read_answer(reader: &mut BufReader<OwnedReadHalf>) -> Answer {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let read = reader.read_until(b'\n', &mut head).await.unwrap();
        assert!(read > 0, "the connection closed mid-answer");
    }
    let mut fields = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut fields);
    assert!(response.parse(&head).unwrap().is_complete());
    let status = response.code.unwrap().to_string();
    let headers: BTreeMap<String, String> = response
        .headers
        .iter()
        .map(|field| {
            let value = String::from_utf8_lossy(field.value).into_owned();
            (field.name.to_ascii_lowercase(), value)
        })
        .collect();
    let length = headers
        .get("content-length")
        .map_or(0, |length| length.parse().unwrap());
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.unwrap();
    Answer {
        status,
        headers,
        body,
    }
}

async fn recv(api: &mut RuntimeApi) -> ApiRequest {
    tokio::time::timeout(WAIT, api.recv())
        .await
        .expect("a request within 5 s")
        .expect("the server runs")
}

fn invocation(request_id: &str, body: &[u8]) -> NextInvocation {
    NextInvocation {
        request_id: request_id.to_owned(),
        deadline_ms: 1_700_000_003_000,
        function_arn: "arn:aws:lambda:us-east-1:123456789012:function:f".to_owned(),
        trace_id: "Root=1-00000000-000000000000000000000000;Sampled=0".to_owned(),
        body: body.to_vec(),
    }
}

const NEXT: &str = "/2018-06-01/runtime/invocation/next";

#[tokio::test]
async fn one_connection_carries_polls_and_answers() {
    let mut api = RuntimeApi::bind().await.unwrap();
    assert!(api.address().ip().is_loopback());
    let mut function = FakeFunction::connect(&api).await;

    for (n, request_id) in ["req-1", "req-2"].into_iter().enumerate() {
        function.send("GET", NEXT, &[], b"").await;
        let ApiRequest::Next { connection, reply } = recv(&mut api).await else {
            panic!("expected a poll");
        };
        assert_eq!(connection, 0, "the same kept-alive connection");
        let event = format!("{{\"n\":{n}}}");
        reply
            .send(invocation(request_id, event.as_bytes()))
            .unwrap();

        let delivered = function.read().await;
        assert_eq!(delivered.status, "200");
        assert_eq!(delivered.body, event.as_bytes());
        let header = |name: &str| delivered.headers.get(name).cloned().unwrap_or_default();
        assert_eq!(header("lambda-runtime-aws-request-id"), request_id);
        assert_eq!(header("lambda-runtime-deadline-ms"), "1700000003000");
        assert!(header("lambda-runtime-invoked-function-arn").ends_with(":function:f"));
        assert!(header("lambda-runtime-trace-id").starts_with("Root=1-"));
        assert_eq!(header("content-type"), "application/json");
        assert!(!delivered.wants_close());

        let path = format!("/2018-06-01/runtime/invocation/{request_id}/response");
        function.send("POST", &path, &[], b"{\"ok\":true}").await;
        match recv(&mut api).await {
            ApiRequest::Response {
                request_id: id,
                body,
            } => {
                assert_eq!(id, request_id);
                assert_eq!(body, b"{\"ok\":true}");
            }
            other => panic!("expected a response, got {other:?}"),
        }
        let accepted = function.read().await;
        assert_eq!(accepted.status, "202");
        assert_eq!(accepted.body, br#"{"status":"OK"}"#);
    }
    assert_eq!(api.connections_accepted(), 1);
}

#[tokio::test]
async fn errors_are_named_by_their_json_body() {
    let mut api = RuntimeApi::bind().await.unwrap();
    let mut function = FakeFunction::connect(&api).await;
    // What lambda_runtime 1.5 sends for a handler error.
    let unhandled = [("lambda-runtime-function-error-type", "unhandled")];
    let diagnostic = br#"{"errorType":"&referral::Oops","errorMessage":"it broke"}"#;
    function
        .send(
            "POST",
            "/2018-06-01/runtime/invocation/r1/error",
            &unhandled,
            diagnostic,
        )
        .await;
    match recv(&mut api).await {
        ApiRequest::Error { request_id, error } => {
            assert_eq!(request_id, "r1");
            assert_eq!(error.error_type, "&referral::Oops");
            assert_eq!(error.message, "it broke");
        }
        other => panic!("expected an error, got {other:?}"),
    }
    assert_eq!(function.read().await.status, "202");

    function
        .send(
            "POST",
            "/2018-06-01/runtime/invocation/r2/error",
            &unhandled,
            b"plain text",
        )
        .await;
    match recv(&mut api).await {
        ApiRequest::Error { error, .. } => {
            assert_eq!(error.error_type, "unhandled");
            assert_eq!(error.message, "plain text");
        }
        other => panic!("expected an error, got {other:?}"),
    }
    assert_eq!(function.read().await.status, "202");

    let init = [("lambda-runtime-function-error-type", "Runtime.InitError")];
    let body = br#"{"errorType":"Runtime.InitError","errorMessage":"no config"}"#;
    function
        .send("POST", "/2018-06-01/runtime/init/error", &init, body)
        .await;
    match recv(&mut api).await {
        ApiRequest::InitError { error } => {
            assert_eq!(error.error_type, "Runtime.InitError");
            assert_eq!(error.message, "no config");
        }
        other => panic!("expected an init error, got {other:?}"),
    }
    assert_eq!(function.read().await.status, "202");
}

#[tokio::test]
async fn a_chunked_response_is_put_together() {
    let mut api = RuntimeApi::bind().await.unwrap();
    let mut function = FakeFunction::connect(&api).await;
    let chunked = [("transfer-encoding", "chunked")];
    let body =
        b"5\r\n{\"a\":\r\n3;ext=1\r\n42}\r\n0\r\nLambda-Runtime-Function-Error-Type: x\r\n\r\n";
    function
        .send(
            "POST",
            "/2018-06-01/runtime/invocation/c/response",
            &chunked,
            body,
        )
        .await;
    match recv(&mut api).await {
        ApiRequest::Response { body, .. } => assert_eq!(body, b"{\"a\":42}"),
        other => panic!("expected a response, got {other:?}"),
    }
    assert_eq!(function.read().await.status, "202");
    // The connection is still in step after the chunked body.
    function.send("GET", "/nowhere", &[], b"").await;
    assert_eq!(function.read().await.status, "404");
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_are_refused_without_closing() {
    let api = RuntimeApi::bind().await.unwrap();
    let mut function = FakeFunction::connect(&api).await;
    let cases = [
        ("GET", "/2018-06-01/runtime/invocation/x/response", "405"),
        ("POST", NEXT, "405"),
        ("GET", "/2018-06-01/runtime/invocation//error", "404"),
        ("GET", "/2018-06-01/runtime/restore/next", "404"),
        ("GET", "/", "404"),
    ];
    for (method, path, status) in cases {
        function.send(method, path, &[], b"").await;
        assert_eq!(function.read().await.status, status, "{method} {path}");
    }
}

#[tokio::test]
async fn a_response_over_the_limit_fails_the_invocation() {
    let mut api = RuntimeApi::bind().await.unwrap();
    let mut function = FakeFunction::connect(&api).await;
    let too_large = (MAX_PAYLOAD_BYTES + 1).to_string();
    let head = format!(
        "POST /2018-06-01/runtime/invocation/big/response HTTP/1.1\r\ncontent-length: {too_large}\r\n\r\n"
    );
    function.writer.write_all(head.as_bytes()).await.unwrap();
    match recv(&mut api).await {
        ApiRequest::Error { request_id, error } => {
            assert_eq!(request_id, "big");
            assert_eq!(error.error_type, RESPONSE_TOO_LARGE);
        }
        other => panic!("expected an error, got {other:?}"),
    }
    let refused = function.read().await;
    assert_eq!(refused.status, "413");
    assert!(refused.wants_close());
    assert!(function.closed().await);
}

#[tokio::test]
async fn a_poll_left_unanswered_closes_its_connection() {
    let mut api = RuntimeApi::bind().await.unwrap();
    let mut first = FakeFunction::connect(&api).await;
    first.send("GET", NEXT, &[], b"").await;
    let ApiRequest::Next { connection, reply } = recv(&mut api).await else {
        panic!("expected a poll");
    };
    assert_eq!(connection, 0);
    drop(reply);
    assert!(first.closed().await);

    // Connections are numbered in the order they come.
    let mut second = FakeFunction::connect(&api).await;
    second.send("GET", NEXT, &[], b"").await;
    let ApiRequest::Next { connection, .. } = recv(&mut api).await else {
        panic!("expected a poll");
    };
    assert_eq!(connection, 1);
    assert_eq!(api.connections_accepted(), 2);
}

#[tokio::test]
async fn connection_close_is_honoured() {
    let mut api = RuntimeApi::bind().await.unwrap();
    let mut function = FakeFunction::connect(&api).await;
    let close = [("connection", "close")];
    function
        .send(
            "POST",
            "/2018-06-01/runtime/invocation/r/response",
            &close,
            b"1",
        )
        .await;
    assert!(matches!(recv(&mut api).await, ApiRequest::Response { .. }));
    let answer = function.read().await;
    assert_eq!(answer.status, "202");
    assert!(answer.wants_close());
    assert!(function.closed().await);
}

#[tokio::test]
async fn malformed_requests_get_400_and_a_closed_connection() {
    let api = RuntimeApi::bind().await.unwrap();
    let mut function = FakeFunction::connect(&api).await;
    function
        .writer
        .write_all(b"POST /2018-06-01/runtime/init/error HTTP/1.1\r\ncontent-length: many\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(function.read().await.status, "400");
    assert!(function.closed().await);
}

/// Routing alone: what each method and path reaches.
#[tokio::test]
async fn routes() {
    let (sender, mut requests) = mpsc::unbounded_channel();
    let router = router().with_state(sender);
    let call = |method: &str, path: &str| {
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .extension(ConnectionId(7))
            .body(axum::body::Body::from("{}"))
            .unwrap();
        router.clone().oneshot(request)
    };

    let poll = tokio::spawn(call("GET", &format!("{NEXT}?x=1")));
    match requests.recv().await {
        Some(ApiRequest::Next { connection, reply }) => {
            assert_eq!(connection, 7);
            reply.send(invocation("q", b"{}")).unwrap();
        }
        other => panic!("expected a poll, got {other:?}"),
    }
    assert_eq!(poll.await.unwrap().unwrap().status(), StatusCode::OK);

    let answer = call("POST", "/2018-06-01/runtime/invocation/a-b/response").await;
    assert_eq!(answer.unwrap().status(), StatusCode::ACCEPTED);
    assert!(matches!(
        requests.recv().await,
        Some(ApiRequest::Response { request_id, .. }) if request_id == "a-b"
    ));
    let answer = call("POST", "/2018-06-01/runtime/invocation/a-b/error").await;
    assert_eq!(answer.unwrap().status(), StatusCode::ACCEPTED);
    assert!(matches!(
        requests.recv().await,
        Some(ApiRequest::Error { request_id, .. }) if request_id == "a-b"
    ));
    let answer = call("POST", "/2018-06-01/runtime/init/error").await;
    assert_eq!(answer.unwrap().status(), StatusCode::ACCEPTED);
    assert!(matches!(
        requests.recv().await,
        Some(ApiRequest::InitError { .. })
    ));

    for (method, path, status) in [
        (
            "POST",
            "/2020-01-01/runtime/init/error",
            StatusCode::NOT_FOUND,
        ),
        (
            "POST",
            "/2018-06-01/runtime/invocation//error",
            StatusCode::NOT_FOUND,
        ),
        (
            "POST",
            "/2018-06-01/runtime/invocation//response",
            StatusCode::NOT_FOUND,
        ),
        (
            "PUT",
            "/2018-06-01/runtime/init/error",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        ("HEAD", NEXT, StatusCode::METHOD_NOT_ALLOWED),
    ] {
        let answer = call(method, path).await.unwrap();
        assert_eq!(answer.status(), status, "{method} {path}");
    }
    assert!(
        requests.try_recv().is_err(),
        "nothing else reached the runner"
    );
}
