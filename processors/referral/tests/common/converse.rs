//! A stand-in for Amazon Bedrock's Converse API on loopback, for the tests that run a real
//! function binary with `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` aimed at it: it answers
//! `POST /model/{modelId}/converse` with the answer text the test picks for each request
//! (from the request itself, so that the pairing does not depend on the order of calls), and
//! keeps every call it received.
//!
//! Plain HTTP/1.1 over `std::net` on its own threads, so it serves whatever runtime the test
//! uses (or none): keep-alive, `Content-Length` and chunked bodies, `Expect: 100-continue`.
//! A request it cannot answer gets a Converse error, which the caller's fallback shows.
// Each test file that includes this uses a different part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

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

/// The running stand-in; it stops accepting when dropped.
#[derive(Debug)]
pub struct ConverseStandIn {
    address: SocketAddr,
    calls: Arc<Mutex<Vec<Call>>>,
    stopping: Arc<AtomicBool>,
}

impl ConverseStandIn {
    /// Listens on a free 127.0.0.1 port; `answer` picks the model's text for each call.
    pub fn start(answer: impl Fn(&Call) -> Option<String> + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the Converse stand-in");
        let address = listener.local_addr().expect("the stand-in's address");
        let calls = Arc::new(Mutex::new(Vec::new()));
        let stopping = Arc::new(AtomicBool::new(false));
        let answer: Arc<Answerer> = Arc::new(answer);
        let (kept, stop) = (Arc::clone(&calls), Arc::clone(&stopping));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (calls, answer) = (Arc::clone(&kept), Arc::clone(&answer));
                std::thread::spawn(move || serve(stream, &calls, answer.as_ref()));
            }
        });
        ConverseStandIn {
            address,
            calls,
            stopping,
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
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect_timeout(&self.address, Duration::from_secs(1));
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

/// Answers the requests of one connection until the client closes it.
fn serve(stream: TcpStream, calls: &Mutex<Vec<Call>>, answer: &Answerer) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Some(request) = read_request(&mut reader, &mut writer) {
        let (status, error_type, body) = respond(&request, calls, answer);
        let mut head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        );
        if let Some(error_type) = error_type {
            head.push_str(&format!("x-amzn-errortype: {error_type}\r\n"));
        }
        head.push_str("\r\n");
        if writer.write_all(head.as_bytes()).is_err()
            || writer.write_all(body.as_bytes()).is_err()
            || writer.flush().is_err()
        {
            return;
        }
    }
}

struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

/// The status, error type and body of the answer to `request`.
fn respond(
    request: &Request,
    calls: &Mutex<Vec<Call>>,
    answer: &Answerer,
) -> (&'static str, Option<&'static str>, String) {
    let error = |message: &str| serde_json::json!({ "message": message }).to_string();
    let model_id = request
        .path
        .strip_prefix("/model/")
        .and_then(|rest| rest.strip_suffix("/converse"));
    let (Some(model_id), "POST") = (model_id, request.method.as_str()) else {
        return (
            "404 Not Found",
            Some("UnknownOperationException"),
            error("the stand-in answers POST /model/{modelId}/converse only"),
        );
    };
    let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
        return (
            "400 Bad Request",
            Some("ValidationException"),
            error("the request body is not JSON"),
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
        model_id: percent_decode(model_id),
        system: texts(&body["system"]),
        user,
        body,
    };
    let text = answer(&call);
    if let Ok(mut calls) = calls.lock() {
        calls.push(call);
    }
    match text {
        Some(text) => ("200 OK", None, converse_response(&text)),
        None => (
            "400 Bad Request",
            Some("ValidationException"),
            error("the test chose no answer for this prompt"),
        ),
    }
}

/// One request from the connection; `None` at its end or on anything malformed.
fn read_request(reader: &mut BufReader<TcpStream>, writer: &mut TcpStream) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut length = 0;
    let mut chunked = false;
    let mut continue_expected = false;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 {
            return None;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().ok()?,
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "expect" => continue_expected = value.eq_ignore_ascii_case("100-continue"),
            _ => {}
        }
    }
    if continue_expected {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").ok()?;
    }
    let body = if chunked {
        read_chunked(reader)?
    } else {
        let mut body = vec![0; length];
        reader.read_exact(&mut body).ok()?;
        body
    };
    Some(Request { method, path, body })
}

fn read_chunked(reader: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size).ok()?;
        let size = size.trim().split(';').next()?;
        let size = usize::from_str_radix(size, 16).ok()?;
        if size == 0 {
            // Trailers, up to the blank line.
            loop {
                let mut trailer = String::new();
                if reader.read_line(&mut trailer).ok()? == 0 || trailer.trim().is_empty() {
                    return Some(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).ok()?;
        let mut crlf = [0; 2];
        reader.read_exact(&mut crlf).ok()?;
    }
}

/// `%3A` → `:` and so on; anything else as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%')
            .then(|| bytes.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                index += 3;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
