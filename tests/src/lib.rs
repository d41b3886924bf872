//! Harness shared by the integration tests: event builders and the contract suites that
//! every adapter of a port must pass, embedded and AWS alike; and the building blocks of the
//! enricher's capacity benchmark (corpus, capacity accounting, stream sizes, moto's recorder).
// This crate only ever runs inside tests, where a failed expectation must abort loudly.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

pub mod bench;
pub mod capacity;
pub mod contract;
pub mod corpus;
pub mod counting;
pub mod emulator;
pub mod faults;
pub mod forward;
pub mod item_bytes;
pub mod recorder;
pub mod sam;
pub mod stream_bytes;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, TimeZone, Utc};
use referral_domain::enricher::QueuedWebhook;
use referral_domain::event::{ServiceEvent, Webhook, parse_webhook_value};
use referral_domain::features::{AppliedMemory, CustomerFeatures, MemoryLimits, fold_events};
use serde_json::{Value, json};

/// A fixed instant tests count from, so results do not depend on the clock.
pub fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0)
        .single()
        .unwrap_or_default()
}

/// The enricher's clock for tests whose events span months after [`base_time`]: late
/// enough that none is refused as dated in the future, whatever today's date.
pub fn enricher_clock() -> DateTime<Utc> {
    base_time() + Duration::days(3 * 365)
}

/// A valid `service.completed` body; `minute` orders events of one customer.
pub fn event_body(event_id: &str, email: &str, minute: i64, score: Option<f64>) -> Value {
    let mut body = json!({
        "event_id": event_id,
        "event_type": "service.completed",
        "occurred_at": (base_time() + Duration::minutes(minute)).to_rfc3339(),
        "customer": {"email": email, "name": "Test Customer",
                     "address": {"city": "Austin", "state": "TX", "zip": "78701"}},
        "property_info": {"type": "single_family", "square_feet": 1800 + minute.unsigned_abs() % 90_000}
    });
    if let Some(score) = score {
        body["service"] = json!({"type": "pest_control", "satisfaction_score": score});
    }
    body
}

/// Parses a body the tests built, failing the test loudly if it is not a service event.
pub fn service_event(body: &Value) -> ServiceEvent {
    match parse_webhook_value(body) {
        Ok(Webhook::ServiceCompleted(event)) => *event,
        other => panic!("test event refused: {other:?}"),
    }
}

/// The SQS event of first deliveries of (message id, body) pairs, from the webhook queue.
pub fn sqs_batch(deliveries: &[(String, String)]) -> aws_lambda_events::event::sqs::SqsEvent {
    referral_aws_local::sqs_event::sqs_event(
        &referral_aws_local::sqs_event::first_deliveries(deliveries),
        "arn:aws:sqs:us-east-1:123456789012:referral-webhooks",
    )
}

/// A batch of owned `(message id, body)` pairs as the enricher takes it.
pub fn raw_batch(batch: &[(String, String)]) -> Vec<QueuedWebhook<'_>> {
    batch
        .iter()
        .map(|(id, body)| QueuedWebhook {
            message_id: id,
            body,
            trace: None,
        })
        .collect()
}

/// What each customer's item must be: the fold of their distinct events, in one go.
pub fn expected_features(
    events: &[ServiceEvent],
    limits: MemoryLimits,
) -> BTreeMap<String, CustomerFeatures> {
    let mut by_customer: BTreeMap<String, Vec<&ServiceEvent>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for event in events {
        if seen.insert(event.event_id.clone()) {
            by_customer
                .entry(event.customer.email.clone())
                .or_default()
                .push(event);
        }
    }
    by_customer
        .into_iter()
        .map(|(email, events)| {
            let item = fold_events(None, &events, limits)
                .into_next()
                .expect("applied");
            (email, item)
        })
        .collect()
}

/// What is order-independent in an item: everything but the version, the trigger (and its
/// trace), and
/// where the memory keeps each applied id (recent, pending or archived depends on the order
/// and the batching; that every applied id is somewhere is the fault suite's check).
pub fn comparable(mut item: CustomerFeatures) -> CustomerFeatures {
    item.version = 0;
    item.trigger_event_id = None;
    item.trigger = None;
    item.trace = None;
    item.memory = AppliedMemory::default();
    item
}
