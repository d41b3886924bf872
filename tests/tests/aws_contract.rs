//! Every port's contract against the AWS adapters, through the real SDK clients and moto's
//! server: the same cases, the same expectations as the embedded adapters.
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use referral_aws::dynamo::{DynamoEventArchive, DynamoFeatureStore, DynamoMessageStore};
use referral_aws::sqs::SqsQueue;
use referral_aws_local::provision::{QueueSpec, ensure_queue_pair};
use referral_aws_local::stream_reader::{DynamoStreamFeed, StartingPosition};
use referral_domain::ports::MessageRetention;
use referral_tests::contract::{
    QueueSetup, change_feed_contract, erasure_log_contract, event_archive_contract,
    feature_store_contract, message_retention_contract, message_store_contract,
    work_queue_contract,
};
use referral_tests::emulator::{fresh_tables, sdk_config, sweep_expired_messages, unique};

#[tokio::test]
async fn the_dynamodb_feature_store_honours_the_contract() {
    let config = sdk_config().await;
    let (tables, _) = fresh_tables(&config).await;
    let store = DynamoFeatureStore::new(aws_sdk_dynamodb::Client::new(&config), tables.features);
    feature_store_contract(&store, "dynamodb-").await;
}

#[tokio::test]
async fn the_dynamodb_archive_honours_the_contract() {
    let config = sdk_config().await;
    let (tables, _) = fresh_tables(&config).await;
    let archive = DynamoEventArchive::new(aws_sdk_dynamodb::Client::new(&config), tables.archive);
    event_archive_contract(&archive, "dynamodb-").await;
    erasure_log_contract(&archive, "dynamodb-").await;
}

#[tokio::test]
async fn the_dynamodb_stream_reader_honours_the_change_feed_contract() {
    let config = sdk_config().await;
    let (tables, stream_arn) = fresh_tables(&config).await;
    let store = DynamoFeatureStore::new(aws_sdk_dynamodb::Client::new(&config), tables.features);
    let feed = DynamoStreamFeed::start(
        aws_sdk_dynamodbstreams::Client::new(&config),
        stream_arn,
        StartingPosition::TrimHorizon,
    )
    .await
    .expect("open the stream");
    change_feed_contract(&store, &feed, "dynamodb-").await;
}

#[tokio::test]
async fn the_dynamodb_message_store_honours_the_contract() {
    let config = sdk_config().await;
    let (tables, _) = fresh_tables(&config).await;
    let store = DynamoMessageStore::new(aws_sdk_dynamodb::Client::new(&config), tables.messages);
    message_store_contract(&store, "dynamodb-").await;
}

#[tokio::test]
async fn the_dynamodb_message_store_expires_decisions_but_not_the_message_slot() {
    let config = sdk_config().await;
    let (tables, _) = fresh_tables(&config).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    // One table, as deployed: the two retentions are two writers' settings.
    let expiring = DynamoMessageStore::new(dynamodb.clone(), &tables.messages)
        .with_retention(MessageRetention::days(1));
    let kept = DynamoMessageStore::new(dynamodb.clone(), &tables.messages)
        .with_retention(MessageRetention::KEEP);
    let sweep = async |now| {
        sweep_expired_messages(&dynamodb, &tables.messages, now).await;
    };
    message_retention_contract(&expiring, &kept, sweep, "dynamodb-").await;
}

#[tokio::test]
async fn the_sqs_queue_honours_the_contract() {
    let config = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let setup = QueueSetup {
        visibility_timeout: Duration::from_secs(1),
        max_receive_count: 2,
    };
    let name = unique("contract");
    let queues = ensure_queue_pair(
        &sqs,
        &QueueSpec {
            name: name.clone(),
            dlq_name: format!("{name}-dlq"),
            max_receive_count: setup.max_receive_count,
            visibility_timeout_seconds: 1,
        },
    )
    .await
    .expect("queues");
    // Short polls: the contract reads "nothing visible" from an empty answer.
    let queue = SqsQueue::new(sqs.clone(), queues.url).with_wait_seconds(0);
    let dead_letters = SqsQueue::new(sqs, queues.dlq_url).with_wait_seconds(0);
    work_queue_contract(&queue, &dead_letters, setup).await;
}
