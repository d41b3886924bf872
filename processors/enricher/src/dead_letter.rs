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
