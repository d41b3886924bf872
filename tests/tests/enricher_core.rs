//! The enricher core on the embedded store: isolation of bad messages, request counts,
//! idempotent redelivery, conflicts and store failures.
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::sync::Mutex;

use referral_domain::enricher::{Enricher, EnricherConfig, Outcome};
use referral_domain::features::{MemoryLimits, fold_events};
use referral_domain::ports::{FeatureStore, FeatureWrite};
use referral_local::embedded::{EmbeddedArchive, EmbeddedFeatureStore};
use referral_tests::counting::{CountingStore, FailingFor, RacingStore};
use referral_tests::{event_body, raw_batch, service_event};
use serde_json::json;

/// An owned queue message; `raw` borrows a batch of them as the enricher takes them.
fn message(id: &str, body: impl ToString) -> (String, String) {
    (id.to_owned(), body.to_string())
}

/// Records an erasure of `email` as `referral customers forget` does.
async fn erase(
    archive: &EmbeddedArchive,
    email: &str,
    last_version: u64,
    erased_at: chrono::DateTime<chrono::Utc>,
) {
    use referral_domain::ports::{ErasureLog, ErasureMarker};
    archive
        .record(&ErasureMarker {
            hash: referral_domain::redact::erasure_hash(email),
            last_version,
            erased_at,
        })
        .await
        .unwrap();
}

fn labels(outcomes: &[referral_domain::enricher::MessageReport]) -> Vec<&'static str> {
    outcomes.iter().map(|r| r.outcome.label()).collect()
}

#[tokio::test]
async fn a_bad_message_never_fails_its_neighbours() {
    let store = EmbeddedFeatureStore::new();
    let enricher = Enricher::new(&store, EmbeddedArchive::new(), EnricherConfig::default());
    let mut wrong_score = event_body("e-bad-score", "ann@example.com", 2, Some(4.0));
    wrong_score["service"]["satisfaction_score"] = json!("4");
    let batch = vec![
        message("m1", event_body("e1", "ann@example.com", 0, Some(5.0))),
        message("m2", "{not json"),
        message("m3", wrong_score),
        message("m4", event_body("e2", "bob@example.com", 1, Some(3.0))),
        message(
            "m5",
            json!({"event_id": "e3", "event_type": "customer.updated"}),
        ),
        message("m6", event_body("e1", "ann@example.com", 0, Some(5.0))),
    ];
    let report = enricher
        .process(&raw_batch(&batch), chrono::Utc::now())
        .await;
    assert_eq!(
        labels(&report.messages),
        [
            "applied",
            "rejected",
            "rejected",
            "applied",
            "ignored",
            "duplicate"
        ]
    );
    let Outcome::Rejected(rejection) = &report.messages[2].outcome else {
        panic!("not rejected")
    };
    assert_eq!(rejection.error.field(), "service.satisfaction_score");
    assert_eq!(rejection.event_id.as_deref(), Some("e-bad-score"));
    assert_eq!(report.counters.applied, 2);
    assert_eq!(report.counters.customers, 2);
    assert!(store.load("ann@example.com").await.ok().flatten().is_some());
    assert!(store.load("bob@example.com").await.ok().flatten().is_some());
}

#[tokio::test]
async fn one_write_per_customer_no_read_and_nothing_on_redelivery() {
    let store = CountingStore::new(EmbeddedFeatureStore::new());
    let enricher = Enricher::new(&store, EmbeddedArchive::new(), EnricherConfig::default());
    let one_customer: Vec<(String, String)> = (0..10)
        .map(|i| {
            message(
                &format!("a{i}"),
                event_body(&format!("a{i}"), "solo@example.com", i, Some(4.0)),
            )
        })
        .collect();
    let report = enricher
        .process(&raw_batch(&one_customer), chrono::Utc::now())
        .await;
    assert_eq!(report.counters.applied, 10);
    assert_eq!(store.take(), (0, 1));
    assert_eq!(
        (report.counters.store_reads, report.counters.store_writes),
        (0, 1)
    );

    let ten_customers: Vec<(String, String)> = (0..10)
        .map(|i| {
            message(
                &format!("b{i}"),
                event_body(&format!("b{i}"), &format!("c{i}@example.com"), i, None),
            )
        })
        .collect();
    enricher
        .process(&raw_batch(&ten_customers), chrono::Utc::now())
        .await;
    assert_eq!(store.take(), (0, 10));

    let redelivered = enricher
        .process(&raw_batch(&one_customer), chrono::Utc::now())
        .await;
    assert_eq!(redelivered.counters.duplicate, 10);
    assert_eq!(
        store.take(),
        (0, 0),
        "a redelivered batch must cost nothing"
    );

    // A second process, with nothing cached, meets an existing item: its blind first write
    // is refused with the current item, which it folds again. Still no read.
    let cold = Enricher::new(&store, EmbeddedArchive::new(), EnricherConfig::default());
    let more: Vec<(String, String)> = (10..12)
        .map(|i| {
            message(
                &format!("a{i}"),
                event_body(&format!("a{i}"), "solo@example.com", i, Some(4.0)),
            )
        })
        .collect();
    let report = cold.process(&raw_batch(&more), chrono::Utc::now()).await;
    assert_eq!(report.counters.applied, 2);
    assert_eq!(store.take(), (0, 2));
    assert_eq!(
        (report.counters.cache_misses, report.counters.conflicts),
        (1, 1)
    );
}

#[tokio::test]
async fn a_lost_race_is_refolded_and_retried() {
    let email = "race@example.com";
    let rival_event = service_event(&event_body("rival", email, 5, Some(1.0)));
    let rival_fold = fold_events(None, &[&rival_event], MemoryLimits::default());
    let applied_ids = rival_fold.applied_ids.clone();
    let rival = FeatureWrite {
        expected_version: None,
        item: rival_fold.into_next().expect("applied").into(),
        applied_ids,
    };
    let store = RacingStore {
        inner: EmbeddedFeatureStore::new(),
        rival: Mutex::new(Some(rival)),
    };
    let enricher = Enricher::new(&store, EmbeddedArchive::new(), EnricherConfig::default());
    let report = enricher
        .process(
            &raw_batch(&[message("m1", event_body("mine", email, 9, Some(5.0)))]),
            chrono::Utc::now(),
        )
        .await;
    assert_eq!(labels(&report.messages), ["applied"]);
    assert_eq!(report.counters.conflicts, 1);
    let item = store.load(email).await.ok().flatten().expect("item");
    assert_eq!(
        (item.version, item.events_applied, item.satisfaction_avg),
        (2, 2, 3.0)
    );
}

#[tokio::test]
async fn a_store_failure_fails_only_that_customers_messages() {
    let store = FailingFor {
        inner: EmbeddedFeatureStore::new(),
        poisoned: "throttled",
    };
    let enricher = Enricher::new(&store, EmbeddedArchive::new(), EnricherConfig::default());
    let report = enricher
        .process(
            &raw_batch(&[
                message("m1", event_body("e1", "throttled@example.com", 0, None)),
                message("m2", event_body("e2", "fine@example.com", 0, None)),
                message("m3", event_body("e3", "throttled@example.com", 1, None)),
            ]),
            chrono::Utc::now(),
        )
        .await;
    assert_eq!(labels(&report.messages), ["failed", "applied", "failed"]);
    assert_eq!(report.failed().count(), 2);
}

#[tokio::test]
async fn a_duplicate_with_other_content_is_refused_and_the_original_stays() {
    let store = EmbeddedFeatureStore::new();
    let enricher = Enricher::new(&store, EmbeddedArchive::new(), EnricherConfig::default());
    enricher
        .process(
            &raw_batch(&[message(
                "m1",
                event_body("same-id", "dup@example.com", 0, Some(5.0)),
            )]),
            chrono::Utc::now(),
        )
        .await;
    let report = enricher
        .process(
            &raw_batch(&[
                message("m2", event_body("same-id", "dup@example.com", 0, Some(1.0))),
                message("m3", event_body("same-id", "dup@example.com", 0, Some(5.0))),
            ]),
            chrono::Utc::now(),
        )
        .await;
    assert_eq!(
        labels(&report.messages),
        ["conflicting_duplicate", "duplicate"]
    );
    assert_eq!(report.counters.conflicting_duplicate, 1);
    let refusal = report.messages[0].outcome.refusal().expect("dead-lettered");
    assert_eq!(
        (refusal.kind, refusal.field),
        ("conflicting_duplicate", "event_id")
    );
    assert!(report.messages[1].outcome.refusal().is_none());
    let item = store
        .load("dup@example.com")
        .await
        .ok()
        .flatten()
        .expect("item");
    assert_eq!((item.version, item.satisfaction_avg), (1, 5.0));
}

/// An event dated in year 9999 would hold the customer's latest values and the memory's
/// watermark until then: the enricher refuses it against its clock, naming the
/// field, and writes nothing.
#[tokio::test]
async fn an_event_from_year_9999_is_refused_and_writes_nothing() {
    let store = CountingStore::new(EmbeddedFeatureStore::new());
    let enricher = Enricher::new(&store, EmbeddedArchive::new(), EnricherConfig::default());
    let mut far = event_body("e-far", "far@example.com", 0, Some(4.0));
    far["occurred_at"] = json!("9999-01-01T00:00:00Z");
    let report = enricher
        .process(&raw_batch(&[message("m1", far)]), chrono::Utc::now())
        .await;
    let Outcome::Rejected(rejection) = &report.messages[0].outcome else {
        panic!("not rejected: {:?}", report.messages[0].outcome)
    };
    assert_eq!(rejection.error.field(), "occurred_at");
    assert_eq!(store.take(), (0, 0), "no read, no write");
    assert!(store.load("far@example.com").await.unwrap().is_none());
}

#[tokio::test]
async fn an_erased_customer_stays_erased_and_comes_back_fresh_after_the_marker() {
    let store = EmbeddedFeatureStore::new();
    let archive = EmbeddedArchive::new();
    let email = "erin@example.com";
    // Erased with version 5 at minute 10 of the fixtures' clock.
    let erased_at = referral_tests::base_time() + chrono::Duration::minutes(10);
    erase(&archive, email, 5, erased_at).await;
    let enricher = Enricher::new(&store, &archive, EnricherConfig::default());

    let old = message("m-old", event_body("e-old", email, 3, Some(5.0)));
    let at_erasure = message("m-at", event_body("e-at", email, 10, Some(5.0)));
    let report = enricher
        .process(&raw_batch(&[old.clone(), at_erasure]), chrono::Utc::now())
        .await;
    assert_eq!(labels(&report.messages), ["erased", "erased"]);
    assert_eq!(report.counters.erased, 2);
    assert_eq!(report.counters.erasure_reads, 1);
    assert_eq!(report.counters.store_writes, 0);
    assert!(
        store.load(email).await.unwrap().is_none(),
        "nothing came back"
    );

    let new = message("m-new", event_body("e-new", email, 11, Some(4.0)));
    let report = enricher
        .process(&raw_batch(&[old.clone(), new]), chrono::Utc::now())
        .await;
    assert_eq!(labels(&report.messages), ["erased", "applied"]);
    let fresh = store.load(email).await.unwrap().expect("a fresh customer");
    assert_eq!(fresh.version, 6, "after the erased versions");
    assert_eq!(fresh.service_count, 1, "only the new event");
    assert_eq!(fresh.erased_through, Some(erased_at));

    // A redelivery of the erased event, to a warm process and to a cold one alike.
    let report = enricher
        .process(&raw_batch(std::slice::from_ref(&old)), chrono::Utc::now())
        .await;
    assert_eq!(labels(&report.messages), ["erased"]);
    assert_eq!(
        report.counters.erasure_reads, 0,
        "a held item needs no marker"
    );
    let cold = Enricher::new(&store, &archive, EnricherConfig::default());
    let report = cold.process(&raw_batch(&[old]), chrono::Utc::now()).await;
    assert_eq!(labels(&report.messages), ["erased"]);
    let after = store.load(email).await.unwrap().expect("still there");
    assert_eq!(after, fresh, "the redeliveries changed nothing");
}

/// The erasure filter spares the marker read of customers never erased: a batch of cold
/// customers costs one read of the filter's generation (and of the filter once it moved),
/// and only the erased customer's marker is read. A generation read is trusted for the TTL:
/// batches within it read nothing. Past it, a generation moved by an erasure makes the
/// enricher read the filter again.
#[tokio::test]
async fn the_erasure_filter_spares_the_marker_reads_of_customers_never_erased() {
    let store = EmbeddedFeatureStore::new();
    let archive = EmbeddedArchive::new();
    let config = EnricherConfig::default();
    let ttl = chrono::TimeDelta::from_std(config.erasure_generation_ttl).unwrap();
    let enricher = Enricher::new(&store, &archive, config);
    let start = chrono::Utc::now();
    // One event each of customers `numbers`, at `minute`.
    let strangers = |numbers: std::ops::Range<u32>, minute: i64| -> Vec<(String, String)> {
        numbers
            .map(|n| {
                let email = format!("stranger{n}@example.com");
                let id = format!("e{minute}-{n}");
                message(
                    &format!("m-{id}"),
                    event_body(&id, &email, minute, Some(4.0)),
                )
            })
            .collect()
    };
    let report = enricher
        .process(&raw_batch(&strangers(0..8, 1)), start)
        .await;
    assert_eq!(report.counters.applied, 8);
    assert_eq!(
        report.counters.erasure_reads, 0,
        "an empty log rules all out"
    );
    assert_eq!(
        report.counters.erasure_filter_reads, 1,
        "one generation read"
    );
    let report = enricher
        .process(&raw_batch(&strangers(100..108, 1)), start + ttl / 2)
        .await;
    assert_eq!(report.counters.applied, 8);
    assert_eq!(
        report.counters.erasure_filter_reads, 0,
        "within the TTL, cold customers cost no read"
    );

    let email = "erin@example.com";
    let erased_at = referral_tests::base_time() + chrono::Duration::minutes(10);
    erase(&archive, email, 5, erased_at).await;
    let mut batch = vec![message("m-old", event_body("e-old", email, 3, Some(5.0)))];
    batch.extend(strangers(8..16, 1));
    let report = enricher.process(&raw_batch(&batch), start + ttl).await;
    assert_eq!(
        report.counters.erased, 1,
        "the erased customer stays erased"
    );
    assert_eq!(report.counters.applied, 8);
    assert_eq!(
        report.counters.erasure_filter_reads, 2,
        "the generation moved: the filter is read again"
    );
    assert!(
        report.counters.erasure_reads <= 2,
        "the erased customer's marker, and a false positive at most: {}",
        report.counters.erasure_reads
    );
    assert!(report.counters.erasure_reads >= 1);
    assert!(store.load(email).await.unwrap().is_none());

    // Only held customers: no read at all.
    let report = enricher
        .process(&raw_batch(&strangers(0..8, 2)), chrono::Utc::now())
        .await;
    assert_eq!(report.counters.applied, 8);
    assert_eq!(report.counters.erasure_filter_reads, 0);
    assert_eq!(report.counters.erasure_reads, 0);
}
