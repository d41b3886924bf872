//! `referral events`: the committed fixtures of `events/lambda/` are exactly what
//! `events/lambda/generate.sh` writes; every generated event round-trips through
//! `aws_lambda_events`; and the three kinds chain as the pipeline does: the ingest handler
//! queues what `apigw` requests carry as `sqs` says, and the enricher's items after the `sqs`
//! batches are the last images of `stream`.
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::dynamodb::Event as StreamEvent;
use aws_lambda_events::sqs::SqsEvent;
use referral_domain::enricher::{Enricher, EnricherConfig, QueuedWebhook};
use referral_domain::features::CustomerFeatures;
use referral_domain::ports::FeatureStore;
use referral_domain::trace::TraceContext;
use referral_ingest::{Config, Deps, SignatureError, WebhookSecret, handle, verify};
use referral_local::embedded::{EmbeddedArchive, EmbeddedFeatureStore, EmbeddedQueue};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

const SECRET: &str = "whsec_events_test_secret_0123";
const JANE: &str = "events/webhooks/valid/01-jane-doe-first-service.json";

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `referral events ARGS` in the workspace: its stdout, one JSON value per event.
fn events(args: &[&str]) -> Vec<Value> {
    let output = Command::new(env!("CARGO_BIN_EXE_referral"))
        .current_dir(workspace())
        .arg("events")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "referral events {args:?}: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let values: Vec<Value> = serde_json::Deserializer::from_str(&stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    // One event is an indented document, several are JSONL.
    if values.len() == 1 {
        assert!(stdout.starts_with("{\n"), "{stdout}");
    } else {
        assert_eq!(stdout.lines().count(), values.len());
    }
    values
}

/// Parses `value` as `T` and checks that nothing is lost in a round trip.
fn round_trip<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(value: &Value) -> T {
    let parsed: T =
        serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{e}: {value}"));
    let again: T = serde_json::from_value(serde_json::to_value(&parsed).unwrap()).unwrap();
    assert_eq!(parsed, again);
    parsed
}

#[test]
fn the_committed_fixtures_are_what_generate_sh_writes() {
    let scratch = std::env::temp_dir().join(format!("referral-events-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let status = Command::new("bash")
        .current_dir(workspace())
        .arg("events/lambda/generate.sh")
        .arg(&scratch)
        .env("REFERRAL", env!("CARGO_BIN_EXE_referral"))
        .status()
        .unwrap();
    assert!(status.success(), "events/lambda/generate.sh failed");
    let regenerate = "regenerate them with `events/lambda/generate.sh` and commit the result";
    let committed = workspace().join("events/lambda");
    let mut generated: Vec<PathBuf> = std::fs::read_dir(&scratch)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    generated.sort();
    assert!(generated.len() >= 4, "{generated:?}");
    for path in &generated {
        let name = path.file_name().unwrap();
        let fresh = std::fs::read(path).unwrap();
        let kept = std::fs::read(committed.join(name)).unwrap_or_default();
        assert!(
            fresh == kept,
            "events/lambda/{} is not what `referral events` generates now: {regenerate}",
            name.to_string_lossy()
        );
    }
    // Every committed fixture is generated, except the legacy ones kept on purpose.
    for entry in std::fs::read_dir(&committed).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") && !name.starts_with("legacy-") {
            assert!(
                scratch.join(&name).is_file(),
                "events/lambda/{name} is not written by events/lambda/generate.sh: generate it \
                 there or name it legacy-*"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

#[test]
fn requests_are_signed_like_a_sender_signs_them_or_deliberately_not() {
    let body = |request: &ApiGatewayV2httpRequest| request.body.clone().unwrap();
    let header = |request: &ApiGatewayV2httpRequest| {
        request
            .headers
            .get("x-signature")
            .map(|value| value.to_str().unwrap().to_owned())
    };
    let secrets = [WebhookSecret::new(SECRET.as_bytes()).unwrap()];
    let window = Duration::from_secs(300);
    // 2026-01-12T15:04:05Z, plus the 2 s a sender takes by default.
    let sent = 1_768_230_247;

    let signed: ApiGatewayV2httpRequest =
        round_trip(&events(&["apigw", JANE, "--secret", SECRET])[0]);
    assert_eq!(signed.request_context.time_epoch / 1000, sent);
    let verified = verify(
        &secrets,
        header(&signed).as_deref(),
        body(&signed).as_bytes(),
        sent,
        window,
    );
    assert_eq!(verified.map(|v| v.timestamp), Ok(sent));
    assert!(!body(&signed).contains('\n'), "bodies are sent compact");

    let wrong: ApiGatewayV2httpRequest =
        round_trip(&events(&["apigw", JANE, "--secret", SECRET, "--mis-signed"])[0]);
    assert_eq!(
        verify(
            &secrets,
            header(&wrong).as_deref(),
            body(&wrong).as_bytes(),
            sent,
            window
        ),
        Err(SignatureError::Mismatch)
    );
    let unsigned: ApiGatewayV2httpRequest = round_trip(&events(&["apigw", JANE, "--unsigned"])[0]);
    assert_eq!(header(&unsigned), None);

    let now = chrono::Utc::now().timestamp();
    let fresh: ApiGatewayV2httpRequest =
        round_trip(&events(&["apigw", JANE, "--secret", SECRET, "--timestamp", "now"])[0]);
    let verified = verify(
        &secrets,
        header(&fresh).as_deref(),
        body(&fresh).as_bytes(),
        now,
        window,
    );
    assert!(verified.is_ok(), "{verified:?}");

    // A directory: one request per webhook, JSONL.
    let all = events(&["apigw", "events/webhooks/valid", "--base64"]);
    assert!(all.len() > 30, "{}", all.len());
    for request in &all {
        let request: ApiGatewayV2httpRequest = round_trip(request);
        assert!(request.is_base64_encoded);
    }
}

/// The ingest handler on `apigw`'s requests queues exactly what `sqs`'s records carry.
#[tokio::test]
async fn sqs_records_carry_what_ingest_queues() {
    let inputs = ["events/webhooks/valid", "--secret", SECRET];
    let requests = events(&[&["apigw"][..], &inputs].concat());
    let batches = events(&["sqs", "events/webhooks/valid", "--batch-size", "4"]);
    let records: Vec<_> = batches
        .iter()
        .flat_map(|batch| {
            let batch: SqsEvent = round_trip(batch);
            assert!((1..=4).contains(&batch.records.len()));
            batch.records
        })
        .collect();
    assert_eq!(records.len(), requests.len());

    let deps = Deps {
        config: Config {
            secrets: vec![WebhookSecret::new(SECRET.as_bytes()).unwrap()],
            queue_url: "https://sqs.us-east-1.amazonaws.com/123456789012/referral-webhooks"
                .to_owned(),
            signature_tolerance: Duration::from_secs(300),
        },
        queue: EmbeddedQueue::new(),
        replays: Default::default(),
    };
    for request in &requests {
        let request: ApiGatewayV2httpRequest = round_trip(request);
        let sent = request.request_context.time_epoch / 1000;
        let now = chrono::DateTime::from_timestamp(sent, 0).unwrap();
        assert_eq!(handle(&deps, request, now).await.status_code, 202);
    }
    let queued = deps.queue.peek_all();
    assert_eq!(queued.len(), records.len());
    for (message, record) in queued.iter().zip(&records) {
        assert_eq!(record.body.as_deref(), Some(message.body.as_str()));
        let attributes: BTreeMap<&str, &str> = record
            .message_attributes
            .iter()
            .map(|(name, value)| (name.as_str(), value.string_value.as_deref().unwrap()))
            .collect();
        let mut expected: BTreeMap<&str, &str> = message
            .attributes
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        // All but the trace ingest started at random: `events` output is reproducible.
        let trace = expected
            .remove("traceparent")
            .expect("ingest queues a traceparent");
        assert!(TraceContext::parse(trace).is_ok(), "{trace}");
        assert_eq!(attributes, expected);
        assert_eq!(
            record.event_source_arn.as_deref(),
            Some("arn:aws:sqs:us-east-1:123456789012:referral-webhooks")
        );
    }
    let ids: std::collections::BTreeSet<_> = records.iter().map(|r| r.message_id.clone()).collect();
    assert_eq!(ids.len(), records.len(), "message ids are unique");
}

/// The enricher on `sqs`'s batches leaves each customer's item as `stream`'s last image of
/// that customer, and writes once per record.
#[tokio::test]
async fn stream_records_are_the_enrichers_writes() {
    let paths = ["events/webhooks/valid", "events/webhooks/invalid"];
    let batches = events(&[&["sqs"][..], &paths, &["--batch-size", "5"]].concat());
    let stream = events(
        &[
            &["stream"][..],
            &paths,
            &["--batch-size", "5", "--records-per-event", "7"],
        ]
        .concat(),
    );

    let store = EmbeddedFeatureStore::new();
    let enricher = Enricher::new(&store, EmbeddedArchive::new(), EnricherConfig::default());
    let mut writes = 0;
    for batch in &batches {
        let batch: SqsEvent = round_trip(batch);
        let messages: Vec<QueuedWebhook> = batch
            .records
            .iter()
            .map(|record| QueuedWebhook {
                message_id: record.message_id.as_deref().unwrap(),
                body: record.body.as_deref().unwrap(),
                trace: None,
            })
            .collect();
        writes += enricher
            .process(&messages, chrono::Utc::now())
            .await
            .counters
            .store_writes;
    }

    let mut last: BTreeMap<String, CustomerFeatures> = BTreeMap::new();
    let mut sequence_numbers = Vec::new();
    let mut records = 0;
    for event in &stream {
        let raw = event["Records"].as_array().unwrap();
        assert!((1..=7).contains(&raw.len()));
        let parsed: StreamEvent = round_trip(event);
        for (record, raw) in parsed.records.iter().zip(raw) {
            records += 1;
            let change = &record.change;
            assert_eq!(
                change.stream_view_type,
                Some(aws_lambda_events::dynamodb::StreamViewType::NewImage)
            );
            assert!(change.old_image.is_empty());
            let size = referral_tests::stream_bytes::record_bytes(raw)
                .unwrap()
                .total();
            assert_eq!(
                change.size_bytes, size as i64,
                "SizeBytes by DynamoDB's sizing rules"
            );
            let image: CustomerFeatures =
                serde_dynamo::from_item(change.new_image.clone()).unwrap();
            let known = last.contains_key(&image.customer_email);
            assert_eq!(record.event_name, if known { "MODIFY" } else { "INSERT" });
            sequence_numbers.push(change.sequence_number.clone().unwrap());
            last.insert(image.customer_email.clone(), image);
        }
    }
    assert_eq!(records, writes, "one record per write");
    let numeric: Vec<u128> = sequence_numbers
        .iter()
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(
        numeric.windows(2).all(|pair| pair[0] < pair[1]),
        "{sequence_numbers:?}"
    );
    assert!(last.len() >= 10, "{}", last.len());
    for (email, image) in &last {
        let stored = store.load(email).await.unwrap().unwrap();
        assert_eq!(&stored, image, "{email}");
    }
}

#[test]
fn output_goes_to_a_file_and_the_same_inputs_give_the_same_bytes() {
    let scratch = std::env::temp_dir().join(format!("referral-events-out-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let run = |name: &str| -> Vec<u8> {
        let out = scratch.join(name);
        let status = Command::new(env!("CARGO_BIN_EXE_referral"))
            .current_dir(workspace())
            .args(["events", "stream", "events/webhooks/valid", "--out"])
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::read(out).unwrap()
    };
    assert_eq!(run("a.jsonl"), run("b.jsonl"));
    let _ = std::fs::remove_dir_all(&scratch);

    // Nothing to write is an error that says why.
    let output = Command::new(env!("CARGO_BIN_EXE_referral"))
        .current_dir(workspace())
        .args(["events", "stream", "events/webhooks/invalid"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no stream record"));
}
