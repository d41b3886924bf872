//! The HTTP face of `local serve`: `POST /webhooks` is API Gateway in front of the ingest
//! handler; `GET /features/{email}`, `GET /messages/{email}` and `GET /dead-letters` answer
//! JSON from the running pipeline's stores.

use std::collections::BTreeMap;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::{HeaderMap, HeaderName, HeaderValue, Method};
use base64::Engine;
use chrono::Utc;
use referral_domain::event::normalise_email;
use referral_domain::ports::{FeatureStore, MessageStore, WorkQueue};
use referral_ingest::Deps;
use serde_json::{Value, json};

use super::lookups::{DeadLetters, LookupError, Lookups};
use crate::http;

/// An answer to write back.
#[derive(Debug)]
pub struct Answer {
    pub status: i64,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Answer {
    fn json(status: i64, document: &Value) -> Self {
        Answer {
            status,
            headers: BTreeMap::from([("content-type".to_owned(), "application/json".to_owned())]),
            body: document.to_string().into_bytes(),
        }
    }

    fn error(status: i64, message: &str) -> Self {
        Self::json(status, &json!({ "error": message }))
    }
}

/// Everything a request may reach.
#[derive(Debug)]
pub struct Routes<Q, S, M, D> {
    pub ingest: Deps<Q>,
    pub lookups: Lookups<S, M, D>,
}

impl<Q, S, M, D> Routes<Q, S, M, D>
where
    Q: WorkQueue,
    S: FeatureStore,
    M: MessageStore,
    D: DeadLetters,
{
    pub async fn answer(&self, request: http::Message) -> Answer {
        let (method, path) = (&request.start.0, request.start.1.as_str());
        if method != "GET" {
            return self.ingest(request).await;
        }
        let path = path.split('?').next().unwrap_or_default();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let looked_up = match segments.as_slice() {
            ["features", email] => match customer(email) {
                Ok(email) => self.lookups.features(&email).await.map(|found| {
                    found.map_or_else(
                        || Answer::error(404, "no features for that customer"),
                        |features| Answer::json(200, &features),
                    )
                }),
                Err(answer) => return answer,
            },
            ["messages", email] => match customer(email) {
                Ok(email) => self
                    .lookups
                    .messages(&email)
                    .await
                    .map(|messages| Answer::json(200, &messages)),
                Err(answer) => return answer,
            },
            ["dead-letters"] => self
                .lookups
                .dead_letters()
                .await
                .map(|letters| Answer::json(200, &letters)),
            _ => return Answer::error(404, "not found"),
        };
        looked_up.unwrap_or_else(|error: LookupError| {
            tracing::warn!(error = %error, path = %redacted_path(&segments), "lookup failed");
            Answer::error(503, &format!("the store did not answer: {error}"))
        })
    }

    async fn ingest(&self, request: http::Message) -> Answer {
        let response =
            referral_ingest::handle(&self.ingest, api_gateway_request(request), Utc::now()).await;
        let headers = response
            .headers
            .iter()
            .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
            .collect();
        let body = match response.body {
            Some(Body::Text(text)) => text.into_bytes(),
            Some(Body::Binary(bytes)) => bytes,
            _ => Vec::new(),
        };
        Answer {
            status: response.status_code,
            headers,
            body,
        }
    }
}

/// The customer a path names, as the webhook schema normalises e-mail addresses.
fn customer(segment: &str) -> Result<String, Answer> {
    let decoded = percent_decode(segment)
        .ok_or_else(|| Answer::error(400, "the e-mail address in the path is not valid UTF-8"))?;
    normalise_email(&decoded).map_err(|error| Answer::error(400, &error.to_string()))
}

/// `%40` and friends, as clients may encode `@` in a path.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        let escaped = (byte == b'%')
            .then(|| bytes.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match escaped {
            Some(value) => {
                decoded.push(value);
                index += 3;
            }
            None => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(decoded).ok()
}

/// The route without the customer it names, for logs.
fn redacted_path(segments: &[&str]) -> String {
    segments
        .first()
        .map_or_else(String::new, |route| format!("/{route}/…"))
}

/// The API Gateway HTTP API (payload v2) event for a request, as the ingest Lambda gets it.
fn api_gateway_request(request: http::Message) -> ApiGatewayV2httpRequest {
    let mut event = ApiGatewayV2httpRequest::default();
    let (method, path) = request.start;
    event.request_context.http.method =
        Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
    event.request_context.http.path = Some(path.clone());
    event.raw_path = Some(path);
    event.request_context.request_id = Some(format!("local-{:x}", fastrand::u64(..)));
    let mut headers = HeaderMap::new();
    for (name, value) in &request.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
    event.headers = headers;
    // API Gateway passes text as is and base64-encodes anything else.
    match String::from_utf8(request.body) {
        Ok(text) => event.body = Some(text),
        Err(error) => {
            event.body = Some(base64::engine::general_purpose::STANDARD.encode(error.into_bytes()));
            event.is_base64_encoded = true;
        }
    }
    event
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
