//! `referral dlq stats|peek|export|import|replay` end to end against moto's server, through
//! the real binary: poison events reach the DLQ and come back fixed; transient failures are
//! replayed to their source queue; a replay killed between a send and its delete loses
//! nothing; `--dry-run` changes nothing; `--filter`, `--rate`, `--copy` do what they say;
//! `peek` and `stats` look without consuming and mask e-mail addresses.
//!
//! The enricher runs in this process as its SQS event-source mapping would invoke it: the
//! Lambda handler on batches of ten received from the source queue, deleting what it
//! handled.
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageAttributeValue, MessageSystemAttributeName,
    QueueAttributeName, SendMessageBatchRequestEntry,
};
use chrono::Utc;
use referral_aws::dynamo::{DynamoFeatureStore, DynamoMessageStore};
use referral_aws::sqs::{SqsQueue, attributes_of};
use referral_cli::aws_local::provision::{QueuePair, queue_arn, queue_url};
use referral_cli::aws_local::stream_reader::{DynamoStreamFeed, StartingPosition};
use referral_domain::enricher::{Enricher, EnricherConfig};
use referral_domain::event::ServiceEvent;
use referral_domain::features::DedupeWindow;
use referral_domain::ports::{FeatureStore, MessageStore};
use referral_enricher::EnricherHandler;
use referral_tests::emulator::{
    endpoint, fresh_queues, fresh_tables, queue_depth as depth, sdk_config, unique,
};
use referral_tests::{comparable, event_body, expected_features, raw_batch, service_event};
use serde_json::{Value, json};

/// Exit status of the replay's crash hook (`REFERRAL_DLQ_ABORT_AFTER`).
const ABORT_EXIT: i32 = 86;
/// Bound on every wait for the emulator to show a state (a lease running out).
const SETTLE: Duration = Duration::from_secs(15);

/// moto's server is one Python process, and a busy one answers slowly: the tests of this
/// file share it, except the rate test, which measures time and has it to itself.
static EMULATOR: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

// ---------------------------------------------------------------------------------------
// The binary

/// What one run of `referral` printed.
#[derive(Debug)]
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn succeeded(&self) -> &Self {
        assert_eq!(self.code, Some(0), "referral failed: {self:#?}");
        self
    }

    /// The one JSON document of `--json` (per-message lines go to stderr).
    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|error| panic!("stdout is not one JSON document ({error}): {self:#?}"))
    }

    /// One JSON document per line (`peek --json`).
    fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|error| panic!("not JSON ({error}): {line}\n{self:#?}"))
            })
            .collect()
    }
}

/// The binary, aimed at the emulator only: static credentials, no instance metadata, and
/// none of the caller's resource names or test hooks.
fn referral(args: &[&str], env: &[(&str, &str)]) -> Ran {
    let mut command = Command::new(env!("CARGO_BIN_EXE_referral"));
    command
        .args(args)
        .args(["--endpoint-url", &endpoint()])
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1");
    for name in [
        "AWS_ENDPOINT_URL",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "REFERRAL_DLQ_ABORT_AFTER",
        "BEDROCK_MODEL_ID",
        "FEATURES_TABLE",
        "MESSAGES_TABLE",
        "WEBHOOK_QUEUE",
        "WEBHOOK_DLQ",
    ] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    let output = command.output().expect("run the referral binary");
    Ran {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn dlq(args: &[&str]) -> Ran {
    let mut all = vec!["dlq"];
    all.extend_from_slice(args);
    referral(&all, &[])
}

fn number(document: &Value, field: &str) -> u64 {
    document[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} is not a count in {document}"))
}

// ---------------------------------------------------------------------------------------
// Queues

/// The last segment of a queue URL.
fn name_of(url: &str) -> &str {
    url.rsplit('/').next().expect("a queue URL")
}

fn string_attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("attribute")
}

/// Waits (bounded) until `visible` messages are visible and none in flight: a lease ran out,
/// or a run released what it held.
async fn settle(sqs: &aws_sdk_sqs::Client, url: &str, visible: u64) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let now = depth(sqs, url).await;
        if now == (visible, 0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} shows (visible, in flight) = {now:?} after {SETTLE:?}, expected ({visible}, 0)",
            name_of(url)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A message as it sits in a dead-letter queue: its body, and attributes (the enricher's
/// reason, or the original ones that SQS's redrive keeps).
#[derive(Debug, Clone)]
struct Letter {
    body: String,
    attributes: Vec<(String, String)>,
}

impl Letter {
    fn new(body: impl Into<String>, attributes: &[(&str, &str)]) -> Self {
        Letter {
            body: body.into(),
            attributes: attributes
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
        }
    }

    /// What the enricher writes for a refused event.
    fn rejected(body: impl Into<String>, kind: &str, event_id: Option<&str>) -> Self {
        let mut letter = Letter::new(
            body,
            &[
                ("error_kind", kind),
                ("error_field", "body"),
                ("enricher_version", "0.1.0"),
            ],
        );
        if let Some(event_id) = event_id {
            letter
                .attributes
                .push(("event_id".to_owned(), event_id.to_owned()));
        }
        letter
    }
}

/// Puts letters in a queue, ten per call, as the enricher or SQS's redrive would.
async fn put(sqs: &aws_sdk_sqs::Client, url: &str, letters: &[Letter]) {
    for chunk in letters.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(index, letter)| {
                SendMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .message_body(&letter.body)
                    .set_message_attributes((!letter.attributes.is_empty()).then(|| {
                        letter
                            .attributes
                            .iter()
                            .map(|(name, value)| (name.clone(), string_attribute(value)))
                            .collect()
                    }))
                    .build()
                    .expect("entry")
            })
            .collect::<Vec<_>>();
        let output = sqs
            .send_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .expect("send the letters");
        assert!(output.failed.is_empty(), "{:?}", output.failed);
    }
}

async fn receive(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<Message> {
    sqs.receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(0)
        .visibility_timeout(30)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .expect("receive")
        .messages
        .unwrap_or_default()
}

async fn delete(sqs: &aws_sdk_sqs::Client, url: &str, messages: &[Message]) {
    let entries = messages
        .iter()
        .enumerate()
        .map(|(index, message)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(index.to_string())
                .receipt_handle(message.receipt_handle.clone().expect("receipt"))
                .build()
                .expect("entry")
        })
        .collect::<Vec<_>>();
    let output = sqs
        .delete_message_batch()
        .queue_url(url)
        .set_entries(Some(entries))
        .send()
        .await
        .expect("delete");
    assert!(output.failed.is_empty(), "{:?}", output.failed);
}

/// Every message of a queue, taken out of it (the queue must have nothing in flight).
async fn take_all(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<Message> {
    let mut all = Vec::new();
    loop {
        let batch = receive(sqs, url).await;
        if batch.is_empty() {
            return all;
        }
        delete(sqs, url, &batch).await;
        all.extend(batch);
    }
}

fn body_of(message: &Message) -> String {
    message.body.clone().unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// The enricher and what it must have written

/// One message as the enricher handled it.
#[derive(Debug, Clone)]
struct Delivery {
    event_id: Option<String>,
    outcome: &'static str,
    attributes: BTreeMap<String, String>,
}

/// The enricher's SQS event-source mapping: batches of ten from the queue to the Lambda
/// handler until the queue is empty; each batch deleted once handled (a rejected message
/// goes to the DLQ). Returns what happened to each message.
async fn enrich(config: &SdkConfig, features_table: &str, queues: &QueuePair) -> Vec<Delivery> {
    let sqs = aws_sdk_sqs::Client::new(config);
    let store = DynamoFeatureStore::new(
        aws_sdk_dynamodb::Client::new(config),
        features_table.to_owned(),
    );
    let handler = EnricherHandler::new(
        Enricher::new(store, EnricherConfig::default()),
        SqsQueue::new(sqs.clone(), queues.dlq_url.clone()),
    );
    let mut deliveries = Vec::new();
    loop {
        let messages = receive(&sqs, &queues.url).await;
        if messages.is_empty() {
            return deliveries;
        }
        let mut event = SqsEvent::default();
        event.records = messages
            .iter()
            .map(|message| {
                let mut record = SqsMessage::default();
                record.message_id = message.message_id.clone();
                record.receipt_handle = message.receipt_handle.clone();
                record.body = message.body.clone();
                record.attributes = message
                    .attributes
                    .iter()
                    .flatten()
                    .map(|(name, value)| (name.as_str().to_owned(), value.clone()))
                    .collect();
                record.message_attributes = attributes_of(message)
                    .into_iter()
                    .map(|(name, value)| {
                        let mut attribute = SqsMessageAttribute::default();
                        attribute.string_value = Some(value);
                        attribute.data_type = Some("String".to_owned());
                        (name, attribute)
                    })
                    .collect();
                record.event_source = Some("aws:sqs".to_owned());
                record.event_source_arn = Some(queues.arn.clone());
                record
            })
            .collect();
        let outcome = handler.handle(&event, Utc::now()).await;
        assert!(
            outcome.response.batch_item_failures.is_empty(),
            "the enricher failed messages: {:?}",
            outcome.report
        );
        for (message, report) in messages.iter().zip(&outcome.report.messages) {
            deliveries.push(Delivery {
                event_id: report.event_id.clone(),
                outcome: report.outcome.label(),
                attributes: attributes_of(message),
            });
        }
        delete(&sqs, &queues.url, &messages).await;
    }
}

/// Event ids by outcome label.
fn by_outcome(deliveries: &[Delivery]) -> BTreeMap<&'static str, Vec<String>> {
    let mut outcomes: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for delivery in deliveries {
        outcomes
            .entry(delivery.outcome)
            .or_default()
            .push(delivery.event_id.clone().unwrap_or_else(|| "?".to_owned()));
    }
    for ids in outcomes.values_mut() {
        ids.sort();
    }
    outcomes
}

fn sorted(ids: impl IntoIterator<Item = impl Into<String>>) -> Vec<String> {
    let mut ids: Vec<String> = ids.into_iter().map(Into::into).collect();
    ids.sort();
    ids
}

/// Every customer's item is the fold of their distinct events: each applied exactly once.
async fn assert_features(config: &SdkConfig, features_table: &str, bodies: &[Value]) {
    let events: Vec<ServiceEvent> = bodies.iter().map(service_event).collect();
    let store = DynamoFeatureStore::new(
        aws_sdk_dynamodb::Client::new(config),
        features_table.to_owned(),
    );
    for (email, expected) in expected_features(&events, DedupeWindow::default()) {
        let item = store
            .load(&email)
            .await
            .expect("load")
            .unwrap_or_else(|| panic!("no item for {email}"));
        assert_eq!(comparable(item), comparable(expected), "{email}");
    }
}

/// Valid events over a few customers, with ids `{prefix}-{i}`.
fn valid_events(prefix: &str, count: usize) -> Vec<Value> {
    let customers = ["ann", "bob", "cyd"];
    (0..count)
        .map(|i| {
            event_body(
                &format!("{prefix}-{i:03}"),
                &format!("{}@example.com", customers[i % customers.len()]),
                i as i64 * 10,
                Some((i % 5) as f64 + 0.5),
            )
        })
        .collect()
}

fn event_id(body: &Value) -> String {
    body["event_id"].as_str().expect("event_id").to_owned()
}

/// Redriven letters of valid events: the body, and the original attributes SQS keeps.
fn redriven(bodies: &[Value]) -> Vec<Letter> {
    bodies
        .iter()
        .map(|body| Letter::new(body.to_string(), &[("source", "webhook")]))
        .collect()
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(unique("dlq-test"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn write_lines(path: &Path, lines: &[Value]) {
    let text: Vec<String> = lines.iter().map(Value::to_string).collect();
    std::fs::write(path, text.join("\n") + "\n").expect("write");
}

// ---------------------------------------------------------------------------------------
// 1a. Poison events: export, fix by hand, import, applied once

#[tokio::test]
async fn poison_events_exported_fixed_and_imported_are_applied_exactly_once() {
    let _shared = EMULATOR.read().await;
    let config = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let names = [
        unique("features"),
        unique("messages"),
        unique("queue"),
        unique("dlq"),
    ];
    let dir = temp_dir();

    // Four good events and one of each kind of refusal.
    let good = vec![
        event_body("good-1", "ann@example.com", 1, Some(4.0)),
        event_body("good-2", "bob@example.com", 2, None),
        event_body("good-3", "ann@example.com", 3, Some(2.5)),
        event_body("good-4", "dee@example.com", 4, Some(5.0)),
    ];
    let intended = vec![
        event_body("fix-score", "ann@example.com", 5, Some(4.5)),
        event_body("fix-json", "bob@example.com", 6, Some(3.0)),
        event_body("fix-email", "cyd@example.com", 7, None),
        event_body("fix-missing", "dee@example.com", 8, Some(1.5)),
    ];
    let mut bad_score = intended[0].clone();
    bad_score["service"]["satisfaction_score"] = json!("four and a half");
    let truncated = intended[1].to_string()[..60].to_owned();
    let mut bad_email = intended[2].clone();
    bad_email["customer"]["email"] = json!("cyd.example.com");
    let mut missing = intended[3].clone();
    missing.as_object_mut().unwrap().remove("occurred_at");
    let mut lines: Vec<String> = good.iter().map(Value::to_string).collect();
    lines.extend([
        bad_score.to_string(),
        truncated,
        bad_email.to_string(),
        missing.to_string(),
    ]);
    let input = dir.join("webhooks.jsonl");
    std::fs::write(&input, lines.join("\n")).expect("write the webhooks");

    // The pipeline refuses the four: they are in the DLQ with their reasons.
    let run = referral(
        &[
            "run",
            "--features-table",
            &names[0],
            "--messages-table",
            &names[1],
            "--queue",
            &names[2],
            "--dlq",
            &names[3],
            input.to_str().unwrap(),
        ],
        &[],
    );
    run.succeeded();
    // The queues `referral run` created, with the redrive policy of the deployed stack.
    let (url, dlq_url) = (
        queue_url(&sqs, &names[2]).await.unwrap(),
        queue_url(&sqs, &names[3]).await.unwrap(),
    );
    let queues = QueuePair {
        arn: queue_arn(&sqs, &url).await.unwrap(),
        dlq_arn: queue_arn(&sqs, &dlq_url).await.unwrap(),
        url,
        dlq_url,
    };
    assert_eq!(
        depth(&sqs, &queues.url).await,
        (0, 0),
        "the run leaves nothing in its queue"
    );
    let stats = dlq(&["stats", &names[3], "--json"]).succeeded().json();
    assert_eq!(number(&stats, "depth"), 4, "{stats}");
    assert_eq!(
        stats["by_kind"],
        json!({"invalid_value": 1, "malformed_json": 1, "missing_field": 1, "wrong_type": 1}),
        "{stats}"
    );
    assert_features(&config, &names[0], &good).await;

    // Export and delete; the file holds them all and the DLQ is empty.
    let file = dir.join("dead-letters.jsonl");
    let exported = dlq(&[
        "export",
        &names[3],
        "--out",
        file.to_str().unwrap(),
        "--delete",
    ]);
    exported.succeeded();
    assert!(
        exported.stdout.contains("exported 4 message(s)"),
        "{exported:#?}"
    );
    assert_eq!(depth(&sqs, &queues.dlq_url).await, (0, 0));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the export holds customer data: {mode:o}");
    }

    // A person fixes each line, keeping the rest of it as exported.
    let text = std::fs::read_to_string(&file).expect("read the export");
    let mut fixed = Vec::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let mut line: Value = serde_json::from_str(line).expect("a JSON line");
        let kind = line["attributes"]["error_kind"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut body: Option<Value> = serde_json::from_str(line["body"].as_str().unwrap()).ok();
        match kind.as_str() {
            "wrong_type" => {
                let body = body.as_mut().unwrap();
                assert_eq!(line["attributes"]["event_id"], "fix-score");
                body["service"]["satisfaction_score"] = json!(4.5);
            }
            "malformed_json" => body = Some(intended[1].clone()),
            "invalid_value" => {
                let body = body.as_mut().unwrap();
                assert_eq!(line["attributes"]["error_field"], "customer.email");
                body["customer"]["email"] = json!("cyd@example.com");
            }
            "missing_field" => {
                let body = body.as_mut().unwrap();
                body["occurred_at"] = intended[3]["occurred_at"].clone();
            }
            other => panic!("unexpected kind {other} in {line}"),
        }
        line["body"] = json!(body.unwrap().to_string());
        fixed.push(line);
    }
    assert_eq!(fixed.len(), 4);
    write_lines(&file, &fixed);

    let imported = dlq(&["import", file.to_str().unwrap(), "--to", &names[2]]);
    imported.succeeded();
    assert!(
        imported.stdout.contains("imported 4 message(s)"),
        "{imported:#?}"
    );
    assert_eq!(depth(&sqs, &queues.url).await, (4, 0));

    let deliveries = enrich(&config, &names[0], &queues).await;
    assert_eq!(
        by_outcome(&deliveries),
        BTreeMap::from([(
            "applied",
            sorted(["fix-email", "fix-json", "fix-missing", "fix-score"])
        )]),
        "{deliveries:#?}"
    );
    let everything: Vec<Value> = good.iter().chain(&intended).cloned().collect();
    assert_features(&config, &names[0], &everything).await;
    assert_eq!(depth(&sqs, &queues.dlq_url).await, (0, 0));
    assert_eq!(depth(&sqs, &queues.url).await, (0, 0));

    // Importing the same file again is harmless: every event is acknowledged as applied.
    dlq(&["import", file.to_str().unwrap(), "--to", &names[2]]).succeeded();
    let again = enrich(&config, &names[0], &queues).await;
    assert_eq!(
        by_outcome(&again),
        BTreeMap::from([(
            "duplicate",
            sorted(["fix-email", "fix-json", "fix-missing", "fix-score"])
        )]),
        "{again:#?}"
    );
    assert_features(&config, &names[0], &everything).await;
    assert_eq!(depth(&sqs, &queues.dlq_url).await, (0, 0));

    // An export never overwrites a file unless asked.
    let refused = dlq(&["export", &names[3], "--out", file.to_str().unwrap()]);
    assert_ne!(refused.code, Some(0), "{refused:#?}");
    assert!(refused.stderr.contains("--force"), "{refused:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------
// 1b. Transient failures: replayed to the source queue, applied once

#[tokio::test]
async fn transient_failures_replay_to_their_source_queue_and_apply_once() {
    let _shared = EMULATOR.read().await;
    let config = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let (tables, _) = fresh_tables(&config).await;
    let queues = fresh_queues(&config, 3).await;
    let bodies = valid_events("transient", 6);

    // The first event was applied before its delivery failed (a timeout after the write):
    // SQS redrove it anyway, like the five others that failed before the write.
    put(&sqs, &queues.url, &redriven(&bodies[..1])).await;
    let first = enrich(&config, &tables.features, &queues).await;
    assert_eq!(by_outcome(&first)["applied"], vec![event_id(&bodies[0])]);
    put(&sqs, &queues.dlq_url, &redriven(&bodies)).await;

    // No --to: the target is the queue whose redrive policy names the DLQ.
    let summary = dlq(&["replay", name_of(&queues.dlq_url), "--json"])
        .succeeded()
        .json();
    assert_eq!(summary["target"], name_of(&queues.url), "{summary}");
    assert_eq!(number(&summary, "moved"), 6, "{summary}");
    assert_eq!(number(&summary, "failed"), 0, "{summary}");
    assert_eq!(depth(&sqs, &queues.dlq_url).await, (0, 0));
    assert_eq!(depth(&sqs, &queues.url).await, (6, 0));

    let deliveries = enrich(&config, &tables.features, &queues).await;
    let outcomes = by_outcome(&deliveries);
    assert_eq!(
        outcomes["applied"],
        sorted(bodies[1..].iter().map(event_id)),
        "{deliveries:#?}"
    );
    assert_eq!(outcomes["duplicate"], vec![event_id(&bodies[0])]);
    assert_eq!(outcomes.len(), 2, "{deliveries:#?}");
    // Replayed as they were, counted once.
    for delivery in &deliveries {
        assert_eq!(delivery.attributes["source"], "webhook", "{delivery:?}");
        assert_eq!(delivery.attributes["replay_count"], "1", "{delivery:?}");
    }
    assert_features(&config, &tables.features, &bodies).await;
    assert_eq!(depth(&sqs, &queues.dlq_url).await, (0, 0));
    assert_eq!(depth(&sqs, &queues.url).await, (0, 0));
}

// ---------------------------------------------------------------------------------------
// 2. Crash safety

/// A replay killed right after its k-th send (before that message's delete), then run
/// again: nothing lost, the DLQ empty, and every event applied exactly once.
async fn killed_replay_loses_nothing(k: u64) {
    const N: usize = 15;
    let config = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let (tables, _) = fresh_tables(&config).await;
    let queues = fresh_queues(&config, 3).await;
    let bodies = valid_events(&format!("crash{k}"), N);
    put(&sqs, &queues.dlq_url, &redriven(&bodies)).await;
    let dlq_name = name_of(&queues.dlq_url);

    let killed = referral(
        &["dlq", "replay", dlq_name, "--lease", "1", "--json"],
        &[("REFERRAL_DLQ_ABORT_AFTER", &k.to_string())],
    );
    assert_eq!(killed.code, Some(ABORT_EXIT), "{killed:#?}");
    assert!(killed.stderr.contains("before its delete"), "{killed:#?}");
    // k copies sent, k - 1 originals deleted; the rest is held until the lease runs out.
    let left = N as u64 - (k - 1);
    let (visible, in_flight) = depth(&sqs, &queues.dlq_url).await;
    assert_eq!(visible + in_flight, left, "DLQ right after the kill");
    assert_eq!(
        depth(&sqs, &queues.url).await,
        (k, 0),
        "target after the kill"
    );

    settle(&sqs, &queues.dlq_url, left).await;
    let summary = dlq(&["replay", dlq_name, "--json"]).succeeded().json();
    assert_eq!(number(&summary, "moved"), left, "{summary}");
    assert_eq!(number(&summary, "failed"), 0, "{summary}");
    assert_eq!(
        depth(&sqs, &queues.dlq_url).await,
        (0, 0),
        "DLQ after the rerun"
    );
    // The k-th message was sent twice: once by each run.
    assert_eq!(depth(&sqs, &queues.url).await, (N as u64 + 1, 0));

    let deliveries = enrich(&config, &tables.features, &queues).await;
    let delivered: BTreeSet<String> = deliveries
        .iter()
        .filter_map(|delivery| delivery.event_id.clone())
        .collect();
    let original: BTreeSet<String> = bodies.iter().map(event_id).collect();
    assert!(
        delivered.is_superset(&original),
        "lost: {:?}",
        original.difference(&delivered).collect::<Vec<_>>()
    );
    let outcomes = by_outcome(&deliveries);
    assert_eq!(outcomes["applied"], sorted(original.iter().cloned()));
    assert_eq!(outcomes["duplicate"].len(), 1, "{deliveries:#?}");
    assert_eq!(outcomes.len(), 2, "{deliveries:#?}");
    assert_features(&config, &tables.features, &bodies).await;
    assert_eq!(depth(&sqs, &queues.dlq_url).await, (0, 0));
}

#[tokio::test]
async fn a_replay_killed_after_its_first_send_loses_nothing() {
    let _shared = EMULATOR.read().await;
    killed_replay_loses_nothing(1).await;
}

#[tokio::test]
async fn a_replay_killed_after_its_third_send_loses_nothing() {
    let _shared = EMULATOR.read().await;
    killed_replay_loses_nothing(3).await;
}

#[tokio::test]
async fn a_replay_killed_after_its_seventh_send_loses_nothing() {
    let _shared = EMULATOR.read().await;
    killed_replay_loses_nothing(7).await;
}

/// In the second batch of ten, received while the first was replayed.
#[tokio::test]
async fn a_replay_killed_after_its_twelfth_send_loses_nothing() {
    let _shared = EMULATOR.read().await;
    killed_replay_loses_nothing(12).await;
}

// ---------------------------------------------------------------------------------------
// 3. Dry run

#[tokio::test]
async fn a_dry_run_changes_nothing() {
    let _shared = EMULATOR.read().await;
    let config = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queues = fresh_queues(&config, 3).await;
    let bodies = valid_events("dry", 5);
    put(&sqs, &queues.dlq_url, &redriven(&bodies)).await;
    let dlq_name = name_of(&queues.dlq_url);
    let ids = |lines: Vec<Value>| -> BTreeSet<String> {
        lines
            .iter()
            .map(|line| line["message_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let before_ids = ids(dlq(&["peek", dlq_name, "--json"]).succeeded().json_lines());
    settle(&sqs, &queues.dlq_url, 5).await;
    let before = (
        depth(&sqs, &queues.dlq_url).await,
        depth(&sqs, &queues.url).await,
    );
    assert_eq!(before, ((5, 0), (0, 0)));

    let dry = dlq(&["replay", dlq_name, "--dry-run", "--json"]);
    let summary = dry.succeeded().json();
    assert_eq!(summary["dry_run"], true, "{summary}");
    assert_eq!(number(&summary, "would_move"), 5, "{summary}");
    assert_eq!(number(&summary, "moved"), 0, "{summary}");
    assert_eq!(dry.stderr.matches("would move").count(), 5, "{dry:#?}");

    settle(&sqs, &queues.dlq_url, 5).await;
    let after = (
        depth(&sqs, &queues.dlq_url).await,
        depth(&sqs, &queues.url).await,
    );
    assert_eq!(after, before);
    let after_lines = dlq(&["peek", dlq_name, "--json"]).succeeded().json_lines();
    for line in &after_lines {
        assert!(
            line["attributes"].get("replay_count").is_none(),
            "a dry run added a replay count: {line}"
        );
    }
    assert_eq!(ids(after_lines), before_ids);
}

// ---------------------------------------------------------------------------------------
// 4. Filter

#[tokio::test]
async fn a_filter_moves_only_the_matching_messages() {
    let _shared = EMULATOR.read().await;
    let config = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queues = fresh_queues(&config, 3).await;
    let bodies = valid_events("filter", 4);
    let mut letters = vec![
        Letter::rejected("{\"event_id\": \"filter-j1\", ", "malformed_json", None),
        Letter::rejected("not json at all", "malformed_json", None),
        Letter::rejected("[1, 2", "malformed_json", None),
    ];
    for body in &bodies[..2] {
        letters.push(Letter::rejected(
            body.to_string(),
            "wrong_type",
            Some(&event_id(body)),
        ));
    }
    letters.extend(redriven(&bodies[2..]));
    put(&sqs, &queues.dlq_url, &letters).await;
    let dlq_name = name_of(&queues.dlq_url);
    let target = name_of(&queues.url);

    let summary = dlq(&[
        "replay",
        dlq_name,
        "--to",
        target,
        "--filter",
        "kind=malformed_json",
        "--json",
    ])
    .succeeded()
    .json();
    assert_eq!(number(&summary, "moved"), 3, "{summary}");
    assert_eq!(number(&summary, "skipped"), 4, "{summary}");
    assert_eq!(summary["filter"], "kind=malformed_json", "{summary}");
    settle(&sqs, &queues.dlq_url, 4).await;
    let moved: BTreeSet<String> = take_all(&sqs, &queues.url)
        .await
        .iter()
        .map(body_of)
        .collect();
    let expected: BTreeSet<String> = letters[..3].iter().map(|l| l.body.clone()).collect();
    assert_eq!(moved, expected);
    let stats = dlq(&["stats", dlq_name, "--json"]).succeeded().json();
    assert_eq!(
        stats["by_kind"],
        json!({"redriven": 2, "wrong_type": 2}),
        "{stats}"
    );

    // By event id: the attribute of a rejected letter, else the body's field.
    let wanted = format!("event={}|{}", event_id(&bodies[0]), event_id(&bodies[3]));
    let summary = dlq(&[
        "replay", dlq_name, "--to", target, "--filter", &wanted, "--json",
    ])
    .succeeded()
    .json();
    assert_eq!(number(&summary, "moved"), 2, "{summary}");
    assert_eq!(number(&summary, "skipped"), 2, "{summary}");
    settle(&sqs, &queues.dlq_url, 2).await;
    let moved: BTreeSet<String> = take_all(&sqs, &queues.url)
        .await
        .iter()
        .map(body_of)
        .collect();
    assert_eq!(
        moved,
        BTreeSet::from([bodies[0].to_string(), bodies[3].to_string()])
    );
    let left: BTreeSet<String> = take_all(&sqs, &queues.dlq_url)
        .await
        .iter()
        .map(body_of)
        .collect();
    assert_eq!(
        left,
        BTreeSet::from([bodies[1].to_string(), bodies[2].to_string()])
    );

    // A bad expression is refused before anything is received.
    let bad = dlq(&["replay", dlq_name, "--to", target, "--filter", "colour=red"]);
    assert_ne!(bad.code, Some(0), "{bad:#?}");
    assert!(bad.stderr.contains("unknown"), "{bad:#?}");
}

// ---------------------------------------------------------------------------------------
// 5. Rate

#[tokio::test]
// 25/s rather than more: each paced message costs a send and a delete through the debug
// build of the binary against moto, about 20 ms on this machine, and a rate near that cost
// would measure the machine's load rather than the pacing.
async fn a_replay_at_25_per_second_holds_that_rate() {
    let _alone = EMULATOR.write().await;
    let config = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queues = fresh_queues(&config, 3).await;
    let letters: Vec<Letter> = (0..200)
        .map(|i| Letter::new(format!("not json {i}"), &[]))
        .collect();
    put(&sqs, &queues.dlq_url, &letters).await;
    settle(&sqs, &queues.dlq_url, 200).await;

    let started = Instant::now();
    let summary = dlq(&[
        "replay",
        name_of(&queues.dlq_url),
        "--rate",
        "25/s",
        "--json",
    ])
    .succeeded()
    .json();
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(number(&summary, "moved"), 200, "{summary}");
    let rate = summary["rate_per_second"].as_f64().expect("a rate");
    let window = summary["send_window_seconds"].as_f64().expect("a window");
    println!(
        "replay of 200 at --rate 25/s: {rate:.2}/s over a {window:.2} s send window, {wall:.2} s \
         wall time"
    );
    assert!((22.5..=27.5).contains(&rate), "rate {rate:.2}/s: {summary}");
    // From this side, not the tool's own account: the 200 sends cannot have taken less
    // than 199 intervals at 27.5/s, and the window lies inside the run.
    assert!(
        wall >= 199.0 / 27.5 && wall >= window,
        "200 moves in {wall:.2} s (send window {window:.2} s) is faster than the rate"
    );
    assert_eq!(depth(&sqs, &queues.dlq_url).await, (0, 0));
    assert_eq!(depth(&sqs, &queues.url).await, (200, 0));
}

// ---------------------------------------------------------------------------------------
// 6. Peek

#[tokio::test]
async fn peek_shows_the_same_messages_twice_consumes_nothing_and_masks_emails() {
    let _shared = EMULATOR.read().await;
    let config = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queues = fresh_queues(&config, 3).await;
    let emails = ["jane.doe@example.com", "ann@example.com", "bob@example.org"];
    let mut letters: Vec<Letter> = emails
        .iter()
        .enumerate()
        .map(|(i, email)| {
            Letter::new(
                event_body(&format!("peek-{i}"), email, i as i64, Some(3.0)).to_string(),
                &[("source", "webhook")],
            )
        })
        .collect();
    let mut bad = Letter::rejected(
        "{\"customer\": {\"email\": \"zed@example.net\"",
        "malformed_json",
        None,
    );
    bad.attributes.push((
        "error_message".to_owned(),
        "cannot parse the event of zed@example.net".to_owned(),
    ));
    letters.push(bad);
    put(&sqs, &queues.dlq_url, &letters).await;
    let dlq_name = name_of(&queues.dlq_url);
    settle(&sqs, &queues.dlq_url, 4).await;

    let first = dlq(&["peek", dlq_name, "--json"]);
    let second = dlq(&["peek", dlq_name, "--json"]);
    let ids = |ran: &Ran| -> BTreeSet<String> {
        ran.succeeded()
            .json_lines()
            .iter()
            .map(|line| line["message_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let first_ids = ids(&first);
    assert_eq!(first_ids.len(), 4, "{first:#?}");
    assert_eq!(first_ids, ids(&second));
    settle(&sqs, &queues.dlq_url, 4).await;

    let all_addresses = ["jane.doe@", "ann@", "bob@", "zed@"];
    let text = dlq(&["peek", dlq_name]);
    for ran in [&first, &second, &text] {
        ran.succeeded();
        for address in all_addresses {
            assert!(
                !ran.stdout.contains(address),
                "{address} shown in clear: {ran:#?}"
            );
        }
        for masked in ["j***@example.com", "a***@example.com", "z***@example.net"] {
            assert!(ran.stdout.contains(masked), "{masked} missing: {ran:#?}");
        }
    }
    assert!(text.stdout.contains("--reveal"), "{text:#?}");
    let kinds: BTreeMap<String, u64> =
        first
            .json_lines()
            .iter()
            .fold(BTreeMap::new(), |mut kinds, line| {
                *kinds
                    .entry(line["error_kind"].as_str().unwrap().to_owned())
                    .or_default() += 1;
                kinds
            });
    assert_eq!(
        kinds,
        BTreeMap::from([("malformed_json".to_owned(), 1), ("redriven".to_owned(), 3)])
    );

    let revealed = dlq(&["peek", dlq_name, "--json", "--reveal"]);
    revealed.succeeded();
    for address in emails.iter().chain(&["zed@example.net"]) {
        assert!(
            revealed.stdout.contains(address),
            "{address} not revealed: {revealed:#?}"
        );
    }
    settle(&sqs, &queues.dlq_url, 4).await;
    assert_eq!(depth(&sqs, &queues.url).await, (0, 0));
}

// ---------------------------------------------------------------------------------------
// 7. Stats

#[tokio::test]
async fn stats_reports_the_depth_and_counts_by_error_kind() {
    let _shared = EMULATOR.read().await;
    let config = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queues = fresh_queues(&config, 3).await;
    let bodies = valid_events("stats", 6);
    let mut letters = vec![
        Letter::rejected("{", "malformed_json", None),
        Letter::rejected("nope", "malformed_json", None),
    ];
    for body in &bodies[..3] {
        letters.push(Letter::rejected(
            body.to_string(),
            "wrong_type",
            Some(&event_id(body)),
        ));
    }
    letters.push(Letter::rejected(
        bodies[3].to_string(),
        "missing_field",
        Some(&event_id(&bodies[3])),
    ));
    letters.extend(redriven(&bodies[4..]));
    put(&sqs, &queues.dlq_url, &letters).await;
    let dlq_name = name_of(&queues.dlq_url);
    settle(&sqs, &queues.dlq_url, 8).await;

    let stats = dlq(&["stats", dlq_name, "--json"]).succeeded().json();
    assert_eq!(stats["queue"], dlq_name, "{stats}");
    assert_eq!(number(&stats, "depth"), 8, "{stats}");
    assert_eq!(number(&stats, "visible"), 8, "{stats}");
    assert_eq!(number(&stats, "in_flight"), 0, "{stats}");
    assert_eq!(number(&stats, "scanned"), 8, "{stats}");
    assert_eq!(
        stats["by_kind"],
        json!({"malformed_json": 2, "missing_field": 1, "redriven": 2, "wrong_type": 3}),
        "{stats}"
    );
    assert_eq!(
        stats["by_event_type"],
        json!({"service.completed": 6, "unknown": 2}),
        "{stats}"
    );
    assert!(stats["oldest_age_seconds"].as_u64().is_some(), "{stats}");
    settle(&sqs, &queues.dlq_url, 8).await;

    let text = dlq(&["stats", dlq_name]);
    text.succeeded();
    assert!(
        text.stdout.contains("depth:          8 (8 visible"),
        "{text:#?}"
    );
    assert!(text.stdout.contains("wrong_type"), "{text:#?}");
    settle(&sqs, &queues.dlq_url, 8).await;

    // A queue that is not there: a clear error, not an empty report.
    let missing = dlq(&["stats", &unique("no-such-queue"), "--json"]);
    assert_ne!(missing.code, Some(0), "{missing:#?}");
    assert!(
        missing.stderr.contains("Check the queue name"),
        "{missing:#?}"
    );
}

// ---------------------------------------------------------------------------------------
// 8. Copy, and a replay onto itself

#[tokio::test]
async fn copies_leave_the_originals_and_a_replay_onto_itself_is_refused() {
    let _shared = EMULATOR.read().await;
    let config = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queues = fresh_queues(&config, 3).await;
    let bodies = valid_events("copy", 3);
    put(&sqs, &queues.dlq_url, &redriven(&bodies)).await;
    let dlq_name = name_of(&queues.dlq_url);

    let summary = dlq(&["replay", dlq_name, "--copy", "--json"])
        .succeeded()
        .json();
    assert_eq!(summary["copy"], true, "{summary}");
    assert_eq!(number(&summary, "moved"), 3, "{summary}");
    settle(&sqs, &queues.dlq_url, 3).await;
    let copies = take_all(&sqs, &queues.url).await;
    let copied: BTreeSet<String> = copies.iter().map(body_of).collect();
    let originals: BTreeSet<String> = bodies.iter().map(Value::to_string).collect();
    assert_eq!(copied, originals);
    for copy in &copies {
        assert_eq!(attributes_of(copy)["replay_count"], "1");
    }
    // The originals are untouched: no replay count.
    for line in dlq(&["peek", dlq_name, "--json"]).succeeded().json_lines() {
        assert!(line["attributes"].get("replay_count").is_none(), "{line}");
    }
    settle(&sqs, &queues.dlq_url, 3).await;

    for to in [dlq_name, queues.dlq_url.as_str()] {
        let refused = dlq(&["replay", dlq_name, "--to", to]);
        assert_ne!(refused.code, Some(0), "{refused:#?}");
        assert!(
            refused.stderr.contains("refusing to replay") && refused.stderr.contains("onto itself"),
            "{refused:#?}"
        );
    }
    assert_eq!(depth(&sqs, &queues.dlq_url).await, (3, 0));
    assert_eq!(depth(&sqs, &queues.url).await, (0, 0));

    // A DLQ nobody names: no default target, and the message says what to do.
    let orphan = sqs
        .create_queue()
        .queue_name(unique("orphan-dlq"))
        .send()
        .await
        .expect("create")
        .queue_url
        .expect("url");
    put(&sqs, &orphan, &redriven(&bodies[..1])).await;
    let nowhere = dlq(&["replay", name_of(&orphan)]);
    assert_ne!(nowhere.code, Some(0), "{nowhere:#?}");
    assert!(nowhere.stderr.contains("--to QUEUE"), "{nowhere:#?}");
    settle(&sqs, &orphan, 1).await;
}

// ---------------------------------------------------------------------------------------
// FIFO (moto implements groups and five-minute deduplication)

async fn put_fifo(sqs: &aws_sdk_sqs::Client, url: &str, letters: &[(&Value, &str)], tag: &str) {
    for (index, (body, group)) in letters.iter().enumerate() {
        sqs.send_message()
            .queue_url(url)
            .message_body(body.to_string())
            .message_group_id(*group)
            .message_deduplication_id(format!("original-{tag}-{index}"))
            .message_attributes("source", string_attribute("webhook"))
            .send()
            .await
            .expect("send to the FIFO DLQ");
    }
}

/// Body → (group, deduplication id) of every message of a FIFO queue, taken out of it, in
/// the order received.
async fn take_fifo(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<(String, String, String)> {
    take_all(sqs, url)
        .await
        .iter()
        .map(|message| {
            let system = message.attributes.clone().unwrap_or_default();
            (
                body_of(message),
                system[&MessageSystemAttributeName::MessageGroupId].clone(),
                system[&MessageSystemAttributeName::MessageDeduplicationId].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn fifo_replays_keep_the_group_and_take_a_fresh_deduplication_id() {
    let _shared = EMULATOR.read().await;
    let config = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let base = unique("fifo");
    let dlq_url = sqs
        .create_queue()
        .queue_name(format!("{base}-dlq.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .expect("create the DLQ")
        .queue_url
        .expect("url");
    let dlq_arn = queue_arn(&sqs, &dlq_url).await.expect("arn");
    let url = sqs
        .create_queue()
        .queue_name(format!("{base}.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(
            QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"}).to_string(),
        )
        .send()
        .await
        .expect("create the queue")
        .queue_url
        .expect("url");
    let dlq_name = name_of(&dlq_url);
    let bodies = valid_events("fifo", 6);

    // Two groups of two: each message keeps its group, the order within a group is kept,
    // and none reuses the deduplication id of its first send (SQS would drop it).
    put_fifo(
        &sqs,
        &dlq_url,
        &[
            (&bodies[0], "ann@example.com"),
            (&bodies[1], "g-bob"),
            (&bodies[2], "ann@example.com"),
            (&bodies[3], "g-bob"),
        ],
        "a",
    )
    .await;
    // A group id may be an address: masked like the rest unless --reveal.
    let groups = |reveal: bool| -> BTreeSet<String> {
        let mut args = vec!["peek", dlq_name, "--json"];
        if reveal {
            args.push("--reveal");
        }
        dlq(&args)
            .succeeded()
            .json_lines()
            .iter()
            .map(|line| line["group_id"].as_str().expect("a group").to_owned())
            .collect()
    };
    assert_eq!(
        groups(false),
        BTreeSet::from(["a***@example.com".to_owned(), "g-bob".to_owned()])
    );
    settle(&sqs, &dlq_url, 4).await;
    assert_eq!(
        groups(true),
        BTreeSet::from(["ann@example.com".to_owned(), "g-bob".to_owned()])
    );
    settle(&sqs, &dlq_url, 4).await;
    let summary = dlq(&["replay", dlq_name, "--json"]).succeeded().json();
    assert_eq!(summary["target"], name_of(&url), "{summary}");
    assert_eq!(number(&summary, "moved"), 4, "{summary}");
    assert_eq!(depth(&sqs, &dlq_url).await, (0, 0));
    let mut by_group: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (body, group, deduplication_id) in take_fifo(&sqs, &url).await {
        assert!(
            !deduplication_id.starts_with("original-"),
            "the first send's deduplication id was reused: {deduplication_id}"
        );
        by_group.entry(group).or_default().push(body);
    }
    assert_eq!(
        by_group,
        BTreeMap::from([
            (
                "ann@example.com".to_owned(),
                vec![bodies[0].to_string(), bodies[2].to_string()]
            ),
            (
                "g-bob".to_owned(),
                vec![bodies[1].to_string(), bodies[3].to_string()]
            ),
        ])
    );

    // Killed after a send and before its delete: the rerun sends that message again with the
    // same deduplication id, and SQS drops the copy, so the target holds each message once.
    put_fifo(
        &sqs,
        &dlq_url,
        &[(&bodies[4], "g-cyd"), (&bodies[5], "g-dee")],
        "b",
    )
    .await;
    let killed = referral(
        &["dlq", "replay", dlq_name, "--lease", "1", "--json"],
        &[("REFERRAL_DLQ_ABORT_AFTER", "1")],
    );
    assert_eq!(killed.code, Some(ABORT_EXIT), "{killed:#?}");
    settle(&sqs, &dlq_url, 2).await;
    let summary = dlq(&["replay", dlq_name, "--json"]).succeeded().json();
    assert_eq!(number(&summary, "moved"), 2, "{summary}");
    assert_eq!(depth(&sqs, &dlq_url).await, (0, 0));
    let moved = take_fifo(&sqs, &url).await;
    let mut groups: Vec<(String, String)> = moved
        .iter()
        .map(|(body, group, _)| (body.clone(), group.clone()))
        .collect();
    groups.sort();
    let mut expected = vec![
        (bodies[4].to_string(), "g-cyd".to_owned()),
        (bodies[5].to_string(), "g-dee".to_owned()),
    ];
    expected.sort();
    assert_eq!(
        groups, expected,
        "each message once, in its group: {moved:#?}"
    );
}

// ---------------------------------------------------------------------------------------
// 11. The orchestrator's stream failures

/// Folds `bodies` into the features table the way the enricher does, one write per batch
/// and customer, and runs no orchestrator: every change is still without its message.
async fn write_features(config: &SdkConfig, features_table: &str, bodies: &[Value]) {
    let store = DynamoFeatureStore::new(aws_sdk_dynamodb::Client::new(config), features_table);
    let enricher = Enricher::new(store, EnricherConfig::default());
    for chunk in bodies.chunks(3) {
        let texts: Vec<(String, String)> = chunk
            .iter()
            .map(|body| (event_id(body), body.to_string()))
            .collect();
        assert_eq!(
            enricher.process(&raw_batch(&texts), Utc::now()).await.counters.failed,
            0
        );
    }
}

/// The shard and the sequence numbers of every record the stream holds now.
async fn stream_positions(config: &SdkConfig, stream_arn: &str) -> (String, Vec<String>) {
    let streams = aws_sdk_dynamodbstreams::Client::new(config);
    let shard = streams
        .describe_stream()
        .stream_arn(stream_arn)
        .send()
        .await
        .expect("describe the stream")
        .stream_description
        .and_then(|description| description.shards)
        .and_then(|shards| shards.into_iter().next())
        .and_then(|shard| shard.shard_id)
        .expect("a shard");
    let feed = DynamoStreamFeed::start(streams, stream_arn, StartingPosition::TrimHorizon)
        .await
        .expect("open the stream");
    let mut sequence_numbers = Vec::new();
    loop {
        let records = feed.poll_records(1000).await.expect("read the stream");
        if records.is_empty() {
            return (shard, sequence_numbers);
        }
        sequence_numbers.extend(
            records
                .iter()
                .filter_map(|record| record.dynamodb.as_ref()?.sequence_number.clone()),
        );
    }
}

/// What the stream event-source mapping sends its on-failure destination: where the batch
/// was, not its data.
fn stream_failure(stream_arn: &str, shard: &str, first: &str, last: &str) -> Letter {
    Letter::new(
        json!({
            "requestContext": {"requestId": unique("request"), "condition": "RetryAttemptsExhausted",
                               "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:orchestrator",
                               "approximateInvokeCount": 4},
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "version": "1.0",
            "timestamp": Utc::now().to_rfc3339(),
            "DDBStreamBatchInfo": {"shardId": shard, "startSequenceNumber": first,
                                   "endSequenceNumber": last, "streamArn": stream_arn}
        })
        .to_string(),
        &[],
    )
}

/// Messages per customer, by the features version each was written from.
async fn message_versions(
    config: &SdkConfig,
    messages_table: &str,
    customers: &[&str],
) -> BTreeMap<String, Vec<u64>> {
    let store = DynamoMessageStore::new(aws_sdk_dynamodb::Client::new(config), messages_table);
    let mut versions = BTreeMap::new();
    for customer in customers {
        let email = format!("{customer}@example.com");
        let written = store.list(&email).await.expect("list messages");
        versions.insert(
            email,
            written
                .iter()
                .map(|message| message.features_version)
                .collect(),
        );
    }
    versions
}

#[tokio::test]
async fn stream_failures_rerun_the_orchestrator_from_the_stream_or_else_from_the_table() {
    let _shared = EMULATOR.read().await;
    let config = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let (tables, stream_arn) = fresh_tables(&config).await;
    let failures_url = sqs
        .create_queue()
        .queue_name(unique("stream-failures"))
        .send()
        .await
        .expect("create the failure queue")
        .queue_url
        .expect("a queue URL");
    let replay = |extra: &[&str]| {
        let mut args = vec![
            "replay",
            name_of(&failures_url),
            "--features-table",
            &tables.features,
            "--messages-table",
            &tables.messages,
            "--json",
        ];
        args.extend_from_slice(extra);
        dlq(&args).succeeded().json()
    };

    // Six events of three customers, two writes each: six changes, none with its message.
    let first = valid_events("sf", 6);
    write_features(&config, &tables.features, &first).await;
    let (shard, positions) = stream_positions(&config, &stream_arn).await;
    assert!(positions.len() >= 6, "{positions:?}");
    put(
        &sqs,
        &failures_url,
        &[stream_failure(
            &stream_arn,
            &shard,
            &positions[0],
            &positions[positions.len() - 1],
        )],
    )
    .await;

    let dry = replay(&["--dry-run"]);
    assert_eq!(number(&dry, "would_rerun"), 1, "{dry}");
    settle(&sqs, &failures_url, 1).await;
    let customers = ["ann", "bob", "cyd"];
    assert!(
        message_versions(&config, &tables.messages, &customers)
            .await
            .values()
            .all(Vec::is_empty),
        "a dry run wrote messages"
    );

    // The records are retained: the orchestrator's handler gets them as Lambda would.
    let rerun = replay(&[]);
    assert_eq!(
        (number(&rerun, "stream_reruns"), number(&rerun, "failed")),
        (1, 0),
        "{rerun}"
    );
    assert_eq!(number(&rerun, "messages_created"), 6, "{rerun}");
    assert_eq!(depth(&sqs, &failures_url).await, (0, 0));
    let expected: BTreeMap<String, Vec<u64>> = customers
        .iter()
        .map(|customer| (format!("{customer}@example.com"), vec![1, 2]))
        .collect();
    assert_eq!(
        message_versions(&config, &tables.messages, &customers).await,
        expected
    );

    // Three more changes, then two failure records whose batches the stream no longer holds:
    // the first makes the replay check every customer's current features, the second is
    // covered by that check.
    let later = valid_events("sf-later", 3);
    write_features(&config, &tables.features, &later).await;
    let beyond = |offset: u64| {
        let last: u128 = positions[positions.len() - 1].parse().expect("a number");
        (last + 1_000_000 + u128::from(offset)).to_string()
    };
    put(
        &sqs,
        &failures_url,
        &[
            stream_failure(&stream_arn, &shard, &beyond(0), &beyond(5)),
            stream_failure(&stream_arn, &shard, &beyond(10), &beyond(15)),
        ],
    )
    .await;
    let reconciled = replay(&[]);
    assert_eq!(
        (
            number(&reconciled, "stream_reruns"),
            number(&reconciled, "failed"),
            number(&reconciled, "messages_created")
        ),
        (2, 0, 3),
        "one message for each customer's current version, once: {reconciled}"
    );
    assert_eq!(depth(&sqs, &failures_url).await, (0, 0));
    let expected: BTreeMap<String, Vec<u64>> = customers
        .iter()
        .map(|customer| (format!("{customer}@example.com"), vec![1, 2, 3]))
        .collect();
    assert_eq!(
        message_versions(&config, &tables.messages, &customers).await,
        expected
    );

    // A record of another table's stream is refused and left in place.
    put(
        &sqs,
        &failures_url,
        &[stream_failure(
            &stream_arn.replace(&tables.features, "SomeOtherTable"),
            &shard,
            &positions[0],
            &positions[0],
        )],
    )
    .await;
    let refused = dlq(&[
        "replay",
        name_of(&failures_url),
        "--features-table",
        &tables.features,
        "--messages-table",
        &tables.messages,
        "--json",
    ]);
    assert_eq!(refused.code, Some(1), "{refused:#?}");
    assert_eq!(number(&refused.json(), "failed"), 1);
    settle(&sqs, &failures_url, 1).await;
}
