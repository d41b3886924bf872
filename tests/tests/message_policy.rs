//! The message policy in the orchestrator core, on embedded adapters: one outcome per change
//! (a message, or a suppression recorded under the message's key), redeliveries that find
//! it, a customer's changes decided in order whatever fails, and the day's model budget.
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use referral_domain::enricher::{Enricher, EnricherConfig};
use referral_domain::orchestrator::policy::{BUDGET_REASON, parse_cooldown, parse_score};
use referral_domain::orchestrator::{
    MessagePolicy, Orchestrator, OrchestratorConfig, RecordOutcome, SuppressionReason,
};
use referral_domain::ports::{
    ChangeFeed, ChangeRecord, Claim, Decision, Holder, MessageKey, MessageStore,
};
use referral_local::embedded::{EmbeddedArchive, EmbeddedFeatureStore, EmbeddedMessageStore};
use referral_tests::counting::CountingGenerator;
use referral_tests::{base_time, event_body, raw_batch};

const DAY: i64 = 24 * 60;

/// The change records of `events` (id, e-mail, minute, score), one enricher batch each.
async fn records(events: &[(&str, &str, i64, Option<f64>)]) -> Vec<ChangeRecord> {
    let store = EmbeddedFeatureStore::new();
    let enricher = Enricher::new(&store, EmbeddedArchive::new(), EnricherConfig::default());
    for (id, email, minute, score) in events {
        let body = event_body(id, email, *minute, *score).to_string();
        let batch = [((*id).to_owned(), body)];
        // Processed long after: no event is refused as dated ahead of the clock.
        let now = base_time() + chrono::Duration::days(3650);
        enricher.process(&raw_batch(&batch), now).await;
    }
    store.poll(10_000).await.expect("embedded feed")
}

fn config(policy: MessagePolicy) -> OrchestratorConfig {
    OrchestratorConfig {
        policy,
        ..OrchestratorConfig::default()
    }
}

#[tokio::test]
async fn a_suppressed_change_is_recorded_under_its_key_once_and_never_reaches_the_model() {
    let records = records(&[
        ("e1", "ann@example.com", 0, Some(5.0)),
        ("e2", "ann@example.com", 1, Some(1.0)),
        ("e3", "ann@example.com", 2, Some(1.0)),
    ])
    .await;
    let generator = CountingGenerator::default();
    let messages = EmbeddedMessageStore::new();
    let policy = MessagePolicy {
        min_satisfaction_avg: Some(parse_score("3.5").unwrap()),
        min_trigger_score: Some(parse_score("1").unwrap()),
        ..MessagePolicy::default()
    };
    let orchestrator = Orchestrator::new(&generator, &messages, config(policy));
    let first = orchestrator.handle_batch(&records, base_time()).await;
    let labels: Vec<&str> = first.outcomes.iter().map(RecordOutcome::label).collect();
    assert_eq!(labels, ["created", "suppressed", "suppressed"]);
    // Averages 5, 3, 2.33: the floor on the average speaks first.
    assert_eq!(
        first.outcomes[1],
        RecordOutcome::Suppressed(SuppressionReason::Satisfaction)
    );
    assert_eq!(first.counters.suppressed_satisfaction, 2);
    assert_eq!(generator.calls.load(Ordering::SeqCst), 1);

    let again = orchestrator.handle_batch(&records, base_time()).await;
    assert!(
        again
            .outcomes
            .iter()
            .all(|outcome| *outcome == RecordOutcome::AlreadyCreated),
        "{:?}",
        again.outcomes
    );
    assert_eq!(generator.calls.load(Ordering::SeqCst), 1);
    let decisions = messages.decisions("ann@example.com").await.unwrap();
    let shape: Vec<(u64, Option<&str>)> = decisions
        .iter()
        .map(|decision| match decision {
            Decision::Message(message) => (message.features_version, None),
            Decision::Suppressed(suppression) => (
                suppression.features_version,
                Some(suppression.reason.as_str()),
            ),
        })
        .collect();
    assert_eq!(
        shape,
        [
            (1, None),
            (2, Some("satisfaction")),
            (3, Some("satisfaction"))
        ]
    );
    let Decision::Suppressed(suppression) = &decisions[1] else {
        panic!("a suppression")
    };
    assert_eq!(suppression.message_id, "v000000000002");
    assert_eq!(suppression.trigger_event_id.as_deref(), Some("e2"));
}

#[tokio::test]
async fn with_a_cooldown_a_customers_later_records_wait_for_one_that_must_be_retried() {
    // Ann: day 0 and day 8, both due a message; Bob: day 0.
    let records = records(&[
        ("a1", "ann@example.com", 0, Some(5.0)),
        ("a2", "ann@example.com", 8 * DAY, Some(5.0)),
        ("b1", "bob@example.com", 0, Some(5.0)),
    ])
    .await;
    let generator = CountingGenerator::default();
    let messages = EmbeddedMessageStore::new();
    let lease = Duration::from_secs(60);
    let policy = MessagePolicy {
        cooldown: Some(parse_cooldown("7d").unwrap()),
        ..MessagePolicy::default()
    };
    let orchestrator = Orchestrator::new(
        &generator,
        &messages,
        OrchestratorConfig {
            claim_lease: lease,
            policy,
            ..OrchestratorConfig::default()
        },
    );
    // Another invocation holds Ann's first change.
    let key = MessageKey {
        customer_email: "ann@example.com".into(),
        message_id: "v000000000001".into(),
    };
    let elsewhere = Holder::new("elsewhere");
    assert_eq!(
        messages
            .claim(&key, &elsewhere, base_time(), lease)
            .await
            .unwrap(),
        Claim::Acquired { draft: None }
    );
    let batch = orchestrator.handle_batch(&records, base_time()).await;
    let labels: Vec<&str> = batch.outcomes.iter().map(RecordOutcome::label).collect();
    assert_eq!(labels, ["claimed_elsewhere", "deferred", "created"]);
    assert_eq!(batch.resume_from, Some(records[0].sequence_number.clone()));
    assert_eq!(batch.counters.deferred, 1);

    // Delivered again once the claim has lapsed: in order, as if nothing had failed.
    let later = base_time() + chrono::Duration::seconds(61);
    let batch = orchestrator.handle_batch(&records[..2], later).await;
    let labels: Vec<&str> = batch.outcomes.iter().map(RecordOutcome::label).collect();
    assert_eq!(labels, ["created", "created"]);

    // Without a cooldown nothing depends on order: nothing waits (today's behaviour).
    let messages = EmbeddedMessageStore::new();
    let plain = Orchestrator::new(&generator, &messages, OrchestratorConfig::default());
    messages
        .claim(&key, &elsewhere, base_time(), lease)
        .await
        .unwrap();
    let batch = plain.handle_batch(&records, base_time()).await;
    let labels: Vec<&str> = batch.outcomes.iter().map(RecordOutcome::label).collect();
    assert_eq!(labels, ["claimed_elsewhere", "created", "created"]);
}

#[tokio::test]
async fn past_the_days_budget_the_template_writes_and_the_message_records_budget() {
    let events: Vec<(String, String)> = (0..5)
        .map(|i| (format!("e{i}"), format!("c{i}@example.com")))
        .collect();
    let events: Vec<(&str, &str, i64, Option<f64>)> = events
        .iter()
        .map(|(id, email)| (id.as_str(), email.as_str(), 0, Some(4.0)))
        .collect();
    let records = records(&events).await;
    let generator = CountingGenerator::default();
    let messages = EmbeddedMessageStore::new();
    let policy = MessagePolicy {
        daily_model_budget: Some(2),
        ..MessagePolicy::default()
    };
    let orchestrator = Orchestrator::new(&generator, &messages, config(policy));
    let batch = orchestrator.handle_batch(&records, base_time()).await;
    assert_eq!(batch.counters.created, 5);
    assert_eq!(batch.counters.budget_exhausted, 3);
    assert_eq!(generator.calls.load(Ordering::SeqCst), 2);
    let reasons: Vec<Option<String>> = messages
        .snapshot()
        .into_iter()
        .filter_map(Decision::into_message)
        .map(|message| message.fallback_reason)
        .collect();
    let budget = Some(BUDGET_REASON.to_owned());
    assert_eq!(
        reasons,
        [None, None, budget.clone(), budget.clone(), budget]
    );
    // A redelivery finds its decision before the budget: nothing spent, nothing called.
    orchestrator.handle_batch(&records, base_time()).await;
    assert_eq!(generator.calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        messages
            .model_calls(base_time().date_naive())
            .await
            .unwrap(),
        2
    );
}
