//! moto's request recorder, driven over its HTTP API (`/moto-api/recorder/*`): the server
//! appends every request it serves to the file named by its `MOTO_RECORDER_FILEPATH`
//! (default `moto_recording` in its working directory) while recording is on, and hands the
//! file back on download. Recording is server-wide: concurrent tests share one file, so
//! account per table.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use referral_aws::config::is_loopback;
use thiserror::Error;

/// A download can be large (every request body of a bench run, base64).
const TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Error)]
pub enum RecorderError {
    #[error("{0} is not an http:// loopback URL; the recorder is only driven on this machine")]
    NotLoopback(String),
    #[error("talking to moto at {authority}: {source}")]
    Request {
        authority: String,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("reading moto's answer to {path}: {source}")]
    Answer {
        path: &'static str,
        #[source]
        source: hyper::Error,
    },
    #[error("moto did not answer {path} within {TIMEOUT:?}")]
    Timeout { path: &'static str },
    #[error("moto's answer to {path} is not what was expected: {problem}")]
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
#[derive(Debug, Clone)]
pub struct Recorder {
    /// `host:port` of the server.
    authority: String,
    client: Client<HttpConnector, Empty<Bytes>>,
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
            client: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    /// Records every request from now on.
    pub async fn start(&self) -> Result<(), RecorderError> {
        self.call(Method::POST, "/moto-api/recorder/start-recording")
            .await
            .map(drop)
    }

    pub async fn stop(&self) -> Result<(), RecorderError> {
        self.call(Method::POST, "/moto-api/recorder/stop-recording")
            .await
            .map(drop)
    }

    /// Empties the recording (creating its file), whether or not recording is on.
    pub async fn reset(&self) -> Result<(), RecorderError> {
        self.call(Method::POST, "/moto-api/recorder/reset-recording")
            .await
            .map(drop)
    }

    /// The recording so far: JSON lines, see [`crate::capacity::parse_recording`].
    pub async fn download(&self) -> Result<String, RecorderError> {
        const PATH: &str = "/moto-api/recorder/download-recording";
        let body = self.call(Method::GET, PATH).await?;
        String::from_utf8(body).map_err(|_| RecorderError::Malformed {
            path: PATH,
            problem: "the recording is not UTF-8",
        })
    }

    async fn call(&self, method: Method, path: &'static str) -> Result<Vec<u8>, RecorderError> {
        let malformed = |problem| RecorderError::Malformed { path, problem };
        let uri: Uri = format!("http://{}{path}", self.authority)
            .parse()
            .map_err(|_| malformed("the URL does not parse"))?;
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Empty::new())
            .map_err(|_| malformed("the request does not build"))?;
        let exchange =
            async {
                let response = self.client.request(request).await.map_err(|source| {
                    RecorderError::Request {
                        authority: self.authority.clone(),
                        source,
                    }
                })?;
                let status = response.status().as_u16();
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|source| RecorderError::Answer { path, source })?
                    .to_bytes();
                Ok::<_, RecorderError>((status, body))
            };
        let (status, body) = tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| RecorderError::Timeout { path })??;
        if !(200..300).contains(&status) {
            let text = String::from_utf8_lossy(&body);
            return Err(RecorderError::Status {
                path,
                status,
                body: text.chars().take(200).collect(),
            });
        }
        Ok(body.to_vec())
    }
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
}
