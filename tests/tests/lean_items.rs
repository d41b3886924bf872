//! Lean feature items: what an item weighs however long a customer's history, what becomes
//! of an item the first release wrote, and one customer with 20,000 services through the
//! real enricher against moto, late and redelivered, each counted once whatever its age.
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, TimeZone, Utc};
use referral_aws::dynamo::{DynamoEventArchive, DynamoFeatureStore};
use referral_aws::sqs::{SqsQueue, attributes_of};
use referral_domain::enricher::{Enricher, EnricherConfig, QueuedWebhook};
use referral_domain::event::ServiceEvent;
use referral_domain::features::{CustomerFeatures, MemoryLimits};
use referral_domain::ports::FeatureStore;
use referral_enricher::EnricherHandler;
use referral_local::embedded::{EmbeddedArchive, EmbeddedFeatureStore};
use referral_tests::corpus::{Corpus, CorpusSpec, Delivery};
use referral_tests::counting::SizeWatchingStore;
use referral_tests::emulator::{fresh_queues, fresh_tables, queue_depth, sdk_config};
use referral_tests::{comparable, expected_features, service_event, sqs_batch};
use serde_json::{Value, json};

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2010, 1, 4, 9, 30, 0)
        .single()
        .unwrap_or_default()
}

/// A customer's event with every optional field filled, as a busy real customer's are.
fn full_event_json(id: &str, at: DateTime<Utc>, score: f64) -> Value {
    json!({
        "event_id": id,
        "event_type": "service.completed",
        "occurred_at": at.to_rfc3339(),
        "customer": {
            "email": "Margaret.Oyelaran-Whitfield@Example-Homes.com",
            "name": "Margaret Oyelaran-Whitfield",
            "address": {"street": "1182 Old Mill Run", "city": "San Antonio", "state": "TX",
                        "zip": "78209"}
        },
        "service": {"id": format!("svc_{id}"), "type": "pest_control",
                    "satisfaction_score": score},
        "property_info": {"type": "single_family", "square_feet": 2650, "year_built": 1978,
                          "pest_issues": ["ants", "termites"]},
        "services_count": 3
    })
}

/// Writes `count` events `every` apart through the enricher, one batch each, and returns
/// the largest item written and the last.
async fn largest_item_over(count: i64, every: Duration) -> (u64, CustomerFeatures) {
    let store = SizeWatchingStore::new(EmbeddedFeatureStore::new());
    let archive = EmbeddedArchive::new();
    let enricher = Enricher::new(&store, &archive, EnricherConfig::default());
    for i in 0..count {
        let last = start() + every * i as i32;
        let body = serde_json::to_string(&full_event_json(&format!("evt_{i:08}"), last, 4.5))
            .expect("serialisable");
        let batch = [QueuedWebhook {
            message_id: "m",
            body: &body,
            trace: None,
        }];
        let report = enricher.process(&batch, last).await;
        assert_eq!(report.counters.applied, 1, "event {i} was not applied");
    }
    let item = store
        .load("margaret.oyelaran-whitfield@example-homes.com")
        .await
        .unwrap()
        .expect("events applied");
    (store.largest(), item)
}

#[tokio::test]
async fn a_weekly_customer_stays_within_one_write_unit_over_twenty_years() {
    let (largest, item) = largest_item_over(20 * 52, Duration::weeks(1)).await;
    assert_eq!(item.events_applied, 1040);
    assert!(largest <= 1024, "largest item {largest} bytes");
}

#[tokio::test]
async fn ten_services_a_day_stay_within_four_kilobytes() {
    let (largest, item) = largest_item_over(2 * 365 * 10, Duration::minutes(144)).await;
    assert_eq!(item.events_applied, 7300);
    assert!(largest <= 4096, "largest item {largest} bytes");
    // The item keeps as many as its bound allows; the archive holds the rest.
    let limits = MemoryLimits::default();
    assert_eq!(item.memory.len(), limits.keep_at_most, "{}", item.memory);
    assert!(item.memory.archived() > 7000, "{}", item.memory);
}

// ---------------------------------------------------------------------------------------
// An item the first release wrote

/// The events behind `shared/domain/tests/fixtures/legacy-item-v0.json`, which the first
/// release wrote with a memory of six ids (so it had forgotten three).
fn legacy_event(i: u32) -> Value {
    json!({
        "event_id": format!("evt_legacy_{i:02}"),
        "event_type": "service.completed",
        "occurred_at": format!("2026-0{}-1{}T10:00:00Z", 1 + i % 9, i % 9),
        "customer": {"email": "Legacy.Customer@Example.com", "name": "Lee Gacy",
                     "address": {"city": "Austin", "state": "TX", "zip": format!("7870{}", i % 9)}},
        "service": {"type": "pest_control", "satisfaction_score": 3.0 + f64::from(i % 3) * 0.5},
        "property_info": {"type": "single_family", "square_feet": 2000 + i, "year_built": 1990,
                          "pest_issues": ["ants"]},
        "services_count": 3
    })
}

#[tokio::test]
async fn an_item_the_first_release_wrote_is_read_and_rewritten_compactly() {
    let config = sdk_config().await;
    let (tables, _) = fresh_tables(&config).await;
    let queues = fresh_queues(&config, 3).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/domain/tests/fixtures/legacy-item-v0.json");
    let legacy: Value = serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    let item: std::collections::HashMap<String, AttributeValue> =
        serde_dynamo::aws_sdk_dynamodb_1::to_item(&legacy).unwrap();
    dynamodb
        .put_item()
        .table_name(&tables.features)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();

    let handler = EnricherHandler::new(
        Enricher::new(
            DynamoFeatureStore::new(dynamodb.clone(), tables.features.clone()),
            DynamoEventArchive::new(dynamodb.clone(), tables.archive.clone()),
            EnricherConfig::default(),
        ),
        SqsQueue::new(aws_sdk_sqs::Client::new(&config), queues.dlq_url.clone()),
    );
    let mut new_event = legacy_event(9);
    new_event["event_id"] = json!("evt_after_migration");
    new_event["occurred_at"] = json!("2026-10-01T10:00:00Z");
    let deliveries = [
        // Remembered by the old item: a duplicate.
        ("m1", legacy_event(7)),
        // Maybe forgotten by the old item (below its floor, which seals the upgraded item):
        // unprovable, dead-lettered.
        ("m2", legacy_event(1)),
        ("m3", new_event),
    ]
    .map(|(id, body)| (id.to_owned(), body.to_string()));
    let outcome = handler.handle(&sqs_batch(&deliveries), Utc::now()).await;
    let labels: Vec<&str> = outcome
        .report
        .messages
        .iter()
        .map(|message| message.outcome.label())
        .collect();
    assert_eq!(labels, ["duplicate", "unprovable", "applied"]);
    assert!(outcome.response.batch_item_failures.is_empty());
    assert_eq!(outcome.counters.dead_lettered, 1);

    let stored = dynamodb
        .get_item()
        .table_name(&tables.features)
        .key(
            "customerEmail",
            AttributeValue::S("legacy.customer@example.com".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    for legacy_only in ["applied_events", "applied_floor", "field_sources"] {
        assert!(!stored.contains_key(legacy_only), "{legacy_only} was kept");
    }
    assert!(matches!(stored.get("applied"), Some(AttributeValue::B(_))));
    let migrated = DynamoFeatureStore::new(dynamodb, tables.features)
        .load("legacy.customer@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((migrated.events_applied, migrated.version), (10, 2));
    // The documented features went on from where the old item left them.
    assert_eq!(migrated.property_features.city.as_deref(), Some("Austin"));
    assert_eq!(
        migrated.first_seen.to_rfc3339(),
        "2026-01-10T10:00:00+00:00"
    );
}

// ---------------------------------------------------------------------------------------
// 20,000 services over five years

/// What became of every delivery, and what is in the dead-letter queue.
struct HeavyRun {
    outcomes: BTreeMap<&'static str, BTreeSet<String>>,
    archive_reads: u64,
    item: CustomerFeatures,
    largest_item: u64,
    dead_letters: BTreeMap<String, BTreeMap<String, String>>,
}

/// Feeds the heavy customer's deliveries, in batches of ten by simulated arrival time, to
/// the enricher Lambda's handler with `memory`, each batch at its own "now".
async fn heavy_run(corpus: &Corpus, memory: MemoryLimits) -> HeavyRun {
    let config = sdk_config().await;
    let (tables, _) = fresh_tables(&config).await;
    let queues = fresh_queues(&config, 3).await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let store = SizeWatchingStore::new(DynamoFeatureStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        tables.features.clone(),
    ));
    let archive = DynamoEventArchive::new(
        aws_sdk_dynamodb::Client::new(&config),
        tables.archive.clone(),
    );
    let handler = EnricherHandler::new(
        Enricher::new(
            &store,
            archive,
            EnricherConfig {
                memory,
                ..EnricherConfig::default()
            },
        ),
        SqsQueue::new(sqs.clone(), queues.dlq_url.clone()),
    );
    let mut outcomes: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    let mut archive_reads = 0;
    for (number, batch) in corpus.batches().enumerate() {
        let deliveries: Vec<(String, String)> = batch
            .iter()
            .enumerate()
            .map(|(i, delivery)| (format!("m{number}-{i}"), delivery.body.clone()))
            .collect();
        let now = batch.iter().map(|d: &Delivery| d.deliver_at).max().unwrap();
        let outcome = handler.handle(&sqs_batch(&deliveries), now).await;
        assert!(
            outcome.response.batch_item_failures.is_empty(),
            "batch {number}: {:?}",
            outcome.report.failed().collect::<Vec<_>>()
        );
        archive_reads += outcome.counters.enrich.archive_reads;
        for message in &outcome.report.messages {
            outcomes
                .entry(message.outcome.label())
                .or_default()
                .insert(message.event_id.clone().unwrap_or_default());
        }
    }
    let mut dead_letters = BTreeMap::new();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(&queues.dlq_url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        if received.is_empty() {
            break;
        }
        for message in &received {
            let attributes = attributes_of(message);
            dead_letters.insert(attributes["event_id"].clone(), attributes);
            sqs.delete_message()
                .queue_url(&queues.dlq_url)
                .receipt_handle(message.receipt_handle.clone().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    assert_eq!(queue_depth(&sqs, &queues.dlq_url).await, (0, 0));
    let item = store
        .load(&corpus.deliveries[0].customer)
        .await
        .unwrap()
        .unwrap();
    HeavyRun {
        outcomes,
        archive_reads,
        item,
        largest_item: store.largest(),
        dead_letters,
    }
}

fn distinct_events(corpus: &Corpus) -> BTreeMap<String, ServiceEvent> {
    corpus
        .deliveries
        .iter()
        .filter(|delivery| !delivery.is_duplicate)
        .map(|delivery| {
            let event = service_event(&serde_json::from_str(&delivery.body).unwrap());
            (delivery.event_id.clone(), event)
        })
        .collect()
}

/// Every distinct event applied once, every redelivery caught, nothing dead-lettered, and
/// the item the fold of exactly those events.
fn assert_exact(corpus: &Corpus, run: HeavyRun) {
    let distinct = distinct_events(corpus);
    assert_eq!(run.outcomes["applied"].len(), distinct.len());
    assert_eq!(
        run.outcomes.keys().copied().collect::<Vec<_>>(),
        ["applied", "duplicate"],
        "every delivery is applied or a duplicate"
    );
    assert!(run.dead_letters.is_empty(), "{:?}", run.dead_letters.keys());
    let events: Vec<ServiceEvent> = distinct.into_values().collect();
    let expected = expected_features(&events, MemoryLimits::default());
    let expected = expected.values().next().unwrap().clone();
    assert_eq!(run.item.events_applied, events.len() as u64);
    assert_eq!(comparable(run.item), comparable(expected));
    assert!(
        run.largest_item <= 4096,
        "largest item {} bytes",
        run.largest_item
    );
}

#[tokio::test]
async fn twenty_thousand_services_late_and_redelivered_are_each_counted_once() {
    let corpus = Corpus::heavy_customer();
    assert_exact(&corpus, heavy_run(&corpus, MemoryLimits::default()).await);
}

#[tokio::test]
async fn with_a_short_memory_old_redeliveries_are_found_in_the_archive() {
    // A year of the heavy customer's pattern (late arrivals, redeliveries up to 14 days
    // later) with a 12-day, 64-event memory: the latest redeliveries fall outside it, and
    // the archive tells them apart from new events.
    let corpus = Corpus::generate(CorpusSpec {
        distinct_events: 4_000,
        duplicates: 1_200,
        span: Duration::days(365),
        ..Corpus::heavy_customer().spec
    })
    .expect("a valid spec");
    let memory = MemoryLimits {
        span: Duration::days(12),
        keep_at_most: 64,
        ..MemoryLimits::default()
    };
    let run = heavy_run(&corpus, memory).await;
    assert!(run.archive_reads > 0, "no redelivery reached the archive");
    assert_exact(&corpus, run);
}
