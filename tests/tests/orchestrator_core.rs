//! The orchestrator core on embedded adapters: one message per applied change, none for
//! redeliveries, skips, claims that expire, and no record started near the invocation's
//! deadline.
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use referral_domain::enricher::{Enricher, EnricherConfig, QueuedWebhook};
use referral_domain::orchestrator::{
    Deadline, Orchestrator, OrchestratorConfig, RecordOutcome, SkipReason, StreamCounters,
};
use referral_domain::ports::{
    ChangeFeed, ChangeKind, ChangeRecord, Claim, Generated, GenerationError, GenerationRequest,
    Holder, MessageGenerator, MessageKey, MessageStore,
};
use referral_domain::prompt::{PROMPT_VERSION, build_prompt};
use referral_domain::redact::short_hash;
use referral_domain::template::TemplateGenerator;
use referral_local::embedded::{EmbeddedArchive, EmbeddedFeatureStore, EmbeddedMessageStore};
use referral_local::mapping::{MappingSettings, RecordsFeed, StreamConsumer, StreamMapping};
use referral_tests::counting::{CountingGenerator, FailingFor};
use referral_tests::{base_time, event_body};

async fn records_for(batches: &[&[(&str, &str, i64)]]) -> Vec<ChangeRecord> {
    let store = EmbeddedFeatureStore::new();
    let enricher = Enricher::new(&store, EmbeddedArchive::new(), EnricherConfig::default());
    for batch in batches {
        let bodies: Vec<String> = batch
            .iter()
            .map(|(id, email, minute)| event_body(id, email, *minute, Some(4.5)).to_string())
            .collect();
        let messages: Vec<QueuedWebhook<'_>> = batch
            .iter()
            .zip(&bodies)
            .map(|((id, _, _), body)| QueuedWebhook {
                message_id: id,
                body,
                trace: None,
            })
            .collect();
        enricher.process(&messages, chrono::Utc::now()).await;
    }
    store.poll(1000).await.expect("embedded feed")
}

#[tokio::test]
async fn each_applied_change_makes_one_message_and_redelivery_makes_none() {
    let records = records_for(&[
        &[("e1", "ann@example.com", 0), ("e2", "bob@example.com", 0)],
        &[("e3", "ann@example.com", 1), ("e1", "ann@example.com", 0)],
        &[("e1", "ann@example.com", 0)], // all duplicates: no write, no record
    ])
    .await;
    assert_eq!(records.len(), 3);
    let generator = CountingGenerator::default();
    let messages = EmbeddedMessageStore::new();
    let orchestrator = Orchestrator::new(&generator, &messages, OrchestratorConfig::default());
    for round in 0..2 {
        for record in &records {
            let outcome = orchestrator.handle(record, base_time()).await;
            let expected = if round == 0 {
                "created"
            } else {
                "already_created"
            };
            assert_eq!(outcome.label(), expected, "round {round}");
        }
    }
    assert_eq!(generator.calls.load(Ordering::SeqCst), 3);
    let ann = messages.list("ann@example.com").await.expect("list");
    let versions: Vec<u64> = ann.iter().map(|m| m.features_version).collect();
    assert_eq!(versions, [1, 2]);
    assert_eq!(ann[1].trigger_event_id.as_deref(), Some("e3"));
    assert_eq!(ann[1].generator, "template");
    assert_eq!(ann[1].prompt_version, PROMPT_VERSION);
    let v2 = records
        .iter()
        .filter_map(|record| record.new_image.as_deref())
        .find(|image| image.customer_email == "ann@example.com" && image.version == 2);
    assert_eq!(
        Some(ann[1].prompt_hash.clone()),
        v2.map(|features| short_hash(build_prompt(Some(features)).user.as_bytes())),
        "the hash of the prompt the core built, rebuilt from the same features"
    );
}

#[tokio::test]
async fn removals_and_writes_that_applied_nothing_are_skipped() {
    let records = records_for(&[&[("e1", "ann@example.com", 0)]]).await;
    let image = records[0].new_image.clone();
    let generator = CountingGenerator::default();
    let messages = EmbeddedMessageStore::new();
    let orchestrator = Orchestrator::new(&generator, &messages, OrchestratorConfig::default());
    let record = |kind, old: Option<Arc<_>>, new: Option<Arc<_>>| ChangeRecord {
        sequence_number: "1".into(),
        kind,
        customer_email: "ann@example.com".into(),
        old_image: old,
        new_image: new,
        written_at: None,
    };
    let cases = [
        (
            record(ChangeKind::Remove, image.clone(), None),
            SkipReason::Removed,
        ),
        (
            record(ChangeKind::Insert, None, None),
            SkipReason::NoNewImage,
        ),
        (
            record(ChangeKind::Modify, image.clone(), image.clone()),
            SkipReason::NothingApplied,
        ),
    ];
    for (record, reason) in cases {
        assert_eq!(
            orchestrator.handle(&record, base_time()).await,
            RecordOutcome::Skipped(reason)
        );
    }
    assert_eq!(generator.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_live_claim_blocks_and_an_expired_one_is_taken_over() {
    let records = records_for(&[&[("e1", "ann@example.com", 0)]]).await;
    let generator = CountingGenerator::default();
    let messages = EmbeddedMessageStore::new();
    let lease = Duration::from_secs(60);
    let orchestrator = Orchestrator::new(
        &generator,
        &messages,
        OrchestratorConfig {
            claim_lease: lease,
            ..OrchestratorConfig::default()
        },
    );
    let key = MessageKey {
        customer_email: "ann@example.com".into(),
        message_id: "v000000000001".into(),
    };
    // A crashed invocation (another record's delivery) claimed the message and never
    // recorded it.
    assert_eq!(
        messages
            .claim(&key, &Holder::new("crashed"), base_time(), lease)
            .await
            .expect("claim"),
        Claim::Acquired { draft: None }
    );

    let soon = base_time() + chrono::Duration::seconds(30);
    let outcome = orchestrator.handle(&records[0], soon).await;
    assert!(
        matches!(outcome, RecordOutcome::ClaimedElsewhere { .. }),
        "{outcome:?}"
    );
    assert!(outcome.needs_retry());

    let later = base_time() + chrono::Duration::seconds(61);
    assert_eq!(
        orchestrator.handle(&records[0], later).await.label(),
        "created"
    );
    assert_eq!(generator.calls.load(Ordering::SeqCst), 1);
}

/// The template, after a model call's worth of (paused, auto-advanced) time.
struct SlowGenerator {
    calls: std::sync::atomic::AtomicU64,
    takes: Duration,
}

impl MessageGenerator for SlowGenerator {
    async fn generate(&self, request: GenerationRequest<'_>) -> Result<Generated, GenerationError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.takes).await;
        TemplateGenerator.generate(request).await
    }
}

#[tokio::test(start_paused = true)]
async fn near_the_deadline_no_record_is_started_and_delivery_resumes_from_the_first_left() {
    let customers = ["a", "b", "c", "d", "e"].map(|name| format!("{name}@example.com"));
    let batch: Vec<(&str, &str, i64)> = customers
        .iter()
        .enumerate()
        .map(|(i, email)| (["e1", "e2", "e3", "e4", "e5"][i], email.as_str(), 0))
        .collect();
    let records = records_for(&[&batch]).await;
    assert_eq!(records.len(), 5);
    let generator = SlowGenerator {
        calls: Default::default(),
        takes: Duration::from_secs(10),
    };
    let messages = EmbeddedMessageStore::new();
    let orchestrator = Orchestrator::new(&generator, &messages, OrchestratorConfig::default());

    // 35 s left, 10 s kept free: records start at 0, 10 and 20 s; at 30 s the fourth would
    // end past the deadline.
    let deadline = Deadline::after(Duration::from_secs(35), Duration::from_secs(10));
    let batch = orchestrator
        .handle_batch_until(&records, base_time(), Some(deadline))
        .await;
    let labels: Vec<&str> = batch.outcomes.iter().map(RecordOutcome::label).collect();
    assert_eq!(
        labels,
        [
            "created",
            "created",
            "created",
            "not_attempted",
            "not_attempted"
        ]
    );
    assert_eq!(
        batch.resume_from.as_ref(),
        Some(&records[3].sequence_number)
    );
    assert_eq!(batch.counters.not_attempted, 2);
    assert_eq!(generator.calls.load(Ordering::SeqCst), 3);
    for email in &customers[3..] {
        assert!(messages.list(email).await.expect("list").is_empty());
    }

    // The mapping delivers again from there: the rest get their message, nobody a second.
    let retry = orchestrator.handle_batch(&records[3..], base_time()).await;
    assert_eq!(retry.resume_from, None);
    assert_eq!(generator.calls.load(Ordering::SeqCst), 5);
    for email in &customers {
        assert_eq!(
            messages.list(email).await.expect("list").len(),
            1,
            "{email}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_failure_before_the_deadline_is_still_the_record_to_resume_from() {
    let records = records_for(&[&[
        ("e1", "ann@example.com", 0),
        ("e2", "bob@example.com", 0),
        ("e3", "cid@example.com", 0),
    ]])
    .await;
    let generator = SlowGenerator {
        calls: Default::default(),
        takes: Duration::from_secs(10),
    };
    let messages = EmbeddedMessageStore::new();
    // Another invocation holds the first record's claim: that record must be retried.
    let key = MessageKey {
        customer_email: "ann@example.com".into(),
        message_id: "v000000000001".into(),
    };
    messages
        .claim(
            &key,
            &Holder::new("other"),
            base_time(),
            Duration::from_secs(300),
        )
        .await
        .expect("claim");
    let orchestrator = Orchestrator::new(&generator, &messages, OrchestratorConfig::default());
    let deadline = Deadline::after(Duration::from_secs(15), Duration::from_secs(10));
    let batch = orchestrator
        .handle_batch_until(&records, base_time(), Some(deadline))
        .await;
    let labels: Vec<&str> = batch.outcomes.iter().map(RecordOutcome::label).collect();
    assert_eq!(labels, ["claimed_elsewhere", "created", "not_attempted"]);
    assert_eq!(
        batch.resume_from.as_ref(),
        Some(&records[0].sequence_number)
    );
}

#[tokio::test]
async fn the_mapping_passes_over_a_record_failing_every_delivery_and_handles_those_behind_it() {
    let mut records = records_for(&[&[
        ("e1", "ann@example.com", 0),
        ("e2", "stuck@example.com", 1),
        ("e3", "bob@example.com", 2),
    ]])
    .await;
    // The failing record first, so that the others are behind it in the batch.
    records.sort_by_key(|record| !record.customer_email.starts_with("stuck"));
    assert_eq!(records.len(), 3);
    let generator = CountingGenerator::default();
    let messages = EmbeddedMessageStore::new();
    let orchestrator = Orchestrator::new(
        &generator,
        FailingFor {
            inner: &messages,
            poisoned: "stuck",
        },
        OrchestratorConfig::default(),
    );
    let mapping = StreamMapping::new(RecordsFeed::new(records), &orchestrator).with_settings(
        MappingSettings {
            backoff: Duration::ZERO,
            ..MappingSettings::default()
        },
    );
    let mut counters = StreamCounters::default();
    assert_eq!(mapping.consume(10, &mut counters).await.unwrap(), 3);
    // Each record counted once, by its last delivery: the others were written on the first
    // and found done on the one after the stuck record was passed over.
    assert_eq!(
        (counters.records, counters.already_created, counters.failed),
        (3, 2, 1),
        "{counters:?}"
    );
    assert_eq!(mapping.consume(10, &mut counters).await.unwrap(), 0);
    for customer in ["ann@example.com", "bob@example.com"] {
        assert_eq!(
            messages.list(customer).await.unwrap().len(),
            1,
            "{customer}"
        );
    }
}
