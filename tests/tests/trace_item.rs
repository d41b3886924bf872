//! The trace a feature item keeps (the trigger event's, for the stream record to take to the
//! orchestrator): what it adds to the item and to its stream record, that items written
//! without it still read, and that a trace that does not read never makes its item
//! undecodable.
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use referral_domain::enricher::{Enricher, EnricherConfig, QueuedWebhook};
use referral_domain::features::CustomerFeatures;
use referral_domain::ports::FeatureStore;
use referral_domain::trace::{STORED_BYTES, TraceContext};
use referral_local::embedded::{EmbeddedArchive, EmbeddedFeatureStore};
use referral_tests::item_bytes::stored_bytes;
use referral_tests::stream_bytes::record_bytes;
use referral_tests::{enricher_clock, event_body};
use serde_json::json;

const EMAIL: &str = "traced@example.com";
/// The item's attribute: its name counts towards the item's size, as its value does.
const ATTRIBUTE: &str = "trace";

fn trace(n: u8) -> TraceContext {
    TraceContext::start([n; 16], [n; 8]).unwrap()
}

/// The customer's item after the enricher applied `events` (`(event id, minute, trace)`), one
/// batch of them all.
async fn item_after(events: &[(&str, i64, Option<TraceContext>)]) -> CustomerFeatures {
    let store = EmbeddedFeatureStore::new();
    let archive = EmbeddedArchive::new();
    let enricher = Enricher::new(&store, &archive, EnricherConfig::default());
    let bodies: Vec<String> = events
        .iter()
        .map(|(id, minute, _)| event_body(id, EMAIL, *minute, Some(4.5)).to_string())
        .collect();
    let batch: Vec<QueuedWebhook> = events
        .iter()
        .zip(&bodies)
        .map(|((id, _, trace), body)| QueuedWebhook {
            message_id: id,
            body,
            trace: *trace,
        })
        .collect();
    let report = enricher.process(&batch, enricher_clock()).await;
    assert_eq!(report.counters.applied, events.len() as u64, "{report:?}");
    store.load(EMAIL).await.unwrap().unwrap()
}

/// The item as a stream record's `NewImage` in the DynamoDB Streams JSON wire form (what the
/// orchestrator's event carries).
fn new_image(item: &CustomerFeatures) -> serde_json::Value {
    let stored: serde_dynamo::Item = serde_dynamo::to_item(item).unwrap();
    serde_json::to_value(&stored).unwrap()
}

#[tokio::test]
async fn a_trace_adds_30_bytes_to_the_item_and_to_its_stream_record() {
    let traced = item_after(&[("evt-1", 1, Some(trace(1)))]).await;
    assert_eq!(traced.trace, Some(trace(1)));
    let mut untraced = traced.clone();
    untraced.trace = None;

    // DynamoDB's sizing: the attribute's name and its 25 bytes. What every write pays for.
    let added = stored_bytes(&traced).unwrap() - stored_bytes(&untraced).unwrap();
    assert_eq!(added, (ATTRIBUTE.len() + STORED_BYTES) as u64);
    assert_eq!(added, 30);

    // The stream record's image is the item: the same 30 bytes by the same rules.
    let record = |item: &CustomerFeatures| json!({ "dynamodb": { "NewImage": new_image(item) } });
    let stream_added = record_bytes(&record(&traced)).unwrap().total()
        - record_bytes(&record(&untraced)).unwrap().total();
    assert_eq!(stream_added, 30);

    // On the wire (the JSON a stream record reaches the orchestrator's Lambda in), binary
    // travels as base64: `,"trace":{"B":"<36 characters>"}`.
    let wire = |item: &CustomerFeatures| new_image(item).to_string().len();
    assert_eq!(wire(&traced) - wire(&untraced), 53);
}

#[tokio::test]
async fn one_write_of_several_events_keeps_its_trigger_event_s_trace() {
    // Delivered out of order: the latest by occurred_at (the trigger) came first.
    let item = item_after(&[
        ("evt-late", 30, Some(trace(3))),
        ("evt-early", 10, Some(trace(1))),
        ("evt-untraced", 20, None),
    ])
    .await;
    assert_eq!(item.trigger_event_id.as_deref(), Some("evt-late"));
    assert_eq!(item.trace, Some(trace(3)));

    // A trigger that came without a trace leaves none, not an older event's.
    let item = item_after(&[("evt-a", 1, Some(trace(1))), ("evt-b", 2, None)]).await;
    assert_eq!(item.trigger_event_id.as_deref(), Some("evt-b"));
    assert_eq!(item.trace, None);
}

#[tokio::test]
async fn items_without_a_trace_read_and_a_trace_that_does_not_read_is_dropped() {
    let traced = item_after(&[("evt-1", 1, Some(trace(7)))]).await;
    let mut stored: HashMap<String, AttributeValue> =
        serde_dynamo::aws_sdk_dynamodb_1::to_item(&traced).unwrap();
    let read = |stored: &HashMap<String, AttributeValue>| -> CustomerFeatures {
        serde_dynamo::aws_sdk_dynamodb_1::from_item(stored.clone()).unwrap()
    };
    assert_eq!(read(&stored), traced, "read back as written");

    // Written before traces were kept: no attribute.
    stored.remove(ATTRIBUTE).unwrap();
    let old = read(&stored);
    assert_eq!(old.trace, None);
    assert_eq!(old.version, traced.version);

    // Bytes that are no trace: the item still reads (its customer is not quarantined).
    for garbled in [vec![1, 2, 3], vec![0; STORED_BYTES]] {
        stored.insert(
            ATTRIBUTE.to_owned(),
            AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(garbled)),
        );
        assert_eq!(read(&stored).trace, None);
    }
}
