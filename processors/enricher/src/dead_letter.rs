//! The dead letter of a refused message: its body unchanged, its own string attributes (as
//! many as fit), and attributes saying why it was refused, for `referral dlq` to filter on.

use std::collections::BTreeMap;

use aws_lambda_events::event::sqs::SqsMessage;
use chrono::{DateTime, TimeZone, Utc};
use referral_aws::sqs::MAX_MESSAGE_ATTRIBUTES;
use referral_domain::enricher::Refusal;
use referral_domain::features::rfc3339;
use referral_domain::ports::OutgoingMessage;

/// Names of the dead-letter attributes that say why a message was refused.
pub const ERROR_KIND: &str = "error_kind";
pub const ERROR_FIELD: &str = "error_field";
pub const ERROR_MESSAGE: &str = "error_message";
pub const ENRICHER_VERSION: &str = "enricher_version";
pub const FIRST_FAILURE_AT: &str = "first_failure_at";
pub const SOURCE_MESSAGE_ID: &str = "source_message_id";
pub const EVENT_ID: &str = "event_id";

const MAX_ERROR_MESSAGE_CHARS: usize = 256;

/// The dead letter of `record`, refused for `refusal`.
pub fn dead_letter_message(
    record: &SqsMessage,
    event_id: Option<&str>,
    refusal: &Refusal,
    now: DateTime<Utc>,
) -> OutgoingMessage {
    let first_failure = record
        .attributes
        .get("ApproximateFirstReceiveTimestamp")
        .and_then(|millis| millis.parse::<i64>().ok())
        .and_then(|millis| Utc.timestamp_millis_opt(millis).single())
        .unwrap_or(now);
    let error_message: String = refusal
        .message
        .chars()
        .take(MAX_ERROR_MESSAGE_CHARS)
        .collect();
    let mut reason = BTreeMap::from([
        (ERROR_KIND, refusal.kind.to_owned()),
        (ERROR_FIELD, refusal.field.to_owned()),
        (ERROR_MESSAGE, error_message),
        (ENRICHER_VERSION, crate::VERSION.to_owned()),
        (FIRST_FAILURE_AT, rfc3339::format(&first_failure)),
        (
            SOURCE_MESSAGE_ID,
            record.message_id.clone().unwrap_or_default(),
        ),
    ]);
    if let Some(event_id) = event_id {
        reason.insert(EVENT_ID, event_id.to_owned());
    }
    let room = MAX_MESSAGE_ATTRIBUTES.saturating_sub(reason.len());
    let mut attributes: BTreeMap<String, String> = record
        .message_attributes
        .iter()
        .filter(|(name, _)| !reason.contains_key(name.as_str()))
        .filter_map(|(name, value)| Some((name.clone(), value.string_value.clone()?)))
        .take(room)
        .collect();
    attributes.extend(
        reason
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value)),
    );
    OutgoingMessage {
        body: record.body.clone().unwrap_or_default(),
        attributes,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use aws_lambda_events::event::sqs::SqsMessageAttribute;
    use referral_domain::event::MAX_EVENT_ID_LEN;
    use referral_domain::ports::DEAD_LETTER_REASON_MAX_BYTES;

    use super::*;

    fn string_attribute(value: &str) -> SqsMessageAttribute {
        let mut attribute = SqsMessageAttribute::default();
        attribute.string_value = Some(value.to_owned());
        attribute.data_type = Some("String".to_owned());
        attribute
    }

    /// Ingest keeps [`DEAD_LETTER_REASON_MAX_BYTES`] free for this: the reason a dead letter
    /// adds, at its longest, must fit in it.
    #[test]
    fn the_reason_a_dead_letter_adds_fits_the_room_ingest_keeps() {
        let body = "x".repeat(1_000);
        let ingest_attributes: HashMap<String, SqsMessageAttribute> = [
            ("event_id", "e".repeat(MAX_EVENT_ID_LEN)),
            ("event_type", "service.completed".to_owned()),
            ("customer_ref", "c".repeat(64)),
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
            ),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), string_attribute(&value)))
        .collect();
        let mut record = SqsMessage::default();
        record.body = Some(body.clone());
        // SQS message ids are 36-character UUIDs; other emulators' are longer.
        record.message_id = Some("m".repeat(128));
        record.message_attributes = ingest_attributes.clone();
        let queued = OutgoingMessage {
            body,
            attributes: ingest_attributes
                .iter()
                .map(|(name, value)| (name.clone(), value.string_value.clone().unwrap_or_default()))
                .collect(),
        };
        let refusal = Refusal {
            kind: "conflicting_duplicate_of_the_longest_kind",
            field: "property_info.pest_issues.the_longest_field",
            // Four bytes a character, and longer than the 256 characters kept.
            message: "\u{1F41C}".repeat(400),
        };
        let letter = dead_letter_message(
            &record,
            Some(&"e".repeat(MAX_EVENT_ID_LEN)),
            &refusal,
            Utc::now(),
        );
        // Every attribute ingest gives fits beside the reason: the trace goes on with it.
        for (name, value) in &queued.attributes {
            assert_eq!(letter.attributes.get(name), Some(value), "{name}");
        }
        let added = letter.size() - queued.size();
        assert!(
            added <= DEAD_LETTER_REASON_MAX_BYTES,
            "a dead letter adds {added} bytes, more than the {DEAD_LETTER_REASON_MAX_BYTES} kept"
        );
        assert!(
            added > DEAD_LETTER_REASON_MAX_BYTES / 2,
            "{added}: the room is oversized"
        );
    }
}
