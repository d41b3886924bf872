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

#[test]
fn failure_records_are_recognised_and_webhooks_are_not() {
    let failure = StreamFailure::recognise(FAILURE).unwrap();
    assert_eq!(failure.info.shard_id, "shardId-00000001-aaaa");
    assert_eq!(failure.info.batch_size, Some(2));
    assert_eq!(failure.table(), Some("CustomerFeatures"));
    assert!(
        StreamFailure::recognise(r#"{"event_id":"e","event_type":"service.completed"}"#).is_none()
    );
    assert!(StreamFailure::recognise(r#"{"DDBStreamBatchInfo": {"shardId": 3}}"#).is_none());
    assert!(StreamFailure::recognise("DDBStreamBatchInfo, not JSON").is_none());
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
