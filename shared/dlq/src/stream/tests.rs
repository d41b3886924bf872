use std::cmp::Ordering;

use super::batch::compare_sequence_numbers;
use super::*;

const FAILURE: &str = r#"{
  "requestContext": {"requestId": "12a8a0fa", "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:orchestrator",
                     "condition": "RetryAttemptsExhausted", "approximateInvokeCount": 4},
  "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
  "version": "1.0", "timestamp": "2025-06-05T18:22:26.479Z",
  "DDBStreamBatchInfo": {"shardId": "shardId-00000001-aaaa", "startSequenceNumber": "202328600001712385967261751",
    "endSequenceNumber": "202328600001712385967261760", "approximateArrivalOfFirstRecord": "2025-06-05T18:21:49Z",
    "approximateArrivalOfLastRecord": "2025-06-05T18:21:49Z", "batchSize": 2,
    "streamArn": "arn:aws:dynamodb:us-east-1:123456789012:table/CustomerFeatures/stream/2025-04-23T13:37:16.991"}
}"#;

fn received(body: &str, attributes: &[(&str, &str)]) -> DlqMessage {
    let mut message = aws_sdk_sqs::types::Message::builder()
        .message_id("m1")
        .receipt_handle("r1")
        .body(body);
    for (name, value) in attributes {
        message = message.message_attributes(
            *name,
            aws_sdk_sqs::types::MessageAttributeValue::builder()
                .data_type("String")
                .string_value(*value)
                .build()
                .unwrap(),
        );
    }
    DlqMessage::from_sdk(message.build())
}

#[test]
fn failure_records_are_recognised_and_webhooks_are_not() {
    let destination = QueueRole::FailureDestination;
    let failure = StreamFailure::recognise(&received(FAILURE, &[]), destination).unwrap();
    assert_eq!(failure.info.shard_id, "shardId-00000001-aaaa");
    assert_eq!(failure.info.batch_size, Some(2));
    assert_eq!(failure.table(), Some("CustomerFeatures"));
    for body in [
        r#"{"event_id":"e","event_type":"service.completed"}"#,
        r#"{"DDBStreamBatchInfo": {"shardId": 3}}"#,
        "DDBStreamBatchInfo, not JSON",
    ] {
        assert!(StreamFailure::recognise(&received(body, &[]), destination).is_none());
    }
}

/// The body of a failure record proves nothing: a webhook may carry the same field. In the
/// webhook DLQ, or with the attributes ingest and the enricher set, it is a webhook.
#[test]
fn a_webhook_carrying_ddb_stream_batch_info_is_not_a_failure_record() {
    let in_the_webhook_dlq = received(FAILURE, &[]);
    assert!(StreamFailure::recognise(&in_the_webhook_dlq, QueueRole::WebhookDeadLetters).is_none());
    let with_ingest_attributes = received(FAILURE, &[("event_id", "evt_1")]);
    assert!(
        StreamFailure::recognise(&with_ingest_attributes, QueueRole::FailureDestination).is_none()
    );
}

#[test]
fn sequence_numbers_compare_as_numbers() {
    assert_eq!(compare_sequence_numbers("9", "10"), Ordering::Less);
    assert_eq!(compare_sequence_numbers("0010", "10"), Ordering::Equal);
    assert_eq!(
        compare_sequence_numbers("202328600001712385967261760", "202328600001712385967261751"),
        Ordering::Greater
    );
    assert_eq!(
        compare_sequence_numbers("1000000000000000000000000000000000000000", "999"),
        Ordering::Greater
    );
}
