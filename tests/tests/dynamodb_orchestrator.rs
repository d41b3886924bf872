//! The orchestrator against moto's server: enricher → DynamoDB stream → orchestrator makes
//! exactly one message per applied change, and redelivery makes none and never calls the
//! generator again. (Claims, takeover and drafts: the message-store contract.)
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::sync::atomic::Ordering;

use referral_aws::dynamo::{DynamoEventArchive, DynamoFeatureStore, DynamoMessageStore};
use referral_aws_local::stream_reader::{DynamoStreamFeed, StartingPosition};
use referral_domain::enricher::{Enricher, EnricherConfig};
use referral_domain::orchestrator::{Orchestrator, OrchestratorConfig, StreamCounters};
use referral_domain::ports::{FeatureStore, MessageStore};
use referral_local::mapping::StreamMapping;
use referral_local::pipeline::StreamConsumer;
use referral_tests::counting::CountingGenerator;
use referral_tests::emulator::{fresh_tables, sdk_config};
use referral_tests::{event_body, raw_batch};

/// Opens the table's stream from its start and has every record it holds handled by the
/// orchestrator, as the stream's event-source mapping would.
async fn deliver_all<G, M>(
    config: &aws_config::SdkConfig,
    stream_arn: &str,
    orchestrator: &Orchestrator<G, M>,
) -> StreamCounters
where
    G: referral_domain::ports::MessageGenerator,
    M: MessageStore,
{
    let feed = DynamoStreamFeed::start(
        aws_sdk_dynamodbstreams::Client::new(config),
        stream_arn.to_owned(),
        StartingPosition::TrimHorizon,
    )
    .await
    .expect("open the stream");
    let mapping = StreamMapping::new(feed, orchestrator);
    let mut counters = StreamCounters::default();
    // The emulator publishes at once; a few empty polls in a row mean the stream is drained.
    let mut empty = 0;
    while empty < 3 {
        if mapping
            .consume(100, &mut counters)
            .await
            .expect("poll the stream")
            == 0
        {
            empty += 1;
        } else {
            empty = 0;
        }
    }
    counters
}

#[tokio::test]
async fn each_applied_change_makes_exactly_one_message_even_when_delivered_twice() {
    let config = sdk_config().await;
    let (tables, stream_arn) = fresh_tables(&config).await;
    let store = DynamoFeatureStore::new(aws_sdk_dynamodb::Client::new(&config), tables.features);
    let archive = DynamoEventArchive::new(aws_sdk_dynamodb::Client::new(&config), tables.archive);
    let enricher = Enricher::new(&store, archive, EnricherConfig::default());
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

    let generator = CountingGenerator::default();
    let messages = DynamoMessageStore::new(aws_sdk_dynamodb::Client::new(&config), tables.messages);
    let orchestrator = Orchestrator::new(&generator, &messages, OrchestratorConfig::default());
    // The records decoded by the Lambda function's own decoder.
    let counters = deliver_all(&config, &stream_arn, &orchestrator).await;
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
    assert_eq!(counters.created, expected);
    assert_eq!(generator.calls.load(Ordering::SeqCst), expected);

    // Every record delivered again: nothing new, the generator never called again.
    let again = deliver_all(&config, &stream_arn, &orchestrator).await;
    assert_eq!(again.created, 0);
    assert_eq!(again.already_created, expected);
    assert_eq!(
        generator.calls.load(Ordering::SeqCst),
        expected,
        "a redelivery called the model"
    );
}

/// Every message and suppression the orchestrator Lambda's own wiring writes carries the
/// table's TTL attribute at its retention's end, from `MESSAGE_RETENTION_DAYS`; the
/// customer's message slot carries none, so the cooldown outlives the messages.
#[tokio::test]
async fn every_decision_expires_after_the_retention_and_the_message_slot_never_does() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use referral_aws::dynamo::{CLAIM_TTL_ATTRIBUTE, SLOT_ID};
    use referral_domain::env::Vars;

    const DAY: i64 = 24 * 60;
    let config = sdk_config().await;
    let (tables, stream_arn) = fresh_tables(&config).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let store = DynamoFeatureStore::new(dynamodb.clone(), &tables.features);
    let archive = DynamoEventArchive::new(dynamodb.clone(), &tables.archive);
    let enricher = Enricher::new(&store, archive, EnricherConfig::default());
    // Ann: a message on day 0, day 1 in the cooldown, a message again on day 9; Bob: one.
    for (id, email, minute) in [
        ("a0", "ann@example.com", 0),
        ("a1", "ann@example.com", DAY),
        ("a9", "ann@example.com", 9 * DAY),
        ("b0", "bob@example.com", 0),
    ] {
        let batch = [(
            id.to_owned(),
            event_body(id, email, minute, Some(4.5)).to_string(),
        )];
        enricher
            .process(&raw_batch(&batch), chrono::Utc::now())
            .await;
    }
    let settings = referral_orchestrator::Config::from_vars(&Vars::fixed(&[
        ("MESSAGES_TABLE", tables.messages.as_str()),
        ("MESSAGE_RETENTION_DAYS", "30"),
        ("MESSAGE_COOLDOWN", "7d"),
    ]))
    .expect("the orchestrator's settings");
    let generator = CountingGenerator::default();
    let orchestrator = Orchestrator::new(
        &generator,
        settings.message_store(&config),
        settings.orchestrator_config(),
    );
    let counters = deliver_all(&config, &stream_arn, &orchestrator).await;
    assert_eq!(
        (counters.created, counters.suppressed),
        (3, 1),
        "{counters:?}"
    );

    let items = dynamodb
        .scan()
        .table_name(&tables.messages)
        .send()
        .await
        .expect("scan")
        .items
        .unwrap_or_default();
    let text = |item: &std::collections::HashMap<String, AttributeValue>, name: &str| {
        item.get(name)
            .and_then(|value| value.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    let mut decisions = 0;
    for item in &items {
        let status = text(item, "status");
        let ttl = item
            .get(CLAIM_TTL_ATTRIBUTE)
            .and_then(|value| value.as_n().ok());
        let recorded_at = match status.as_str() {
            "completed" => text(item, "created_at"),
            "suppressed" => text(item, "decided_at"),
            "message_slot" => {
                assert_eq!(text(item, "message_id"), SLOT_ID);
                assert_eq!(ttl, None, "the message slot must not expire");
                continue;
            }
            other => panic!("unexpected row {other}"),
        };
        let recorded_at = chrono::DateTime::parse_from_rfc3339(&recorded_at).expect("a time");
        let expected = (recorded_at + chrono::Duration::days(30))
            .timestamp()
            .to_string();
        assert_eq!(ttl, Some(&expected), "{status} row: {item:?}");
        assert!(
            !item.contains_key("prompt"),
            "the prompt's text is not stored"
        );
        decisions += 1;
    }
    assert_eq!(decisions, 4);
}
