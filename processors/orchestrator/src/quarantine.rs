//! Stream records the orchestrator cannot read: an image corrupted, or written by a newer
//! release. Retrying such a record cannot help, and reporting it as the batch's failure
//! would hold its whole shard for the mapping's retries and then send every record after
//! it to the failure destination too. So the record alone is set aside on the failure
//! destination (the stream mapping's `OnFailure` queue), in the shape Lambda gives its own
//! failure records plus a `quarantine` object naming the customer and the reason, and the
//! shard goes on. `referral dlq replay` recognises it and, once the item is repaired,
//! writes the message of that customer's current features.

use std::collections::BTreeMap;

use aws_lambda_events::event::dynamodb::EventRecord;
use chrono::{DateTime, SecondsFormat, Utc};
use referral_aws::stream_record::customer_key;
use referral_domain::ports::OutgoingMessage;
use referral_domain::redact::mask_emails;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The stream mapping's on-failure destination, where quarantined records go.
pub const ENV_STREAM_FAILURE_QUEUE_URL: &str = "STREAM_FAILURE_QUEUE_URL";

/// Lambda's `condition` for a record the function set aside itself.
pub const QUARANTINE_CONDITION: &str = "Quarantined";

/// What a quarantined record carries beyond Lambda's failure shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Quarantine {
    /// The item's key, when the record has one: replay checks that customer only.
    pub customer_email: Option<String>,
    /// Why the record was set aside (e-mail addresses masked: a decoding error may quote
    /// the image).
    pub reason: String,
}

/// The failure-destination message for `record`, refused for `reason`.
pub fn failure_message(record: &EventRecord, reason: &str, now: DateTime<Utc>) -> OutgoingMessage {
    let sequence_number = super::position_of(record);
    let customer_email = customer_key(record).map(str::to_owned);
    let arrival = record
        .change
        .approximate_creation_date_time
        .to_rfc3339_opts(SecondsFormat::Millis, true);
    let body = json!({
        "version": "1.0",
        "timestamp": now.to_rfc3339_opts(SecondsFormat::Millis, true),
        "requestContext": {
            "condition": QUARANTINE_CONDITION,
            "approximateInvokeCount": 1,
        },
        "responseContext": {"statusCode": 200, "functionError": QUARANTINE_CONDITION},
        // A stream record does not say which shard it came from; the sequence number and
        // the stream are what a reader needs to find it again.
        "DDBStreamBatchInfo": {
            "shardId": "",
            "startSequenceNumber": sequence_number,
            "endSequenceNumber": sequence_number,
            "approximateArrivalOfFirstRecord": arrival,
            "approximateArrivalOfLastRecord": arrival,
            "batchSize": 1,
            "streamArn": record.event_source_arn.as_deref().unwrap_or_default(),
        },
        "quarantine": Quarantine {
            customer_email,
            reason: mask_emails(reason),
        },
    });
    // No message attribute: that, and the queue, is how `referral dlq` tells a failure
    // record from a webhook.
    OutgoingMessage {
        body: body.to_string(),
        attributes: BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use referral_aws::dynamo::CUSTOMER_KEY;

    #[test]
    fn the_message_is_lambdas_failure_shape_with_the_key_and_a_masked_reason() {
        let mut record = EventRecord::default();
        record.change.sequence_number = Some("4200".to_owned());
        record.event_source_arn =
            Some("arn:aws:dynamodb:us-east-1:1:table/CustomerFeatures/stream/x".to_owned());
        record.change.keys.insert(
            CUSTOMER_KEY.to_owned(),
            serde_dynamo::AttributeValue::S("jane@example.com".to_owned()),
        );
        let message = failure_message(
            &record,
            "NewImage does not decode: jane@example.com",
            Utc::now(),
        );
        assert!(message.attributes.is_empty());
        let body: serde_json::Value =
            serde_json::from_str(&message.body).unwrap_or(serde_json::Value::Null);
        let info = &body["DDBStreamBatchInfo"];
        assert_eq!(info["startSequenceNumber"], "4200");
        assert_eq!(info["endSequenceNumber"], "4200");
        assert_eq!(
            info["streamArn"],
            "arn:aws:dynamodb:us-east-1:1:table/CustomerFeatures/stream/x"
        );
        let quarantine: Option<Quarantine> =
            serde_json::from_value(body["quarantine"].clone()).ok();
        let quarantine = quarantine.unwrap_or_else(|| panic!("no quarantine in {body}"));
        assert_eq!(
            quarantine.customer_email.as_deref(),
            Some("jane@example.com")
        );
        assert!(!quarantine.reason.contains("jane@example.com"));
        assert!(quarantine.reason.starts_with("NewImage does not decode"));
    }
}
