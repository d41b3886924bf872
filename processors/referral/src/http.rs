//! Just enough HTTP/1.1 for the local tools: the listener in front of the ingest handler,
//! the client of `local send`, and the Lambda Runtime API of `invoke`. Bodies by
//! `Content-Length` or chunked, sizes capped. Not a general web server: it serves one
//! machine's development loop on 127.0.0.1.
//!
//! The webhook listener and client use one request per connection (`Connection: close`).
//! The Runtime API keeps connections open ([`read_head`], [`write_keep_alive`]): the Lambda
//! runtime's hyper client pools them, and a connection the server closes while the client
//! picks it from the pool fails that request, which ends the function process.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
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
    #[error("body larger than {limit} bytes")]
    TooLarge { limit: usize },
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

impl Message {
    /// Whether the peer asked to close the connection after this exchange.
    pub fn wants_close(&self) -> bool {
        self.headers
            .get("connection")
            .is_some_and(|value| value.eq_ignore_ascii_case("close"))
    }
}

/// Reads one HTTP/1.1 message (request or response) from `stream`.
pub async fn read_message(stream: &mut TcpStream) -> Result<Message, HttpError> {
    let mut reader = BufReader::new(stream);
    let exchange = async {
        let mut message = read_head_inner(&mut reader).await?;
        message.body = read_body_inner(&mut reader, &message.headers, MAX_BODY_BYTES).await?;
        Ok(message)
    };
    tokio::time::timeout(IO_TIMEOUT, exchange)
        .await
        .map_err(|_| HttpError::Timeout)?
}

/// Reads the start line and headers of the next message on a kept-alive connection (the
/// body stays unread and empty: see [`read_body`]). `None` when the peer closed the
/// connection between messages. Waiting for a message has no time limit, since an idle
/// pooled connection is normal; once its first byte is in, the head must follow in time.
pub async fn read_head<R>(reader: &mut R) -> Result<Option<Message>, HttpError>
where
    R: AsyncBufRead + Unpin,
{
    if reader.fill_buf().await?.is_empty() {
        return Ok(None);
    }
    tokio::time::timeout(IO_TIMEOUT, read_head_inner(reader))
        .await
        .map_err(|_| HttpError::Timeout)?
        .map(Some)
}

/// Reads the body that belongs to `message`'s head, at most `limit` bytes.
pub async fn read_body<R>(
    reader: &mut R,
    message: &mut Message,
    limit: usize,
) -> Result<(), HttpError>
where
    R: AsyncBufRead + Unpin,
{
    message.body =
        tokio::time::timeout(IO_TIMEOUT, read_body_inner(reader, &message.headers, limit))
            .await
            .map_err(|_| HttpError::Timeout)??;
    Ok(())
}

async fn read_head_inner<R>(reader: &mut R) -> Result<Message, HttpError>
where
    R: AsyncBufRead + Unpin,
{
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
            return Ok(Message {
                start: (first, second),
                headers,
                body: Vec::new(),
            });
        }
        let (name, value) = header
            .split_once(':')
            .ok_or(HttpError::Malformed("header line"))?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    Err(HttpError::Malformed("too many headers"))
}

async fn read_body_inner<R>(
    reader: &mut R,
    headers: &BTreeMap<String, String>,
    limit: usize,
) -> Result<Vec<u8>, HttpError>
where
    R: AsyncBufRead + Unpin,
{
    let chunked = headers
        .get("transfer-encoding")
        .is_some_and(|value| value.to_ascii_lowercase().contains("chunked"));
    if chunked {
        return read_chunked(reader, limit).await;
    }
    let length: usize = match headers.get("content-length") {
        Some(value) => value_as_length(value)?,
        None => 0,
    };
    if length > limit {
        return Err(HttpError::TooLarge { limit });
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await?;
    Ok(body)
}

/// A chunked body (a streamed Lambda response uses one); trailers are read and dropped.
async fn read_chunked<R>(reader: &mut R, limit: usize) -> Result<Vec<u8>, HttpError>
where
    R: AsyncBufRead + Unpin,
{
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line).await?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size =
            usize::from_str_radix(size, 16).map_err(|_| HttpError::Malformed("chunk size"))?;
        if size == 0 {
            for _ in 0..MAX_HEADER_LINES {
                line.clear();
                if reader.read_line(&mut line).await? == 0 || line.trim_end().is_empty() {
                    return Ok(body);
                }
            }
            return Err(HttpError::Malformed("too many trailers"));
        }
        if body.len().saturating_add(size) > limit {
            return Err(HttpError::TooLarge { limit });
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).await?;
        line.clear();
        reader.read_line(&mut line).await?;
        if !line.trim_end().is_empty() {
            return Err(HttpError::Malformed("chunk end"));
        }
    }
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
    let headers = headers.iter().map(|(n, v)| (n.as_str(), v.as_str()));
    stream
        .write_all(&response_bytes(status, headers, body, true))
        .await?;
    stream.shutdown().await?;
    Ok(())
}

/// Writes a response and leaves the connection open for the next request (or closes it
/// when `close`, announcing it with `Connection: close`).
pub async fn write_keep_alive<'a, W>(
    writer: &mut W,
    status: i64,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    body: &[u8],
    close: bool,
) -> Result<(), HttpError>
where
    W: AsyncWrite + Unpin,
{
    // One write: head and body in separate small writes would wait on Nagle and the
    // peer's delayed ACK, tens of milliseconds per exchange.
    writer
        .write_all(&response_bytes(status, headers, body, close))
        .await?;
    if close {
        writer.shutdown().await?;
    }
    Ok(())
}

fn response_bytes<'a>(
    status: i64,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    body: &[u8],
    close: bool,
) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers {
        if !name.eq_ignore_ascii_case("content-length") && !name.eq_ignore_ascii_case("connection")
        {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str(&format!("content-length: {}\r\n", body.len()));
    if close {
        head.push_str("connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
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
