//! The benchmark's capacity and stream accounting against moto: requests made with the SDK
//! are recorded by the server, and the ledger must price them as DynamoDB would; a table's
//! stream must be read whole and sized by the item-size rules. Needs `tests/run.sh` (moto
//! with `MOTO_RECORDER_FILEPATH` set); fails, never skips, without it.
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, StreamSpecification, StreamViewType,
};
use referral_tests::capacity::{CapacityLedger, parse_recording};
use referral_tests::emulator::{endpoint, sdk_config, unique};
use referral_tests::recorder::Recorder;
use referral_tests::stream_bytes::{fetch_table_records, record_bytes, summarize};

/// An item of exactly `size` bytes by DynamoDB's rules: "pk" + 6-byte key (8), "n" + 42 (3),
/// "blob" + its bytes.
fn item(key: &str, size: usize) -> std::collections::HashMap<String, AttributeValue> {
    assert_eq!(key.len(), 6, "the sizes below assume 6-byte keys");
    let blob = "x".repeat(size - 8 - 3 - 4);
    [
        ("pk", AttributeValue::S(key.to_owned())),
        ("n", AttributeValue::N("42".to_owned())),
        ("blob", AttributeValue::S(blob)),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

async fn create_table(client: &Client, name: &str, stream: Option<StreamViewType>) {
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        );
    if let Some(view) = stream {
        request = request.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(view)
                .build()
                .unwrap(),
        );
    }
    request
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating {name}: {e:?}"));
}

async fn get(client: &Client, table: &str, key: &str, consistent: bool) -> bool {
    client
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(key.to_owned()))
        .consistent_read(consistent)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetItem {key}: {e:?}"))
        .item
        .is_some()
}

#[tokio::test]
async fn recorded_requests_are_priced_like_dynamodb() {
    let config = sdk_config().await;
    let client = Client::new(&config);
    let recorder = Recorder::new(&endpoint()).unwrap();
    let table = unique("bench-capacity");
    recorder.reset().await.unwrap();
    recorder.start().await.unwrap();

    // Recorded too: the ledger learns the table's key from it.
    create_table(&client, &table, None).await;
    let put = |key: &str, size: usize| {
        client
            .put_item()
            .table_name(&table)
            .set_item(Some(item(key, size)))
    };
    put("cust#a", 200)
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await
        .unwrap();
    put("cust#a", 2_500).send().await.unwrap();
    let refused = put("cust#a", 1_500)
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(refused, PutItemError::ConditionalCheckFailedException(_)),
        "{refused:?}"
    );
    put("cust#b", 5_000).send().await.unwrap();
    assert!(get(&client, &table, "cust#a", true).await);
    assert!(get(&client, &table, "cust#a", false).await);
    assert!(!get(&client, &table, "cust#z", false).await);
    assert!(get(&client, &table, "cust#b", true).await);

    let recording = recorder.download().await.unwrap();
    recorder.stop().await.unwrap();
    let requests = parse_recording(&recording).unwrap();
    let mut ledger = CapacityLedger::new();
    for request in &requests {
        ledger.record(request).unwrap();
    }
    // Other tests of this binary may be recorded too: only this table's row is checked.
    let report = ledger.report(2);
    let usage = report
        .table(&table)
        .unwrap_or_else(|| panic!("no request to {table} in the recording:\n{recording}"));
    let ops: Vec<(&str, u64)> = usage.ops.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(ops, [("CreateTable", 1), ("GetItem", 4), ("PutItem", 4)]);
    assert_eq!(usage.requests, 9);
    // Puts: 200 B new (1), 200 -> 2,500 B (3), the refused 1,500 B over 2,500 B still
    // charged (3), 5,000 B new (5).
    assert_eq!(usage.write_units, 1 + 3 + 3 + 5);
    // Gets: strong on cust#a (1: 2,500 B stored, 1,500 B to the ledger, which cannot see
    // that the put was refused, one unit either way), eventual (0.5), eventual miss (0.5),
    // strong on 5,000 B (2).
    assert_eq!(usage.read_units, 1.0 + 0.5 + 0.5 + 2.0);
    assert_eq!(usage.largest_item_bytes, 5_000);
    assert_eq!((usage.unkeyed_writes, usage.unpriced_requests), (0, 0));
}

#[tokio::test]
async fn a_new_image_stream_carries_keys_and_new_images() {
    let config = sdk_config().await;
    let client = Client::new(&config);
    let streams = aws_sdk_dynamodbstreams::Client::new(&config);
    let table = unique("bench-stream");
    create_table(&client, &table, Some(StreamViewType::NewImage)).await;
    let sizes = [("cust#a", 300), ("cust#b", 1_200), ("cust#a", 900)];
    for (key, size) in sizes {
        client
            .put_item()
            .table_name(&table)
            .set_item(Some(item(key, size)))
            .send()
            .await
            .unwrap();
    }
    client
        .delete_item()
        .table_name(&table)
        .key("pk", AttributeValue::S("cust#b".to_owned()))
        .send()
        .await
        .unwrap();

    let records = fetch_table_records(&client, &streams, &table)
        .await
        .unwrap();
    let names: Vec<&str> = records
        .iter()
        .map(|r| r["eventName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["INSERT", "INSERT", "MODIFY", "REMOVE"]);
    let bytes: Vec<(u64, u64, u64)> = records
        .iter()
        .map(|r| record_bytes(r).unwrap())
        .map(|b| (b.keys, b.new_image, b.old_image))
        .collect();
    // Keys: "pk" + 6 bytes; NEW_IMAGE never carries the old image, a REMOVE only its key.
    assert_eq!(bytes, [(8, 300, 0), (8, 1_200, 0), (8, 900, 0), (8, 0, 0)]);
    let summary = summarize(&records).unwrap();
    assert_eq!((summary.records, summary.max_bytes), (4, 1_208));
    assert_eq!(summary.total_bytes, 308 + 1_208 + 908 + 8);
    assert_eq!(summary.mean_bytes, 2_432.0 / 4.0);
    // moto's own SizeBytes is the record's JSON length: always above DynamoDB's measure.
    for (record, (keys, new_image, _)) in records.iter().zip(&bytes) {
        let reported = record["dynamodb"]["SizeBytes"].as_u64().unwrap();
        assert!(reported > keys + new_image, "{reported}");
    }
}
