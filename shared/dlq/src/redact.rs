//! E-mail addresses out of what the DLQ commands print: message bodies and attributes are
//! customer data, and terminals end up in screenshots, tickets and logs.

use referral_domain::redact::mask_emails;
use serde_json::Value;

/// Masks the e-mails in every string of a JSON document (keys included).
pub fn mask_json(value: &mut Value) {
    match value {
        Value::String(text) => *text = mask_emails(text),
        Value::Array(items) => items.iter_mut().for_each(mask_json),
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (key, mut item) in entries {
                mask_json(&mut item);
                map.insert(mask_emails(&key), item);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// A message body for people: pretty JSON when it parses, the text as it is otherwise;
/// e-mails masked unless `reveal`.
pub fn display_body(body: &str, reveal: bool) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(mut value) => {
            if !reveal {
                mask_json(&mut value);
            }
            serde_json::to_string_pretty(&value).unwrap_or_else(|_| body.to_owned())
        }
        Err(_) if reveal => body.to_owned(),
        Err(_) => mask_emails(body),
    }
}

/// A body as a JSON value for machine output: the document when it parses, else the text.
pub fn body_value(body: &str, reveal: bool) -> Value {
    let mut value =
        serde_json::from_str::<Value>(body).unwrap_or_else(|_| Value::String(body.to_owned()));
    if !reveal {
        mask_json(&mut value);
    }
    value
}

/// A text value shown to people, masked unless `reveal`.
pub fn show(text: &str, reveal: bool) -> String {
    if reveal {
        text.to_owned()
    } else {
        mask_emails(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_masked_and_pretty_printed() {
        let body = r#"{"customer":{"email":"ann@example.com"},"n":3,"list":["x ann@example.com"]}"#;
        let shown = display_body(body, false);
        assert!(!shown.contains("ann@example.com"), "{shown}");
        assert!(shown.contains("a***@example.com"));
        assert!(shown.contains("\n  \"customer\""));
        assert!(display_body(body, true).contains("ann@example.com"));
        assert_eq!(
            display_body("{not json ann@example.com", false),
            "{not json a***@example.com"
        );
    }
}
