//! moto's request recording: one JSON object per line, `{"headers", "method", "url",
//! "body", "body_encoded"}`, the body base64 when `body_encoded` is true (the server always
//! records bytes, so always base64 there). JSON-protocol services name the operation in the
//! `X-Amz-Target` header (`DynamoDB_20120810.PutItem`).

use base64::Engine;
use serde_json::Value;
use thiserror::Error;

/// Prefix of DynamoDB's targets; DynamoDB Streams' are `DynamoDBStreams_20120810.*`.
const DYNAMODB_TARGET: &str = "DynamoDB_";

#[derive(Debug, Error)]
pub enum RecordingError {
    #[error("line {line} of the recording is not JSON ({source}); was it cut off mid-write?")]
    Json {
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("line {line} of the recording is not an object with a string `{field}`")]
    Field { line: usize, field: &'static str },
    #[error("line {line} of the recording says its body is base64, but it is not ({source})")]
    Base64 {
        line: usize,
        #[source]
        source: base64::DecodeError,
    },
}

/// One recorded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// 1-based line of the recording.
    pub line: usize,
    pub method: String,
    pub url: String,
    /// `X-Amz-Target`, whatever the header's case.
    pub target: Option<String>,
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// `PutItem`, `GetItem`, ... for a DynamoDB request; `None` for other services.
    pub fn dynamodb_operation(&self) -> Option<&str> {
        let target = self.target.as_deref()?;
        let (service, operation) = target.split_once('.')?;
        service.starts_with(DYNAMODB_TARGET).then_some(operation)
    }
}

/// Every request of a recording, in order. Blank lines are skipped; anything else that is
/// not a recorded request is an error naming its line, because a silently skipped write
/// would understate the bill.
pub fn parse_recording(text: &str) -> Result<Vec<RecordedRequest>, RecordingError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| parse_line(index + 1, line))
        .collect()
}

fn parse_line(line: usize, text: &str) -> Result<RecordedRequest, RecordingError> {
    let entry: Value =
        serde_json::from_str(text).map_err(|source| RecordingError::Json { line, source })?;
    let string = |field: &'static str| {
        entry
            .get(field)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(RecordingError::Field { line, field })
    };
    let headers = entry
        .get("headers")
        .and_then(Value::as_object)
        .ok_or(RecordingError::Field {
            line,
            field: "headers",
        })?;
    let target = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("x-amz-target"))
        .and_then(|(_, value)| value.as_str())
        .map(str::to_owned);
    // moto writes `null` when it could not read a body.
    let raw = entry
        .get("body")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let body = if entry.get("body_encoded").and_then(Value::as_bool) == Some(true) {
        base64::engine::general_purpose::STANDARD
            .decode(raw)
            .map_err(|source| RecordingError::Base64 { line, source })?
    } else {
        raw.as_bytes().to_vec()
    };
    Ok(RecordedRequest {
        line,
        method: string("method")?,
        url: string("url")?,
        target,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_encoded_and_plain_bodies_and_the_target_in_any_case() {
        let text = concat!(
            r#"{"headers": {"X-Amz-Target": "DynamoDB_20120810.PutItem"}, "method": "POST", "#,
            r#""url": "http://127.0.0.1:5000/", "body": "eyJhIjoxfQ==", "body_encoded": true}"#,
            "\n\n",
            r#"{"headers": {"x-amz-target": "DynamoDBStreams_20120810.GetRecords"}, "#,
            r#""method": "POST", "url": "u", "body": "{}", "body_encoded": false}"#,
            "\n",
            r#"{"headers": {}, "method": "POST", "url": "u", "body": null, "body_encoded": false}"#,
        );
        let requests = parse_recording(text).unwrap();
        assert_eq!(requests.len(), 3);
        assert_eq!(requests[0].body, br#"{"a":1}"#);
        assert_eq!(requests[0].dynamodb_operation(), Some("PutItem"));
        assert_eq!(requests[1].line, 3);
        assert_eq!(requests[1].dynamodb_operation(), None);
        assert_eq!(requests[2].target, None);
        assert!(requests[2].body.is_empty());
    }

    #[test]
    fn a_broken_line_is_an_error_naming_it() {
        let good =
            r#"{"headers": {}, "method": "GET", "url": "u", "body": "", "body_encoded": false}"#;
        let cut = format!("{good}\n{{\"headers\": {{");
        assert!(matches!(
            parse_recording(&cut),
            Err(RecordingError::Json { line: 2, .. })
        ));
        let not_base64 = good.replace(r#""body_encoded": false"#, r#""body_encoded": true"#);
        let not_base64 = not_base64.replace(r#""body": """#, r#""body": "***""#);
        assert!(matches!(
            parse_recording(&not_base64),
            Err(RecordingError::Base64 { line: 1, .. })
        ));
        assert!(matches!(
            parse_recording(r#"{"headers": {}, "url": "u"}"#),
            Err(RecordingError::Field {
                field: "method",
                ..
            })
        ));
    }
}
