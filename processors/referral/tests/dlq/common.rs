//! What the DLQ tests share: the binary, queue helpers, the enricher as its event-source
//! mapping invokes it, and the checks of what it wrote.

pub(crate) use std::collections::{BTreeMap, BTreeSet};
pub(crate) use std::path::{Path, PathBuf};
pub(crate) use std::process::Command;
pub(crate) use std::time::{Duration, Instant};

pub(crate) use aws_config::SdkConfig;
pub(crate) use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageAttributeValue, MessageSystemAttributeName,
    QueueAttributeName, SendMessageBatchRequestEntry,
};
pub(crate) use chrono::Utc;
pub(crate) use referral_aws::dynamo::{DynamoEventArchive, DynamoFeatureStore, DynamoMessageStore};
pub(crate) use referral_aws::sqs::{SqsQueue, attributes_of, queue_message};
pub(crate) use referral_aws_local::provision::{QueuePair, TableNames, queue_arn, queue_url};
pub(crate) use referral_aws_local::sqs_event::sqs_event;
pub(crate) use referral_aws_local::stream_reader::{DynamoStreamFeed, StartingPosition};
pub(crate) use referral_domain::enricher::{Enricher, EnricherConfig};
pub(crate) use referral_domain::event::ServiceEvent;
pub(crate) use referral_domain::features::MemoryLimits;
pub(crate) use referral_domain::ports::{FeatureStore, MessageStore};
pub(crate) use referral_domain::redact::customer_ref_with;
pub(crate) use referral_enricher::EnricherHandler;
pub(crate) use referral_tests::emulator::{
    endpoint, fresh_queues, fresh_tables, queue_depth as depth, sdk_config, unique,
};
pub(crate) use referral_tests::{
    comparable, event_body, expected_features, raw_batch, service_event,
};
pub(crate) use serde_json::{Value, json};

/// Exit status of the replay's crash hook (`REFERRAL_DLQ_ABORT_AFTER`).
pub(crate) const ABORT_EXIT: i32 = 86;
/// Bound on every wait for the emulator to show a state (a lease running out).
pub(crate) const SETTLE: Duration = Duration::from_secs(15);

/// moto's server is one Python process, and a busy one answers slowly: the tests of this
/// file share it, except the rate test, which measures time and has it to itself.
pub(crate) static EMULATOR: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

// ---------------------------------------------------------------------------------------
// The binary

/// What one run of `referral` printed.
#[derive(Debug)]
pub(crate) struct Ran {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Ran {
    pub(crate) fn succeeded(&self) -> &Self {
        assert_eq!(self.code, Some(0), "referral failed: {self:#?}");
        self
    }

    /// The one JSON document of `--json` (per-message lines go to stderr).
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|error| panic!("stdout is not one JSON document ({error}): {self:#?}"))
    }

    /// One JSON document per line (`peek --json`).
    pub(crate) fn json_lines(&self) -> Vec<Value> {
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
pub(crate) fn referral(args: &[&str], env: &[(&str, &str)]) -> Ran {
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
        "CUSTOMER_REF_KEY",
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

pub(crate) fn dlq(args: &[&str]) -> Ran {
    let mut all = vec!["dlq"];
    all.extend_from_slice(args);
    referral(&all, &[])
}

pub(crate) fn number(document: &Value, field: &str) -> u64 {
    document[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} is not a count in {document}"))
}

// ---------------------------------------------------------------------------------------
// Queues

/// The last segment of a queue URL.
pub(crate) fn name_of(url: &str) -> &str {
    url.rsplit('/').next().expect("a queue URL")
}

pub(crate) fn string_attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("attribute")
}

/// Waits (bounded) until `visible` messages are visible and none in flight: a lease ran out,
/// or a run released what it held.
pub(crate) async fn settle(sqs: &aws_sdk_sqs::Client, url: &str, visible: u64) {
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
pub(crate) struct Letter {
    pub(crate) body: String,
    pub(crate) attributes: Vec<(String, String)>,
}

impl Letter {
    pub(crate) fn new(body: impl Into<String>, attributes: &[(&str, &str)]) -> Self {
        Letter {
            body: body.into(),
            attributes: attributes
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
        }
    }

    /// What the enricher writes for a refused event.
    pub(crate) fn rejected(body: impl Into<String>, kind: &str, event_id: Option<&str>) -> Self {
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
pub(crate) async fn put(sqs: &aws_sdk_sqs::Client, url: &str, letters: &[Letter]) {
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

pub(crate) async fn receive(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<Message> {
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

pub(crate) async fn delete(sqs: &aws_sdk_sqs::Client, url: &str, messages: &[Message]) {
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
pub(crate) async fn take_all(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<Message> {
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

pub(crate) fn body_of(message: &Message) -> String {
    message.body.clone().unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// The enricher and what it must have written

/// One message as the enricher handled it.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub(crate) event_id: Option<String>,
    pub(crate) outcome: &'static str,
    pub(crate) attributes: BTreeMap<String, String>,
}

/// The enricher's SQS event-source mapping: batches of ten from the queue to the Lambda
/// handler until the queue is empty; each batch deleted once handled (a rejected message
/// goes to the DLQ). Returns what happened to each message.
pub(crate) async fn enrich(
    config: &SdkConfig,
    tables: &TableNames,
    queues: &QueuePair,
) -> Vec<Delivery> {
    enrich_with(config, tables, queues, EnricherConfig::default()).await
}

/// [`enrich`] with an enricher configured by `enricher`.
pub(crate) async fn enrich_with(
    config: &SdkConfig,
    tables: &TableNames,
    queues: &QueuePair,
    enricher: EnricherConfig,
) -> Vec<Delivery> {
    let sqs = aws_sdk_sqs::Client::new(config);
    let dynamodb = aws_sdk_dynamodb::Client::new(config);
    let store = DynamoFeatureStore::new(dynamodb.clone(), tables.features.clone());
    let archive = DynamoEventArchive::new(dynamodb, tables.archive.clone());
    let handler = EnricherHandler::new(
        Enricher::new(store, archive, enricher),
        SqsQueue::new(sqs.clone(), queues.dlq_url.clone()),
    );
    let mut deliveries = Vec::new();
    loop {
        let messages = receive(&sqs, &queues.url).await;
        if messages.is_empty() {
            return deliveries;
        }
        let batch: Vec<_> = messages.iter().cloned().map(queue_message).collect();
        let event = sqs_event(&batch, &queues.arn);
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
pub(crate) fn by_outcome(deliveries: &[Delivery]) -> BTreeMap<&'static str, Vec<String>> {
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

pub(crate) fn sorted(ids: impl IntoIterator<Item = impl Into<String>>) -> Vec<String> {
    let mut ids: Vec<String> = ids.into_iter().map(Into::into).collect();
    ids.sort();
    ids
}

/// Every customer's item is the fold of their distinct events: each applied exactly once.
pub(crate) async fn assert_features(config: &SdkConfig, features_table: &str, bodies: &[Value]) {
    let events: Vec<ServiceEvent> = bodies.iter().map(service_event).collect();
    let store = DynamoFeatureStore::new(
        aws_sdk_dynamodb::Client::new(config),
        features_table.to_owned(),
    );
    for (email, expected) in expected_features(&events, MemoryLimits::default()) {
        let item = store
            .load(&email)
            .await
            .expect("load")
            .unwrap_or_else(|| panic!("no item for {email}"));
        assert_eq!(comparable(item), comparable(expected), "{email}");
    }
}

/// Valid events over a few customers, with ids `{prefix}-{i}`.
pub(crate) fn valid_events(prefix: &str, count: usize) -> Vec<Value> {
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

pub(crate) fn event_id(body: &Value) -> String {
    body["event_id"].as_str().expect("event_id").to_owned()
}

/// Redriven letters of valid events: the body, and the original attributes SQS keeps.
pub(crate) fn redriven(bodies: &[Value]) -> Vec<Letter> {
    bodies
        .iter()
        .map(|body| Letter::new(body.to_string(), &[("source", "webhook")]))
        .collect()
}

pub(crate) fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(unique("dlq-test"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

pub(crate) fn write_lines(path: &Path, lines: &[Value]) {
    let text: Vec<String> = lines.iter().map(Value::to_string).collect();
    std::fs::write(path, text.join("\n") + "\n").expect("write");
}

// ---------------------------------------------------------------------------------------
// 1a. Poison events: export, fix by hand, import, applied once
