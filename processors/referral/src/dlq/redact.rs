//! E-mail addresses out of what the DLQ commands print: message bodies and attributes are
//! customer data, and terminals end up in screenshots, tickets and logs.

use referral_shared::redact::mask_email;
use serde_json::Value;

/// Masks every e-mail-like token in free text: `jane.doe@example.com` → `j***@example.com`.
pub fn mask_emails(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut at = 0;
    while let Some(offset) = text[at..].find('@') {
        let sign = at + offset;
        let start = (0..sign)
            .rev()
            .take_while(|&index| is_local_byte(bytes[index]))
            .last()
            .unwrap_or(sign);
        let mut end = (sign + 1..bytes.len())
            .take_while(|&index| is_domain_byte(bytes[index]))
            .last()
            .map_or(sign + 1, |index| index + 1);
        // A sentence's full stop after the address is not part of the domain.
        while end > sign + 1 && bytes[end - 1] == b'.' {
            end -= 1;
        }
        let domain = &text[sign + 1..end];
        if start < sign && start >= copied && domain.contains('.') && !domain.starts_with('.') {
            out.push_str(&text[copied..start]);
            out.push_str(&mask_email(&text[start..end]));
            copied = end;
        }
        at = end.max(sign + 1);
    }
    out.push_str(&text[copied..]);
    out
}

/// The usual characters of an address's local part. RFC 5322 allows more (`=`, `'`, ...),
/// but those also delimit addresses in text (`customer=ann@x.org`, `'ann@x.org'`), and
/// masking must not swallow the text around an address.
fn is_local_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"._%+-".contains(&byte)
}

fn is_domain_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'.' || byte == b'-'
}

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
    fn addresses_in_text_are_masked_and_the_rest_kept() {
        assert_eq!(
            mask_emails("from Jane.Doe@Example.com, and bob@x.org."),
            "from J***@Example.com, and b***@x.org."
        );
        assert_eq!(mask_emails("no address @ all"), "no address @ all");
        assert_eq!(mask_emails("user@localhost"), "user@localhost");
        assert_eq!(mask_emails("a@b.c@d.e"), "a***@b.c@d.e");
        assert_eq!(mask_emails("é@x.io ü"), "é@x.io ü");
        assert_eq!(mask_emails(""), "");
        assert_eq!(mask_emails("customer=ann@x.org"), "customer=a***@x.org");
    }

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
