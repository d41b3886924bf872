//! The orchestrator handler on the DynamoDB Streams fixtures, exactly as Lambda delivers
//! them: the generated ones (`referral events stream`: the enricher's writes of today's
//! item layout, NEW_IMAGE view) and the legacy ones (the first release's item layout, taken
//! from a NEW_AND_OLD_IMAGES stream), which must still decode.
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use aws_lambda_events::event::dynamodb::Event;
use chrono::Utc;
use referral_aws::stream_record::change_record;
use referral_domain::orchestrator::{Orchestrator, OrchestratorConfig};
use referral_domain::ports::{ChangeKind, ChangeRecord, MessageStore};
use referral_domain::template::TemplateGenerator;
use referral_local::embedded::EmbeddedMessageStore;
use referral_orchestrator::OrchestratorHandler;

const GENERATED: &str = "dynamodb-stream-insert-modify.json";
const LEGACY_MODIFY: &str = "legacy-dynamodb-stream-modify.json";
const LEGACY_REMOVE: &str = "legacy-dynamodb-stream-remove.json";

fn fixture(name: &str) -> Event {
    let path = format!("{}/../../events/lambda/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn changes(name: &str) -> Vec<ChangeRecord> {
    fixture(name)
        .records
        .iter()
        .map(|record| change_record(record).unwrap_or_else(|e| panic!("{name}: {e}")))
        .collect()
}

#[test]
fn every_fixture_record_decodes_into_a_change() {
    // Generated: an INSERT, then a MODIFY of the same item, new images only.
    let generated = changes(GENERATED);
    let kinds: Vec<ChangeKind> = generated.iter().map(|change| change.kind).collect();
    assert_eq!(kinds, [ChangeKind::Insert, ChangeKind::Modify]);
    let images: Vec<_> = generated
        .iter()
        .map(|change| {
            assert_eq!(change.customer_email, "jane.doe@example.com");
            assert!(change.old_image.is_none(), "NEW_IMAGE view: no old image");
            change.new_image.clone().unwrap()
        })
        .collect();
    assert_eq!(images[1].version, images[0].version + 1);
    assert!(images[1].events_applied > images[0].events_applied);
    assert!(images.iter().all(|image| image.trigger_event_id.is_some()));

    // Legacy: both images, in the first release's layout.
    let [modify] = changes(LEGACY_MODIFY).try_into().unwrap();
    assert_eq!(modify.kind, ChangeKind::Modify);
    assert_eq!(modify.customer_email, "jane.doe@example.com");
    let (old, new) = (modify.old_image.unwrap(), modify.new_image.unwrap());
    assert!(new.events_applied > old.events_applied, "{LEGACY_MODIFY}");
    assert_eq!(new.version, old.version + 1);
    let [remove] = changes(LEGACY_REMOVE).try_into().unwrap();
    assert_eq!(remove.kind, ChangeKind::Remove);
    assert!(remove.old_image.is_some() && remove.new_image.is_none());
}

#[tokio::test]
async fn inserts_and_modifies_make_one_message_each_and_removes_none() {
    let messages = EmbeddedMessageStore::new();
    let handler = OrchestratorHandler::new(Orchestrator::new(
        TemplateGenerator,
        &messages,
        OrchestratorConfig::default(),
    ));
    let mut created = 0;
    for name in [
        GENERATED,
        LEGACY_REMOVE,
        // Redelivered: no second message.
        GENERATED,
    ] {
        let outcome = handler.handle(&fixture(name), Utc::now()).await;
        assert!(outcome.response.batch_item_failures.is_empty(), "{name}");
        created += outcome.counters.created;
    }
    assert_eq!(created, 2);
    assert_eq!(
        messages.list("jane.doe@example.com").await.unwrap().len(),
        2
    );
}

#[tokio::test]
async fn a_legacy_item_still_earns_its_message() {
    let messages = EmbeddedMessageStore::new();
    let handler = OrchestratorHandler::new(Orchestrator::new(
        TemplateGenerator,
        &messages,
        OrchestratorConfig::default(),
    ));
    let outcome = handler.handle(&fixture(LEGACY_MODIFY), Utc::now()).await;
    assert!(outcome.response.batch_item_failures.is_empty());
    assert_eq!(outcome.counters.created, 1);
}

/// A batch of a record whose image does not decode (sequence number 42), then a good one.
fn undecodable_then_good() -> Event {
    let mut event = fixture(GENERATED);
    let mut broken = event.records[1].clone();
    broken.change.new_image.insert(
        "version".to_owned(),
        serde_dynamo::AttributeValue::S("not a number".into()),
    );
    broken.change.sequence_number = Some("42".to_owned());
    let good = fixture(GENERATED).records.remove(0);
    event.records = vec![broken, good];
    event
}

#[tokio::test]
async fn an_undecodable_record_is_reported_by_its_sequence_number_and_holds_up_no_other() {
    let event = undecodable_then_good();
    let handler = OrchestratorHandler::new(Orchestrator::new(
        TemplateGenerator,
        EmbeddedMessageStore::new(),
        OrchestratorConfig::default(),
    ));
    let outcome = handler.handle(&event, Utc::now()).await;
    let failures: Vec<_> = outcome
        .response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failures, [Some("42".to_owned())]);
    assert_eq!(outcome.counters.undecodable, 1);
    // The record after it is not held up by it.
    assert_eq!(outcome.counters.created, 1);
}

/// A record that cannot be decoded is set aside on the failure destination and the batch
/// goes on, instead of holding the shard for the mapping's retries.
#[tokio::test]
async fn an_undecodable_record_is_quarantined_and_not_reported_for_retry() {
    let event = undecodable_then_good();
    let failure_destination = referral_local::embedded::EmbeddedQueue::new();
    let handler = OrchestratorHandler::new(Orchestrator::new(
        TemplateGenerator,
        EmbeddedMessageStore::new(),
        OrchestratorConfig::default(),
    ))
    .with_quarantine(&failure_destination);
    let outcome = handler.handle(&event, Utc::now()).await;
    assert!(
        outcome.response.batch_item_failures.is_empty(),
        "{:?}",
        outcome.response
    );
    assert_eq!(outcome.counters.undecodable, 1);
    assert_eq!(outcome.counters.quarantined, 1);
    assert_eq!(outcome.counters.created, 1);
    let [set_aside] = failure_destination.peek_all().try_into().unwrap();
    assert!(set_aside.attributes.is_empty());
    let body: serde_json::Value = serde_json::from_str(&set_aside.body).unwrap();
    assert_eq!(body["DDBStreamBatchInfo"]["startSequenceNumber"], "42");
    let quarantine: referral_orchestrator::quarantine::Quarantine =
        serde_json::from_value(body["quarantine"].clone()).unwrap();
    assert_eq!(
        quarantine.customer_email.as_deref(),
        Some("jane.doe@example.com")
    );
    assert!(
        quarantine.reason.contains("NewImage"),
        "{}",
        quarantine.reason
    );
}
