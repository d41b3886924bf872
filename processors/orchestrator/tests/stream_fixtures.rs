//! The orchestrator handler on the DynamoDB Streams fixtures, exactly as Lambda delivers
//! them (images taken from real `CustomerFeatures` items).
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use aws_lambda_events::event::dynamodb::Event;
use chrono::Utc;
use referral_aws::stream_record::change_record;
use referral_domain::orchestrator::{Orchestrator, OrchestratorConfig};
use referral_domain::ports::{ChangeKind, MessageStore};
use referral_domain::template::TemplateGenerator;
use referral_local::embedded::EmbeddedMessageStore;
use referral_orchestrator::OrchestratorHandler;

fn fixture(name: &str) -> Event {
    let path = format!("{}/../../events/lambda/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn every_fixture_record_decodes_into_a_change() {
    for (name, kind) in [
        ("dynamodb-stream-insert.json", ChangeKind::Insert),
        ("dynamodb-stream-modify.json", ChangeKind::Modify),
        ("dynamodb-stream-remove.json", ChangeKind::Remove),
    ] {
        let event = fixture(name);
        assert_eq!(event.records.len(), 1, "{name}");
        let change = change_record(&event.records[0]).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(change.kind, kind, "{name}");
        assert_eq!(change.customer_email, "jane.doe@example.com");
        match kind {
            ChangeKind::Insert => assert!(change.old_image.is_none() && change.new_image.is_some()),
            ChangeKind::Modify => {
                let (old, new) = (change.old_image.unwrap(), change.new_image.unwrap());
                assert!(new.events_applied > old.events_applied, "{name}");
                assert_eq!(new.version, old.version + 1);
            }
            ChangeKind::Remove => assert!(change.old_image.is_some() && change.new_image.is_none()),
        }
    }
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
        "dynamodb-stream-insert.json",
        "dynamodb-stream-modify.json",
        "dynamodb-stream-remove.json",
        // Redelivered: no second message.
        "dynamodb-stream-modify.json",
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
async fn an_undecodable_record_is_reported_by_its_sequence_number_and_holds_up_no_other() {
    let mut event = fixture("dynamodb-stream-modify.json");
    let mut broken = event.records[0].clone();
    broken.change.new_image.insert(
        "version".to_owned(),
        serde_dynamo::AttributeValue::S("not a number".into()),
    );
    broken.change.sequence_number = Some("42".to_owned());
    let good = fixture("dynamodb-stream-insert.json").records.remove(0);
    event.records = vec![broken, good];
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
    // The record after it, another customer's change, is not held up by it.
    assert_eq!(outcome.counters.created, 1);
}
