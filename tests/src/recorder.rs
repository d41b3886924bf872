//! moto's request recorder, driven over its HTTP API (`/moto-api/recorder/*`): the server
//! appends every request it serves to the file named by its `MOTO_RECORDER_FILEPATH`
//! (default `moto_recording` in its working directory) while recording is on, and hands the
//! file back on download. Recording is server-wide: concurrent tests share one file, so
//! account per table.
//!
//! Just enough HTTP/1.1 for that: one request per connection, `Connection: close`, the
//! answer read to its end. The tests crate has no HTTP client and needs none other.

use std::time::Duration;

use referral_aws::config::is_loopback;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A download can be large (every request body of a bench run, base64).
const TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Error)]
pub enum RecorderError {
    #[error("{0} is not an http:// loopback URL; the recorder is only driven on this machine")]
    NotLoopback(String),
    #[error("talking to moto at {authority}: {source}")]
    Io {
        authority: String,
        #[source]
        source: std::io::Error,
    },
    #[error("moto did not answer {path} within {TIMEOUT:?}")]
    Timeout { path: &'static str },
    #[error("moto's answer to {path} is not HTTP/1.1 we can read: {problem}")]
    Malformed {
        path: &'static str,
        problem: &'static str,
    },
    #[error(
        "moto answered {path} with {status}: {body} (a 500 on download means no recording \
         file yet: reset or record first; is MOTO_RECORDER_FILEPATH writable?)"
    )]
    Status {
        path: &'static str,
        status: u16,
        body: String,
    },
}

/// The recorder of one moto server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorder {
    /// `host:port` of the server.
    authority: String,
}

impl Recorder {
    /// The recorder of the server at `endpoint` (`http://127.0.0.1:PORT`).
    pub fn new(endpoint: &str) -> Result<Recorder, RecorderError> {
        let rest = endpoint.strip_prefix("http://");
        let authority = rest
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_default();
        if authority.is_empty() || !is_loopback(endpoint) {
            return Err(RecorderError::NotLoopback(endpoint.to_owned()));
        }
        Ok(Recorder {
            authority: authority.to_owned(),
        })
    }

    /// Records every request from now on.
    pub async fn start(&self) -> Result<(), RecorderError> {
        self.call("POST", "/moto-api/recorder/start-recording")
            .await
            .map(drop)
    }

    pub async fn stop(&self) -> Result<(), RecorderError> {
        self.call("POST", "/moto-api/recorder/stop-recording")
            .await
            .map(drop)
    }

    /// Empties the recording (creating its file), whether or not recording is on.
    pub async fn reset(&self) -> Result<(), RecorderError> {
        self.call("POST", "/moto-api/recorder/reset-recording")
            .await
            .map(drop)
    }

    /// The recording so far: JSON lines, see [`crate::capacity::parse_recording`].
    pub async fn download(&self) -> Result<String, RecorderError> {
        const PATH: &str = "/moto-api/recorder/download-recording";
        let body = self.call("GET", PATH).await?;
        String::from_utf8(body).map_err(|_| RecorderError::Malformed {
            path: PATH,
            problem: "the recording is not UTF-8",
        })
    }

    async fn call(&self, method: &str, path: &'static str) -> Result<Vec<u8>, RecorderError> {
        let io = |source| RecorderError::Io {
            authority: self.authority.clone(),
            source,
        };
        let exchange = async {
            let mut stream = TcpStream::connect(&self.authority).await.map_err(io)?;
            let head = format!(
                "{method} {path} HTTP/1.1\r\nhost: {}\r\ncontent-length: 0\r\n\
                 connection: close\r\n\r\n",
                self.authority
            );
            stream.write_all(head.as_bytes()).await.map_err(io)?;
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await.map_err(io)?;
            Ok(answer)
        };
        let answer = tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| RecorderError::Timeout { path })??;
        let (status, body) = parse_response(&answer)
            .map_err(|problem| RecorderError::Malformed { path, problem })?;
        if !(200..300).contains(&status) {
            let text = String::from_utf8_lossy(&body);
            return Err(RecorderError::Status {
                path,
                status,
                body: text.chars().take(200).collect(),
            });
        }
        Ok(body)
    }
}

/// Status and body of a complete response read to the closed connection's end.
fn parse_response(answer: &[u8]) -> Result<(u16, Vec<u8>), &'static str> {
    let split = answer
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = std::str::from_utf8(&answer[..split]).map_err(|_| "headers are not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or("no status line")?;
    let mut body = answer[split + 4..].to_vec();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err("a header line without a colon");
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") && value != "identity" {
            // Flask sets a length on the string bodies moto returns; anything else is a
            // change on moto's side that should be noticed, not guessed at.
            return Err("chunked bodies are not supported");
        }
        if name.eq_ignore_ascii_case("content-length") {
            let length: usize = value.parse().map_err(|_| "bad content-length")?;
            if length > body.len() {
                return Err("the body is shorter than its content-length");
            }
            body.truncate(length);
        }
    }
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_http_endpoints_are_accepted() {
        assert!(Recorder::new("http://127.0.0.1:5000").is_ok());
        assert!(Recorder::new("http://localhost:5000/").is_ok());
        for bad in [
            "https://127.0.0.1:5000",
            "http://10.0.0.1:5000",
            "http://",
            "127.0.0.1",
        ] {
            assert!(
                matches!(Recorder::new(bad), Err(RecorderError::NotLoopback(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn reads_status_and_body_by_content_length() {
        let answer = b"HTTP/1.1 200 OK\r\nServer: Werkzeug\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(parse_response(answer), Ok((200, b"hello".to_vec())));
        let closed = b"HTTP/1.0 500 INTERNAL SERVER ERROR\r\n\r\noops";
        assert_eq!(parse_response(closed), Ok((500, b"oops".to_vec())));
        let short = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhello";
        assert!(parse_response(short).is_err());
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        assert!(parse_response(chunked).is_err());
        assert!(parse_response(b"garbage").is_err());
    }
}
