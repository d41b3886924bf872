//! The orchestrator against moto's server: enricher → DynamoDB stream → orchestrator makes
//! exactly one message per applied change, redelivery makes none and never calls the
//! generator again, and claims expire and are taken over only when stale.
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_sdk_dynamodbstreams::types::Record;
use chrono::Duration as Span;
use referral_aws::dynamo::{DynamoFeatureStore, DynamoMessageStore};
use referral_cli::aws_local::stream_mapping::{RetryPolicy, deliver};
use referral_cli::aws_local::stream_reader::{DynamoStreamFeed, StartingPosition};
use referral_domain::enricher::{Enricher, EnricherConfig};
use referral_domain::orchestrator::{Orchestrator, OrchestratorConfig};
use referral_domain::ports::{Claim, FeatureStore, MessageKey, MessageStore};
use referral_orchestrator::OrchestratorHandler;
use referral_tests::counting::CountingGenerator;
use referral_tests::emulator::{fresh_tables, sdk_config};
use referral_tests::{base_time, event_body, raw_batch};

async fn drain(feed: &DynamoStreamFeed) -> Vec<Record> {
    let mut records = Vec::new();
    // The emulator publishes at once; a few empty polls in a row mean the stream is drained.
    let mut empty = 0;
    while empty < 3 {
        let batch = feed.poll_records(100).await.expect("poll the stream");
        if batch.is_empty() {
            empty += 1;
        } else {
            empty = 0;
            records.extend(batch);
        }
    }
    records
}

#[tokio::test]
async fn each_applied_change_makes_exactly_one_message_even_when_delivered_twice() {
    let config = sdk_config().await;
    let (tables, stream_arn) = fresh_tables(&config).await;
    let store = DynamoFeatureStore::new(aws_sdk_dynamodb::Client::new(&config), tables.features);
    let enricher = Enricher::new(&store, EnricherConfig::default());
    let customers = ["ava", "ben", "cal"];
    let bodies: Vec<(String, String)> = (0..24)
        .map(|i| {
            let email = format!("{}@example.com", customers[i % 3]);
            (
                format!("m{i}"),
                event_body(&format!("o-{i}"), &email, i as i64, Some(4.5)).to_string(),
            )
        })
        .collect();
    // Batches of 4, then the first batch again (a redelivery that applies nothing).
    for chunk in bodies.chunks(4).chain(bodies.chunks(4).take(1)) {
        assert_eq!(
            enricher
                .process(&raw_batch(chunk), chrono::Utc::now())
                .await
                .counters
                .failed,
            0
        );
    }

    let feed = DynamoStreamFeed::start(
        aws_sdk_dynamodbstreams::Client::new(&config),
        stream_arn.clone(),
        StartingPosition::TrimHorizon,
    )
    .await
    .expect("open the stream");
    let records = drain(&feed).await;
    let generator = CountingGenerator::default();
    let messages = DynamoMessageStore::new(aws_sdk_dynamodb::Client::new(&config), tables.messages);
    let handler = OrchestratorHandler::new(Orchestrator::new(
        &generator,
        &messages,
        OrchestratorConfig::default(),
    ));
    // The records as the Lambda receives them: the emulator's images go through the
    // function's own decoding.
    let counters = deliver(
        &handler,
        records.clone(),
        &stream_arn,
        RetryPolicy::default(),
    )
    .await;
    assert_eq!(counters.failed, 0, "{counters:?}");

    let mut expected = 0;
    for customer in customers {
        let email = format!("{customer}@example.com");
        let item = store.load(&email).await.expect("load").expect("item");
        // Every successful write bumped the version once and applied at least one event.
        let written = messages.list(&email).await.expect("list");
        assert_eq!(
            written.len() as u64,
            item.version,
            "{email}: one message per applied write"
        );
        let versions: Vec<u64> = written.iter().map(|m| m.features_version).collect();
        assert_eq!(versions, (1..=item.version).collect::<Vec<_>>());
        expected += item.version;
    }
    assert_eq!(counters.messages_created, expected);
    assert_eq!(generator.calls.load(Ordering::SeqCst), expected);

    // Every record delivered again: nothing new, the generator never called again.
    let again = deliver(&handler, records, &stream_arn, RetryPolicy::default()).await;
    assert_eq!(again.messages_created, 0);
    assert_eq!(again.already_created, expected);
    assert_eq!(
        generator.calls.load(Ordering::SeqCst),
        expected,
        "a redelivery called the model"
    );
}

#[tokio::test]
async fn a_stale_claim_is_taken_over_and_a_fresh_one_is_not() {
    let config = sdk_config().await;
    let (tables, _) = fresh_tables(&config).await;
    let messages = DynamoMessageStore::new(aws_sdk_dynamodb::Client::new(&config), tables.messages);
    let key = MessageKey {
        customer_email: "claim@example.com".to_owned(),
        message_id: "v000000000001".to_owned(),
    };
    let lease = Duration::from_secs(60);
    let start = base_time();
    assert_eq!(
        messages.claim(&key, start, lease).await.expect("claim"),
        Claim::Acquired
    );
    assert_eq!(
        messages
            .claim(&key, start + Span::seconds(30), lease)
            .await
            .expect("claim"),
        Claim::InProgress {
            expires_at: start + Span::seconds(60)
        },
        "a live claim must not be taken over"
    );
    assert_eq!(
        messages
            .claim(&key, start + Span::seconds(61), lease)
            .await
            .expect("claim"),
        Claim::Acquired,
        "an expired claim must be taken over"
    );
    assert!(
        messages
            .list("claim@example.com")
            .await
            .expect("list")
            .is_empty()
    );
}
