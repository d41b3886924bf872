//! What the three generators share: the webhooks as a sender sends them, the clock they
//! were sent by, identifiers derived from the inputs (so the same inputs give the same
//! bytes), and DynamoDB's item sizing
//! (`referral_aws::dynamo::item_size`).

use chrono::{DateTime, TimeDelta, Utc};
pub use referral_aws::dynamo::item_size;
use referral_domain::event::{Rejection, Webhook, parse_webhook};
use referral_domain::redact::hex;
use referral_local::pipeline::InputEvent;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The region and account of generated ARNs, URLs and hosts (moto's default account).
pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "123456789012";

/// A sender posts a webhook about this long after the service it reports was completed.
const SEND_DELAY: TimeDelta = TimeDelta::seconds(2);
/// The send time when no input carries an `occurred_at` (all of them invalid, say).
const FALLBACK_SEND_TIME: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

/// `--timestamp`: when the webhooks were sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Now,
    At(DateTime<Utc>),
}

/// `now`, unix seconds, or an RFC 3339 date-time.
pub fn parse_when(text: &str) -> Result<When, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("now") {
        return Ok(When::Now);
    }
    let at = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse::<i64>()
            .ok()
            .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
    } else {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|at| at.with_timezone(&Utc))
    };
    at.map(When::At)
        .ok_or_else(|| format!("`{text}` is not `now`, unix seconds or an RFC 3339 date-time"))
}

/// One webhook of the inputs: its body as sent and what the pipeline makes of it.
#[derive(Debug)]
pub struct SentWebhook {
    pub source: String,
    pub body: String,
    pub parsed: Result<Webhook, Rejection>,
}

/// Parses every input once. Bodies are sent compact, as senders post JSON.
pub fn webhooks(inputs: &[InputEvent]) -> Vec<SentWebhook> {
    inputs
        .iter()
        .map(|input| {
            let body = minify(&input.body);
            let parsed = parse_webhook(&body);
            SentWebhook {
                source: input.source.clone(),
                body,
                parsed,
            }
        })
        .collect()
}

/// The send time, whole seconds: `--timestamp`, or by default [`SEND_DELAY`] after the
/// latest `occurred_at` of the inputs, so that generated events are reproducible.
pub fn send_time(webhooks: &[SentWebhook], when: Option<When>) -> DateTime<Utc> {
    let at = match when {
        Some(When::Now) => Utc::now(),
        Some(When::At(at)) => at,
        None => webhooks
            .iter()
            .filter_map(|webhook| match &webhook.parsed {
                Ok(Webhook::ServiceCompleted(event)) => Some(event.occurred_at),
                _ => None,
            })
            .max()
            .map(|latest| latest + SEND_DELAY)
            .or_else(|| DateTime::from_timestamp(FALLBACK_SEND_TIME, 0))
            .unwrap_or_default(),
    };
    DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at)
}

/// JSON text without the whitespace between tokens; text that is not JSON is kept as is
/// (it is sent, and refused, as written).
pub fn minify(text: &str) -> String {
    if serde_json::from_str::<&serde_json::value::RawValue>(text).is_err() {
        return text.to_owned();
    }
    let mut compact = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            compact.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            compact.push(c);
        } else if !c.is_whitespace() {
            compact.push(c);
        }
    }
    compact
}

/// SHA-256 of the parts, each closed by a NUL so that `("ab", "c")` and `("a", "bc")` differ.
pub fn seed(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
        hasher.update([0]);
    }
    hasher.finalize().into()
}

/// `n` hex digits of `seed` (at most 64).
pub fn hex_of(seed: &[u8; 32], n: usize) -> String {
    let mut text = hex(seed);
    text.truncate(n);
    text
}

/// A version-4 UUID from `seed`, as SQS message ids and Lambda request ids are. The variant
/// digit comes from the low bits of byte 8, as it always has, so the generated fixtures stay
/// the same from one version to the next.
pub fn uuid(seed: &[u8; 32]) -> String {
    let mut bytes = [0; 16];
    bytes.copy_from_slice(&seed[..16]);
    bytes[8] = ((seed[8] & 3) << 4) | (seed[8] & 0x0f);
    ::uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// Sorts every object's keys, recursively: images and attribute maps are hash maps, whose
/// order would otherwise change from run to run.
pub fn sort_keys(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = std::mem::take(map).into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (key, mut inner) in entries {
                sort_keys(&mut inner);
                map.insert(key, inner);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(sort_keys),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minify_keeps_strings_and_numbers_as_written() {
        assert_eq!(
            minify("{\n  \"a b\": \"x \\\" y\",\n  \"n\": 2.0 }\n"),
            r#"{"a b":"x \" y","n":2.0}"#
        );
        assert_eq!(minify("not json {"), "not json {");
    }

    #[test]
    fn when_is_now_seconds_or_a_date() {
        assert_eq!(parse_when("now"), Ok(When::Now));
        assert_eq!(
            parse_when("1768230247"),
            Ok(When::At(
                DateTime::from_timestamp(1_768_230_247, 0).unwrap()
            ))
        );
        assert_eq!(parse_when("2026-01-12T15:04:07Z"), parse_when("1768230247"));
        assert!(parse_when("yesterday").is_err());
        assert!(parse_when("-5").is_err());
    }

    #[test]
    fn uuids_have_the_version_4_shape() {
        let id = uuid(&seed(&[b"x"]));
        let groups: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert_eq!(id.as_bytes()[14], b'4');
        // As the hand-formatted version made it, so regenerated fixtures do not change.
        assert_eq!(id, "14f825b2-bbc3-4dd8-9196-367fa8776873");
        assert_ne!(uuid(&seed(&[b"a", b"bc"])), uuid(&seed(&[b"ab", b"c"])));
    }
}
