//! `referral customers forget` against moto's server: after a run, the address is in no
//! table and no queue in any case, the marker holds none of it, a redelivered old event is
//! dropped and a new one starts a fresh customer after the marker, with a message. The eraser
//! Lambda, under `referral invoke`, does the same by API.
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use referral_aws::dynamo::{DynamoEventArchive, DynamoFeatureStore, Tables};
use referral_aws::erasure::Eraser;
use referral_aws::sqs::SqsQueue;
use referral_domain::enricher::{Enricher, EnricherConfig};
use referral_domain::ports::{ErasureLog, FeatureStore};
use referral_domain::redact::{customer_ref_with, erasure_hash};
use referral_tests::emulator::{endpoint, sdk_config, unique};
use referral_tests::raw_batch;
use serde_json::{Value, json};

mod common;
use common::lambda_binaries;
use lambda_binaries::{lambda_binary, output_with_stdin};

const JANE: &str = "jane.doe@example.com";

struct Names {
    features: String,
    archive: String,
    messages: String,
    queue: String,
    dlq: String,
    stream_failures: String,
}

impl Names {
    fn flags(&self, url: &str) -> Vec<String> {
        [
            ("--features-table", &self.features),
            ("--archive-table", &self.archive),
            ("--messages-table", &self.messages),
            ("--queue", &self.queue),
            ("--dlq", &self.dlq),
            ("--stream-failures", &self.stream_failures),
            ("--endpoint-url", &url.to_owned()),
        ]
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_owned(), value.clone()])
        .collect()
    }
}

/// `referral ARGS` with the resources' flags, `stdin` fed to it; unkeyed customer refs.
fn referral_output(args: &[&str], names: &Names, url: &str, stdin: &[u8]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_referral"));
    command
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .args(args)
        .args(names.flags(url))
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("CUSTOMER_REF_KEY")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    output_with_stdin(command, stdin)
}

fn referral(args: &[&str], names: &Names, url: &str) -> Value {
    let output = referral_output(args, names, url, b"");
    assert!(
        output.status.success(),
        "referral {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        args[0] != "customers" || !stdout.to_lowercase().contains(JANE),
        "the output names the address: {stdout}"
    );
    // `run --json` prints one document; `customers forget --json` one line per customer.
    serde_json::from_str(&stdout)
        .or_else(|_| serde_json::from_str(stdout.lines().last().unwrap_or("null")))
        .expect("a JSON document")
}

fn write_event(dir: &Path, name: &str, event: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, event.to_string()).unwrap();
    path.display().to_string()
}

fn jane_event(id: &str, occurred_at: &str) -> Value {
    json!({
        "event_id": id,
        "event_type": "service.completed",
        "occurred_at": occurred_at,
        "customer": {"email": "JANE.DOE@example.COM", "name": "Jane Doe",
                     "address": {"city": "Austin", "state": "TX", "zip": "78701"}},
        "service": {"type": "pest_control", "satisfaction_score": 5.0},
        "property_info": {"type": "single_family", "square_feet": 2400}
    })
}

/// Every table's items and every queue's bodies, as one lower-cased text.
async fn everything(names: &Names) -> String {
    let config = sdk_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let mut text = String::new();
    for table in [&names.features, &names.archive, &names.messages] {
        let output = dynamo.scan().table_name(table).send().await.unwrap();
        text.push_str(&format!("{:?}", output.items()));
    }
    for queue in [&names.queue, &names.dlq, &names.stream_failures] {
        let url = sqs
            .get_queue_url()
            .queue_name(queue)
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let received = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
        for message in received.messages() {
            text.push_str(message.body().unwrap_or_default());
        }
    }
    text.to_lowercase()
}

async fn send(names: &Names, queue: &str, body: &Value) {
    let sqs = aws_sdk_sqs::Client::new(&sdk_config().await);
    let url = sqs
        .get_queue_url()
        .queue_name(queue)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    sqs.send_message()
        .queue_url(url)
        .message_body(body.to_string())
        .send()
        .await
        .unwrap();
    let _ = names;
}

fn fresh_names() -> Names {
    Names {
        features: unique("features"),
        archive: unique("archive"),
        messages: unique("messages"),
        queue: unique("queue"),
        dlq: unique("dlq"),
        stream_failures: unique("failures"),
    }
}

/// Loads the valid webhooks through the pipeline, then queues a dead letter and a quarantined
/// record of Jane's and a webhook of someone else's. Jane's last version.
async fn seed(names: &Names, url: &str) -> u64 {
    let first = referral(&["run", "--json", "events/webhooks/valid"], names, url);
    let jane = first["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|feature| feature["customerEmail"] == JANE)
        .expect("Jane was loaded")
        .clone();
    let last_version = jane["version"].as_u64().unwrap();
    send(
        names,
        &names.dlq,
        &jane_event("evt-dead", "2026-01-01T00:00:00Z"),
    )
    .await;
    // A stream record the orchestrator quarantined names the customer by key.
    send(
        names,
        &names.stream_failures,
        &json!({
            "DDBStreamBatchInfo": {"startSequenceNumber": "100", "batchSize": 1},
            "quarantine": {"customer_email": JANE, "reason": "image does not decode"},
        }),
    )
    .await;
    let mut other = jane_event("evt-other", "2026-01-01T00:00:00Z");
    other["customer"]["email"] = json!("someone.else@example.com");
    send(names, &names.queue, &other).await;
    assert!(everything(names).await.contains(JANE));
    last_version
}

async fn marker_version(names: &Names) -> Option<u64> {
    let archive = DynamoEventArchive::new(
        aws_sdk_dynamodb::Client::new(&sdk_config().await),
        &names.archive,
    );
    archive
        .find(&erasure_hash(JANE))
        .await
        .unwrap()
        .map(|marker| marker.last_version)
}

/// What the erasure of Jane seeded by [`seed`] reports and leaves: her item, messages and
/// queued webhooks gone, someone else's webhook kept, the marker after her last version.
async fn assert_erased(removed: &Value, names: &Names, last_version: u64) {
    assert_eq!(removed["features_item"], 1, "{removed}");
    assert!(removed["messages_rows"].as_u64().unwrap() > 0, "{removed}");
    assert_eq!(removed["queued_webhooks"][&names.dlq], 1, "{removed}");
    assert_eq!(removed["queued_webhooks"][&names.queue], 0, "{removed}");
    assert_eq!(
        removed["queued_webhooks"][&names.stream_failures], 1,
        "{removed}"
    );
    assert_eq!(removed["marker_last_version"], last_version, "{removed}");
    let left = everything(names).await;
    assert!(
        !left.contains(JANE),
        "the address is still somewhere: {left}"
    );
    assert!(
        left.contains("someone.else@example.com"),
        "another's webhook was lost"
    );

    assert_eq!(marker_version(names).await, Some(last_version));
}

#[tokio::test]
async fn a_forgotten_customer_is_nowhere_and_comes_back_fresh() {
    let url = endpoint();
    let names = fresh_names();
    let last_version = seed(&names, &url).await;

    let dry = referral(
        &[
            "customers",
            "forget",
            "Jane.Doe@Example.com",
            "--dry-run",
            "--json",
        ],
        &names,
        &url,
    );
    assert_eq!(dry["features_item"], 1, "{dry}");
    assert!(
        everything(&names).await.contains(JANE),
        "a dry run removes nothing"
    );

    let removed = referral(
        &[
            "customers",
            "forget",
            "Jane.Doe@Example.com",
            "--json",
            "--settle-seconds",
            "0",
        ],
        &names,
        &url,
    );
    assert_erased(&removed, &names, last_version).await;

    let again = referral(
        &[
            "customers",
            "forget",
            JANE,
            "--json",
            "--settle-seconds",
            "0",
        ],
        &names,
        &url,
    );
    assert_eq!(again["features_item"], 0, "idempotent: {again}");
    assert_eq!(again["marker_last_version"], last_version, "{again}");

    // The old events redelivered, then a new one: only the new one counts.
    let dir = std::env::temp_dir().join(unique("forget-events"));
    std::fs::create_dir_all(&dir).unwrap();
    let now = chrono::Utc::now().to_rfc3339();
    let fresh = write_event(&dir, "2-new.json", &jane_event("evt-after-erasure", &now));
    let old = "events/webhooks/valid/01-jane-doe-first-service.json";
    let second = referral(&["run", "--json", old, &fresh], &names, &url);
    let jane = second["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|feature| feature["customerEmail"] == JANE)
        .expect("Jane came back")
        .clone();
    assert_eq!(jane["version"], last_version + 1, "{jane}");
    assert_eq!(jane["service_count"], 1, "{jane}");
    let messages = second["messages"].as_array().unwrap();
    assert!(
        messages
            .iter()
            .any(|message| message["customerEmail"] == JANE),
        "the fresh customer gets a message: {second}"
    );
}

/// The eraser Lambda's binary under `referral invoke`: the same erasure, by API, answered and
/// logged by customer ref only.
#[tokio::test]
async fn the_eraser_function_erases_by_api_and_logs_no_address() {
    let url = endpoint();
    let names = fresh_names();
    let last_version = seed(&names, &url).await;
    let eraser = lambda_binary("eraser");
    let jane_ref = customer_ref_with(None, JANE);
    let invoke = |event: Value| {
        let output = referral_output(
            &[
                "invoke",
                "eraser",
                "--event",
                "-",
                "--binary",
                eraser.to_str().unwrap(),
                "--env",
                "ERASURE_SETTLE_SECONDS=0",
            ],
            &names,
            &url,
            event.to_string().as_bytes(),
        );
        let stdout = String::from_utf8_lossy(&output.stdout).to_lowercase();
        let stderr = String::from_utf8_lossy(&output.stderr).to_lowercase();
        assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
        for (name, text) in [("answer", &stdout), ("logs", &stderr)] {
            assert!(!text.contains(JANE), "the {name} name the address: {text}");
        }
        assert!(
            stderr.contains(&format!("\"customer_ref\":\"{jane_ref}\"")),
            "one JSON log line per customer, by ref: {stderr}"
        );
        serde_json::from_str::<Value>(stdout.trim()).expect("one JSON answer")
    };

    let dry = invoke(json!({"emails": ["Jane.Doe@Example.com"], "dry_run": true}));
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!(dry["customers"][&jane_ref]["features_item"], 1, "{dry}");
    assert_eq!(
        dry["customers"][&jane_ref]["queued_webhooks"][&names.dlq], 1,
        "{dry}"
    );
    assert!(
        everything(&names).await.contains(JANE),
        "a dry run removes nothing"
    );
    assert_eq!(
        marker_version(&names).await,
        None,
        "a dry run leaves no marker"
    );

    let answer = invoke(json!({"emails": ["Jane.Doe@Example.com", "not-an-address"]}));
    let removed = &answer["customers"][&jane_ref];
    assert_eq!(
        answer["customers"].as_object().unwrap().len(),
        1,
        "{answer}"
    );
    // The dry run counted what the erasure removed.
    for place in ["messages_rows", "archive_items", "queued_webhooks"] {
        assert_eq!(
            removed[place], dry["customers"][&jane_ref][place],
            "{place}"
        );
    }
    assert_eq!(
        answer["rejected"],
        json!({"emails[1]": "must contain exactly one `@`"}),
        "{answer}"
    );
    assert_erased(removed, &names, last_version).await;
}

/// The race an erasure settles. An enricher read the erasure filter just before the marker,
/// holds no item of Jane, and trusts that read for its TTL: a redelivered old event of hers
/// is written blind. Within the settle the write meets her item, still there, and the second
/// pass deletes it with the rest; the marker covers its version, and a later redelivery stays
/// erased. (Deleting right after the marker, the blind write would recreate her.)
#[tokio::test]
async fn a_write_from_a_filter_read_before_the_marker_is_taken_by_the_erasure() {
    let url = endpoint();
    let names = fresh_names();
    let last_version = seed(&names, &url).await;
    let config = sdk_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let store = DynamoFeatureStore::new(dynamo.clone(), &names.features);
    let archive = DynamoEventArchive::new(dynamo.clone(), &names.archive);
    let enricher = Enricher::new(&store, &archive, EnricherConfig::default());
    let mut stranger = jane_event("evt-stranger", "2026-01-02T00:00:00Z");
    stranger["customer"]["email"] = json!("stranger@example.com");
    let read_at = chrono::Utc::now();
    let report = enricher
        .process(
            &raw_batch(&[("m-stranger".to_owned(), stranger.to_string())]),
            read_at,
        )
        .await;
    assert_eq!(
        report.counters.erasure_filter_reads, 1,
        "the filter, read once"
    );

    let sqs = aws_sdk_sqs::Client::new(&config);
    let mut queues = Vec::new();
    for queue in [&names.queue, &names.dlq, &names.stream_failures] {
        let output = sqs.get_queue_url().queue_name(queue).send().await.unwrap();
        queues.push(SqsQueue::new(sqs.clone(), output.queue_url.unwrap()));
    }
    let tables = Tables {
        features: names.features.clone(),
        archive: names.archive.clone(),
        messages: names.messages.clone(),
    };
    let eraser =
        Eraser::new(dynamo.clone(), tables, queues, 60).with_settle(Duration::from_secs(4));
    let erasure = tokio::spawn(async move { eraser.erase(&[JANE.to_owned()], false).await });
    let deadline = Instant::now() + Duration::from_secs(10);
    while marker_version(&names).await.is_none() {
        assert!(Instant::now() < deadline, "no marker after 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let old = (
        "m-late".to_owned(),
        jane_event("evt-late-redelivery", "2025-06-01T00:00:00Z").to_string(),
    );
    let report = enricher
        .process(&raw_batch(std::slice::from_ref(&old)), read_at)
        .await;
    assert_eq!(
        report.counters.erasure_filter_reads, 0,
        "it trusted the filter read before the marker"
    );
    assert_eq!(report.messages[0].outcome.label(), "applied", "{report:?}");
    assert!(
        !erasure.is_finished(),
        "the erasure deleted before the settle was over"
    );

    let removed = erasure.await.unwrap().remove(0).unwrap();
    assert_eq!(removed.features_item, 1, "{removed:?}");
    assert_eq!(removed.marker_last_version, last_version + 1, "{removed:?}");
    assert_eq!(marker_version(&names).await, Some(last_version + 1));
    assert!(store.load(JANE).await.unwrap().is_none(), "Jane came back");

    // The warm process holds the event as applied and writes nothing; a cold one finds the
    // marker.
    let report = enricher
        .process(&raw_batch(std::slice::from_ref(&old)), chrono::Utc::now())
        .await;
    assert_eq!(
        report.messages[0].outcome.label(),
        "duplicate",
        "{report:?}"
    );
    assert_eq!(report.counters.store_writes, 0, "{report:?}");
    let cold = Enricher::new(&store, &archive, EnricherConfig::default());
    let report = cold.process(&raw_batch(&[old]), chrono::Utc::now()).await;
    assert_eq!(report.messages[0].outcome.label(), "erased", "{report:?}");
    assert!(store.load(JANE).await.unwrap().is_none(), "Jane came back");
    let left = everything(&names).await;
    assert!(
        !left.contains(JANE),
        "the address is still somewhere: {left}"
    );
}
