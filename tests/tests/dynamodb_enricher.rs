//! The enricher Lambda handler and the DynamoDB feature store against moto's server,
//! through the real SDK clients: races (on late events too), redelivery, request counts,
//! poison messages, and histories far longer than an item keeps. (The store's contract: `aws_contract.rs`.)
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use referral_aws::dynamo::{DynamoEventArchive, DynamoFeatureStore};
use referral_aws::sqs::SqsQueue;
use referral_domain::enricher::{Enricher, EnricherConfig};
use referral_domain::event::ServiceEvent;
use referral_domain::features::MemoryLimits;
use referral_domain::ports::FeatureStore;
use referral_enricher::EnricherHandler;
use referral_tests::emulator::{RequestCounter, fresh_queues, fresh_tables, sdk_config};
use referral_tests::{
    base_time, comparable, enricher_clock, event_body, expected_features, raw_batch, service_event,
    sqs_batch,
};
use serde_json::{Value, json};

/// The batch as the mapping hands it over, first received at 2026-06-01T09:00:00Z.
fn sqs_event(bodies: &[(String, String)]) -> SqsEvent {
    let mut event = sqs_batch(bodies);
    for record in &mut event.records {
        record.attributes.insert(
            "ApproximateFirstReceiveTimestamp".to_owned(),
            "1780304400000".to_owned(),
        );
    }
    event
}

/// The enricher's handler as deployed, with default settings: its refusals go to `dlq_url`.
fn dead_lettering_handler(
    config: &aws_config::SdkConfig,
    store: DynamoFeatureStore,
    archive_table: &str,
    dlq_url: &str,
) -> EnricherHandler<DynamoFeatureStore, DynamoEventArchive, SqsQueue> {
    EnricherHandler::new(
        Enricher::new(
            store,
            archive_of(config, archive_table),
            EnricherConfig::default(),
        ),
        SqsQueue::new(aws_sdk_sqs::Client::new(config), dlq_url),
    )
}

fn archive_of(config: &aws_config::SdkConfig, table: &str) -> DynamoEventArchive {
    DynamoEventArchive::new(aws_sdk_dynamodb::Client::new(config), table)
}

/// Limits so small that a few events take every path: pending entries, archive reads and
/// writes, bucket splits.
fn tiny_memory() -> MemoryLimits {
    MemoryLimits {
        span: chrono::Duration::days(2),
        keep_at_least: 2,
        keep_at_most: 6,
        archive_at: 2,
        pending_most: 4,
        bucket_target: 2,
    }
}

fn batch_of(bodies: &[Value]) -> Vec<(String, String)> {
    bodies
        .iter()
        .enumerate()
        .map(|(i, body)| (format!("msg-{i}"), body.to_string()))
        .collect()
}

#[tokio::test]
async fn four_racing_enrichers_apply_every_distinct_event_once_late_ones_too() {
    let config = sdk_config().await;
    let (tables, _) = fresh_tables(&config).await;
    let customers = ["ann", "bob", "cyd", "dee", "eve"];
    let mut bodies: Vec<Value> = (0..140)
        .map(|i| {
            let email = format!("{}@example.com", customers[i % customers.len()]);
            event_body(
                &format!("race-{i}"),
                &email,
                // Spread over 200 days: most arrive long after later ones.
                (i * 37 % 200) as i64 * 1440,
                Some((i % 6) as f64 * 0.8),
            )
        })
        .collect();
    // 30% of the 200 deliveries are duplicates of earlier events.
    for i in 0..60 {
        bodies.push(bodies[i * 2].clone());
    }
    fastrand::seed(7);
    fastrand::shuffle(&mut bodies);
    let events: Vec<ServiceEvent> = bodies.iter().map(service_event).collect();

    let config_fast = EnricherConfig {
        backoff_base: std::time::Duration::from_millis(2),
        max_write_attempts: 20,
        memory: tiny_memory(),
        max_events_per_write: 4,
        ..EnricherConfig::default()
    };
    let tasks: Vec<_> = (0..4)
        .map(|task| {
            let store = DynamoFeatureStore::new(
                aws_sdk_dynamodb::Client::new(&config),
                tables.features.clone(),
            );
            let enricher = Enricher::new(store, archive_of(&config, &tables.archive), config_fast);
            // Every task sees all 200 deliveries, in its own order, 10 to a batch.
            let mut mine = bodies.clone();
            fastrand::Rng::with_seed(task).shuffle(&mut mine);
            // Joined, not spawned: the four interleave at every request, which is the race.
            async move {
                let (mut conflicts, mut late) = (0, 0);
                for chunk in batch_of(&mine).chunks(10) {
                    let report = enricher.process(&raw_batch(chunk), enricher_clock()).await;
                    assert_eq!(report.counters.failed, 0, "{:?}", report.messages);
                    assert_eq!(report.counters.rejected, 0, "{:?}", report.messages);
                    conflicts += report.counters.conflicts;
                    late += report.counters.archive_reads;
                }
                (conflicts, late)
            }
        })
        .collect();
    let (conflicts, archive_reads) = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .fold((0, 0), |(c, r), (conflicts, reads)| {
            (c + conflicts, r + reads)
        });
    assert!(archive_reads > 0, "no event took the late path");
    assert!(
        conflicts > 0,
        "the race never produced a conflict: the test proves nothing"
    );
    println!(
        "race: 4 enrichers over the same 200 deliveries (140 distinct events, 5 customers): \
         {conflicts} write conflicts, all resolved; {archive_reads} archive reads"
    );

    let store = DynamoFeatureStore::new(aws_sdk_dynamodb::Client::new(&config), tables.features);
    let archive = archive_of(&config, &tables.archive);
    for (email, expected) in expected_features(&events, MemoryLimits::default()) {
        let stored = store
            .load(&email)
            .await
            .expect("load")
            .expect("item exists");
        assert_applied_once(&stored, &archive, &events).await;
        assert_eq!(comparable(stored), comparable(expected), "customer {email}");
    }
}

#[tokio::test]
async fn request_counts_are_one_write_per_customer_and_no_read() {
    let config = sdk_config().await;
    let (tables, _) = fresh_tables(&config).await;
    let queues = fresh_queues(&config, 3).await;
    let counter = RequestCounter::default();
    let store = DynamoFeatureStore::new(counter.dynamodb_client(&config), tables.features);
    let handler = dead_lettering_handler(&config, store, &tables.archive, &queues.dlq_url);

    let one_customer: Vec<Value> = (0..10)
        .map(|i| event_body(&format!("one-{i}"), "solo@example.com", i, Some(4.0)))
        .collect();
    let outcome = handler
        .handle(&sqs_event(&batch_of(&one_customer)), base_time())
        .await;
    assert_eq!(outcome.counters.enrich.applied, 10);
    assert_eq!(
        (counter.count("GetItem"), counter.count("PutItem")),
        (0, 1),
        "{:?}",
        counter.snapshot()
    );

    counter.reset();
    let ten_customers: Vec<Value> = (0..10)
        .map(|i| {
            event_body(
                &format!("ten-{i}"),
                &format!("c{i}@example.com"),
                i,
                Some(4.0),
            )
        })
        .collect();
    handler
        .handle(&sqs_event(&batch_of(&ten_customers)), base_time())
        .await;
    assert_eq!(
        (counter.count("GetItem"), counter.count("PutItem")),
        (0, 10),
        "{:?}",
        counter.snapshot()
    );

    counter.reset();
    let outcome = handler
        .handle(&sqs_event(&batch_of(&one_customer)), base_time())
        .await;
    assert_eq!(outcome.counters.enrich.duplicate, 10);
    assert_eq!(
        (counter.count("GetItem"), counter.count("PutItem")),
        (0, 0),
        "{:?}",
        counter.snapshot()
    );
}

#[tokio::test]
async fn a_redelivered_batch_changes_nothing_and_writes_nothing() {
    let config = sdk_config().await;
    let (tables, _) = fresh_tables(&config).await;
    let queues = fresh_queues(&config, 3).await;
    let counter = RequestCounter::default();
    let store = DynamoFeatureStore::new(counter.dynamodb_client(&config), tables.features);
    let handler = dead_lettering_handler(&config, store, &tables.archive, &queues.dlq_url);
    let bodies: Vec<Value> = (0..10)
        .map(|i| {
            event_body(
                &format!("redo-{i}"),
                &format!("r{}@example.com", i % 3),
                i,
                Some(3.5),
            )
        })
        .collect();
    let event = sqs_event(&batch_of(&bodies));
    let first = handler.handle(&event, base_time()).await;
    assert_eq!(first.counters.enrich.applied, 10);
    let mut before = Vec::new();
    for i in 0..3 {
        before.push(
            handler
                .enricher()
                .store()
                .load(&format!("r{i}@example.com"))
                .await,
        );
    }

    counter.reset();
    let second = handler.handle(&event, base_time()).await;
    assert_eq!(second.counters.enrich.duplicate, 10);
    assert!(second.response.batch_item_failures.is_empty());
    assert_eq!(counter.count("PutItem"), 0, "a redelivery must not write");
    for (i, before) in before.into_iter().enumerate() {
        let after = handler
            .enricher()
            .store()
            .load(&format!("r{i}@example.com"))
            .await
            .expect("load");
        assert_eq!(
            after,
            before.expect("load"),
            "customer r{i} changed on redelivery"
        );
    }
}

#[tokio::test]
async fn poison_messages_go_to_the_dlq_with_their_reason_and_do_not_fail_the_batch() {
    let config = sdk_config().await;
    let (tables, _) = fresh_tables(&config).await;
    let queues = fresh_queues(&config, 3).await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let store = DynamoFeatureStore::new(aws_sdk_dynamodb::Client::new(&config), tables.features);
    let handler = dead_lettering_handler(&config, store, &tables.archive, &queues.dlq_url);
    let mut bad_score = event_body("p-bad", "pam@example.com", 3, Some(4.0));
    bad_score["service"]["satisfaction_score"] = json!("five");
    let batch = vec![
        (
            "m-ok-1".to_owned(),
            event_body("p-1", "pam@example.com", 1, Some(5.0)).to_string(),
        ),
        ("m-not-json".to_owned(), "{\"event_id\": ".to_owned()),
        ("m-bad-score".to_owned(), bad_score.to_string()),
        (
            "m-ok-2".to_owned(),
            event_body("p-2", "pat@example.com", 2, None).to_string(),
        ),
    ];
    let outcome = handler.handle(&sqs_event(&batch), base_time()).await;
    assert!(
        outcome.response.batch_item_failures.is_empty(),
        "{:?}",
        outcome.response
    );
    assert_eq!(outcome.counters.enrich.applied, 2);
    assert_eq!(outcome.counters.dead_lettered, 2);
    for email in ["pam@example.com", "pat@example.com"] {
        assert!(
            handler
                .enricher()
                .store()
                .load(email)
                .await
                .expect("load")
                .is_some(),
            "{email}"
        );
    }

    let letters = dead_letters(&sqs, &queues.dlq_url).await;
    assert_eq!(letters.len(), 2, "{letters:?}");
    let not_json = &letters["m-not-json"];
    assert_eq!(not_json["error_kind"], "malformed_json");
    assert_eq!(not_json["error_field"], "body");
    assert_eq!(not_json["enricher_version"], referral_enricher::VERSION);
    assert_eq!(not_json["first_failure_at"], "2026-06-01T09:00:00Z");
    let bad = &letters["m-bad-score"];
    assert_eq!(bad["error_kind"], "wrong_type");
    assert_eq!(bad["error_field"], "service.satisfaction_score");
    assert_eq!(bad["event_id"], "p-bad");
}

#[tokio::test]
async fn a_failed_dead_letter_send_falls_back_to_a_batch_item_failure() {
    let config = sdk_config().await;
    let (tables, _) = fresh_tables(&config).await;
    let store = DynamoFeatureStore::new(aws_sdk_dynamodb::Client::new(&config), tables.features);
    let missing_dlq = format!(
        "{}/123456789012/no-such-queue",
        referral_tests::emulator::endpoint()
    );
    let handler = dead_lettering_handler(&config, store, &tables.archive, &missing_dlq);
    let batch = vec![
        (
            "m-ok".to_owned(),
            event_body("f-1", "fay@example.com", 1, Some(5.0)).to_string(),
        ),
        ("m-poison".to_owned(), "not json".to_owned()),
    ];
    let outcome = handler.handle(&sqs_event(&batch), base_time()).await;
    let failed: Vec<_> = outcome
        .response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["m-poison"]);
    assert_eq!(outcome.counters.dead_letter_failures, 1);
    assert_eq!(outcome.counters.enrich.applied, 1);
}

/// Every event of `stored`'s customer is in the item, or in the bucket its layout names.
async fn assert_applied_once(
    stored: &referral_domain::features::CustomerFeatures,
    archive: &DynamoEventArchive,
    events: &[ServiceEvent],
) {
    use referral_domain::features::IdHash;
    use referral_domain::ports::EventArchive;
    let email = &stored.customer_email;
    let buckets: BTreeMap<u32, _> = archive.buckets(email).await.unwrap().into_iter().collect();
    for event in events.iter().filter(|event| &event.customer.email == email) {
        let id = IdHash::of(&event.event_id);
        let archived = buckets
            .get(&stored.memory.layout().bucket_of(id))
            .is_some_and(|bucket: &Vec<referral_domain::features::ArchivedEvent>| {
                bucket.iter().any(|entry| entry.id == id)
            });
        let held_in: Vec<u32> = buckets
            .iter()
            .filter(|(_, entries)| entries.iter().any(|entry| entry.id == id))
            .map(|(number, _)| *number)
            .collect();
        assert!(
            stored.memory.remembers(&event.event_id) || archived,
            "{} of {email} is neither in the item nor in its bucket {} (held in buckets \
             {held_in:?}; layout {:?}; memory {})",
            event.event_id,
            stored.memory.layout().bucket_of(id),
            stored.memory.layout(),
            stored.memory
        );
    }
}

#[tokio::test]
async fn a_history_far_longer_than_an_item_keeps_never_double_counts() {
    let config = sdk_config().await;
    let (tables, _) = fresh_tables(&config).await;
    let store = DynamoFeatureStore::new(aws_sdk_dynamodb::Client::new(&config), tables.features);
    let archive = archive_of(&config, &tables.archive);
    let enricher = Enricher::new(
        &store,
        &archive,
        EnricherConfig {
            memory: tiny_memory(),
            ..EnricherConfig::default()
        },
    );
    // A day apart: the item keeps six of them; the rest are archived.
    let bodies: Vec<Value> = (0..75)
        .map(|i| event_body(&format!("b-{i:03}"), "big@example.com", i * 1440, Some(4.0)))
        .collect();
    let batches = batch_of(&bodies);
    // Everything twice, the second time in reverse: most redeliveries are found in the archive.
    let mut archive_reads = 0;
    for chunk in batches.chunks(10).chain(batches.rchunks(10)) {
        let report = enricher.process(&raw_batch(chunk), enricher_clock()).await;
        assert_eq!(report.counters.failed, 0);
        assert_eq!(report.counters.rejected, 0);
        archive_reads += report.counters.archive_reads;
    }
    let item = store
        .load("big@example.com")
        .await
        .expect("load")
        .expect("item");
    assert_eq!(
        item.events_applied, 75,
        "an event was counted twice or lost"
    );
    assert_eq!(item.service_count, 75);
    assert!(item.memory.len() <= 6, "the memory must stay bounded");
    assert!(
        item.memory.archived() > 0 && archive_reads > 0,
        "{}",
        item.memory
    );
    let events: Vec<ServiceEvent> = bodies.iter().map(service_event).collect();
    assert_applied_once(&item, &archive, &events).await;
    let expected = expected_features(&events, MemoryLimits::default())
        .remove("big@example.com")
        .expect("folded");
    assert_eq!(comparable(item), comparable(expected));
}

#[tokio::test]
async fn an_item_that_does_not_decode_is_quarantined_and_holds_up_no_one_else() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let config = sdk_config().await;
    let (tables, _) = fresh_tables(&config).await;
    let queues = fresh_queues(&config, 3).await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    // An item as a corrupted write, or a future release, might leave it: `applied` is no
    // memory this release can read, and the version is text.
    dynamodb
        .put_item()
        .table_name(&tables.features)
        .item("customerEmail", AttributeValue::S("kim@example.com".into()))
        .item("version", AttributeValue::S("seven".into()))
        .item("applied", AttributeValue::B(vec![0xff, 0, 1].into()))
        .send()
        .await
        .expect("write the corrupted item");
    let store = DynamoFeatureStore::new(dynamodb, tables.features);
    let handler = dead_lettering_handler(&config, store, &tables.archive, &queues.dlq_url);
    let batch = vec![
        (
            "m-kim-1".to_owned(),
            event_body("k-1", "kim@example.com", 1, Some(5.0)).to_string(),
        ),
        (
            "m-lou".to_owned(),
            event_body("l-1", "lou@example.com", 1, Some(4.0)).to_string(),
        ),
        (
            "m-kim-2".to_owned(),
            event_body("k-2", "kim@example.com", 2, None).to_string(),
        ),
    ];
    let outcome = handler.handle(&sqs_event(&batch), base_time()).await;
    // Nothing is left to SQS's redrive: delivering again could not help.
    assert!(
        outcome.response.batch_item_failures.is_empty(),
        "{:?}",
        outcome.response
    );
    assert_eq!(outcome.counters.enrich.applied, 1);
    assert_eq!(outcome.counters.enrich.quarantined, 2);
    assert_eq!(outcome.counters.dead_lettered, 2);
    assert!(
        handler
            .enricher()
            .store()
            .load("lou@example.com")
            .await
            .expect("load")
            .is_some()
    );

    let letters = dead_letters(&sqs, &queues.dlq_url).await;
    assert_eq!(
        letters.keys().collect::<Vec<_>>(),
        ["m-kim-1", "m-kim-2"],
        "{letters:?}"
    );
    for letter in letters.values() {
        assert_eq!(letter["error_kind"], "undecodable_item", "{letter:?}");
        assert_eq!(letter["error_field"], "customer.email");
    }
}

/// The dead-letter queue's messages (up to 10), their attributes by source message id.
async fn dead_letters(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let received = sqs
        .receive_message()
        .queue_url(dlq_url)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .expect("receive from the DLQ");
    received
        .messages
        .unwrap_or_default()
        .iter()
        .map(referral_aws::sqs::attributes_of)
        .map(|attributes| (attributes["source_message_id"].clone(), attributes))
        .collect()
}
