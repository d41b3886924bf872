//! The AWS envelopes in `events/lambda/` are in the exact shapes the Lambdas receive:
//! each deserializes with `aws_lambda_events` and survives a round trip.
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::path::PathBuf;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::sqs::SqsEvent;
use referral_domain::enricher::{Enricher, EnricherConfig, QueuedWebhook};
use referral_local::embedded::EmbeddedFeatureStore;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn fixture<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(name: &str) -> T {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../events/lambda")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let parsed: T = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let again: T = serde_json::from_value(serde_json::to_value(&parsed).expect("serialize"))
        .unwrap_or_else(|e| panic!("{name} does not round-trip: {e}"));
    assert_eq!(parsed, again, "{name} changed in a round trip");
    parsed
}

#[tokio::test]
async fn the_sqs_batch_holds_two_good_events_and_one_poison_message() {
    let event: SqsEvent = fixture("sqs-batch.json");
    assert_eq!(event.records.len(), 3);
    let batch: Vec<QueuedWebhook> = event
        .records
        .iter()
        .map(|record| QueuedWebhook {
            apply_stale: false,
            message_id: record.message_id.as_deref().expect("messageId"),
            body: record.body.as_deref().expect("body"),
        })
        .collect();
    let store = EmbeddedFeatureStore::new();
    let report = Enricher::new(&store, EnricherConfig::default())
        .process(&batch, chrono::Utc::now())
        .await;
    let labels: Vec<&str> = report.messages.iter().map(|m| m.outcome.label()).collect();
    assert_eq!(labels, ["applied", "applied", "rejected"]);
}

#[test]
fn the_stream_records_have_the_images_their_kind_implies() {
    for (name, kind, old, new) in [
        ("dynamodb-stream-insert.json", "INSERT", false, true),
        ("dynamodb-stream-modify.json", "MODIFY", true, true),
        ("dynamodb-stream-remove.json", "REMOVE", true, false),
    ] {
        let event: DynamoDbEvent = fixture(name);
        assert!(!event.records.is_empty(), "{name}");
        for record in &event.records {
            assert_eq!(record.event_name, kind, "{name}");
            assert_eq!(!record.change.old_image.is_empty(), old, "{name} old image");
            assert_eq!(!record.change.new_image.is_empty(), new, "{name} new image");
            assert!(
                record.change.keys.contains_key("customerEmail"),
                "{name} key"
            );
            assert!(
                !record
                    .change
                    .sequence_number
                    .as_deref()
                    .unwrap_or_default()
                    .is_empty()
            );
        }
    }
}

#[test]
fn the_http_api_requests_are_payload_v2_posts() {
    for (name, base64) in [
        ("apigw-http-v2-request.json", false),
        ("apigw-http-v2-request-base64.json", true),
    ] {
        let request: ApiGatewayV2httpRequest = fixture(name);
        assert_eq!(request.version.as_deref(), Some("2.0"), "{name}");
        assert_eq!(request.request_context.http.method, http_post(), "{name}");
        assert_eq!(request.is_base64_encoded, base64, "{name}");
        assert!(
            request.body.as_deref().is_some_and(|b| !b.is_empty()),
            "{name}"
        );
        assert!(request.headers.contains_key("x-signature"), "{name}");
    }
}

fn http_post() -> aws_lambda_events::http::Method {
    aws_lambda_events::http::Method::POST
}
