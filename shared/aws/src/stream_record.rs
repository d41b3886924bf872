//! A DynamoDB stream record of `CustomerFeatures`, as the orchestrator's event-source mapping
//! delivers it, turned into the domain's change record: the one decoding of stream images,
//! for the Lambda function and for local readers of the Streams API alike.

use std::sync::Arc;

use aws_lambda_events::event::dynamodb::EventRecord;
use chrono::{DateTime, Utc};
use referral_domain::features::CustomerFeatures;
use referral_domain::ports::{ChangeKind, ChangeRecord};

use crate::dynamo::CUSTOMER_KEY;

/// A stream record that cannot be turned into a change.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("stream record has no sequence number")]
    NoSequenceNumber,
    #[error("stream record has an unknown event name {0:?}")]
    UnknownEventName(String),
    #[error("stream record has no customerEmail key")]
    NoKey,
    #[error("stream record's {image} does not decode")]
    Undecodable {
        image: &'static str,
        #[source]
        source: serde_dynamo::Error,
    },
}

/// Translates one Lambda stream record into the domain's change record.
pub fn change_record(record: &EventRecord) -> Result<ChangeRecord, RecordError> {
    let kind = match record.event_name.as_str() {
        "INSERT" => ChangeKind::Insert,
        "MODIFY" => ChangeKind::Modify,
        "REMOVE" => ChangeKind::Remove,
        other => return Err(RecordError::UnknownEventName(other.to_owned())),
    };
    let sequence_number = record
        .change
        .sequence_number
        .clone()
        .ok_or(RecordError::NoSequenceNumber)?;
    let customer_email = customer_key(record).ok_or(RecordError::NoKey)?.to_owned();
    Ok(ChangeRecord {
        sequence_number,
        kind,
        customer_email,
        old_image: decode_image(&record.change.old_image, "OldImage")?,
        new_image: decode_image(&record.change.new_image, "NewImage")?,
        written_at: written_at(record),
    })
}

/// The item's key (the customer's e-mail) in the record's `Keys`, which can be read even
/// when its images cannot.
pub fn customer_key(record: &EventRecord) -> Option<&str> {
    match record.change.keys.get(CUSTOMER_KEY) {
        Some(serde_dynamo::AttributeValue::S(email)) => Some(email),
        _ => None,
    }
}

/// The record's `ApproximateCreationDateTime`; the event type defaults a missing one to the
/// Unix epoch, which reads as unknown.
fn written_at(record: &EventRecord) -> Option<DateTime<Utc>> {
    let at = record.change.approximate_creation_date_time;
    (at.timestamp() > 0).then_some(at)
}

/// A key-only image (emitted by emulators before a full INSERT) reads as no image.
fn decode_image(
    image: &serde_dynamo::Item,
    name: &'static str,
) -> Result<Option<Arc<CustomerFeatures>>, RecordError> {
    if image.len() <= 1 {
        return Ok(None);
    }
    serde_dynamo::from_item::<_, CustomerFeatures>(image.clone())
        .map(|features| Some(Arc::new(features)))
        .map_err(|source| RecordError::Undecodable {
            image: name,
            source,
        })
}
