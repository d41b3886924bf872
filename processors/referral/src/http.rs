//! Just enough HTTP/1.1 for the local pipeline: the listener in front of the ingest handler
//! and the client of `local send`. One request per connection (`Connection: close`), bodies
//! by `Content-Length`, sizes capped. Not a general web server: it serves one machine's
//! development loop on 127.0.0.1.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Larger than SQS's limit, so the ingest handler (not the listener) answers 413.
const MAX_BODY_BYTES: usize = 1024 * 1024;
const MAX_HEADER_LINES: usize = 100;
const IO_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed HTTP message: {0}")]
    Malformed(&'static str),
    #[error("body larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("timed out")]
    Timeout,
}

/// A request or response as both ends need it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// Request: `METHOD PATH`; response: the status code as text.
    pub start: (String, String),
    /// Header names lower-cased.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

/// Reads one HTTP/1.1 message (request or response) from `stream`.
pub async fn read_message(stream: &mut TcpStream) -> Result<Message, HttpError> {
    tokio::time::timeout(IO_TIMEOUT, read_message_inner(stream))
        .await
        .map_err(|_| HttpError::Timeout)?
}

async fn read_message_inner(stream: &mut TcpStream) -> Result<Message, HttpError> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let mut parts = line.trim_end().splitn(3, ' ');
    let first = parts.next().unwrap_or_default().to_owned();
    let second = parts.next().unwrap_or_default().to_owned();
    if first.is_empty() || second.is_empty() {
        return Err(HttpError::Malformed("start line"));
    }
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for _ in 0..MAX_HEADER_LINES {
        line.clear();
        reader.read_line(&mut line).await?;
        let header = line.trim_end();
        if header.is_empty() {
            let length: usize = match headers.get("content-length") {
                Some(value) => value_as_length(value)?,
                None => 0,
            };
            if length > MAX_BODY_BYTES {
                return Err(HttpError::TooLarge);
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).await?;
            return Ok(Message {
                start: (first, second),
                headers,
                body,
            });
        }
        let (name, value) = header
            .split_once(':')
            .ok_or(HttpError::Malformed("header line"))?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    Err(HttpError::Malformed("too many headers"))
}

fn value_as_length(value: &str) -> Result<usize, HttpError> {
    value
        .trim()
        .parse()
        .map_err(|_| HttpError::Malformed("content-length"))
}

/// Writes a response and closes the exchange.
pub async fn write_response(
    stream: &mut TcpStream,
    status: i64,
    headers: &BTreeMap<String, String>,
    body: &[u8],
) -> Result<(), HttpError> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers {
        if !name.eq_ignore_ascii_case("content-length") && !name.eq_ignore_ascii_case("connection")
        {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.shutdown().await?;
    Ok(())
}

/// POSTs `body` to `url` (`http://host:port/path`) and returns status and body.
pub async fn post(
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, Vec<u8>), HttpError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or(HttpError::Malformed("only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    };
    let exchange = async {
        let mut stream = TcpStream::connect(authority).await?;
        let mut head = format!("POST {path} HTTP/1.1\r\nhost: {authority}\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        ));
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        let response = read_message(&mut stream).await?;
        let status = response
            .start
            .1
            .parse()
            .map_err(|_| HttpError::Malformed("status code"))?;
        Ok::<_, HttpError>((status, response.body))
    };
    tokio::time::timeout(IO_TIMEOUT, exchange)
        .await
        .map_err(|_| HttpError::Timeout)?
}

fn reason(status: i64) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}
