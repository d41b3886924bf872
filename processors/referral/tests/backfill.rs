//! `referral backfill` against moto's server: a year and a half of shuffled history with
//! duplicates, half JSONL and half CSV with some invalid rows, interrupted once and run
//! again, loads exactly (the reference fold); every change it wrote has one outcome,
//! suppressed with reason `backfill`, and the orchestrator fed its stream makes no message;
//! a second run writes nothing.
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use referral_aws::dynamo::{DynamoEventArchive, DynamoFeatureStore, DynamoMessageStore};
use referral_aws_local::stream_reader::{DynamoStreamFeed, StartingPosition};
use referral_cli::backfill::csv::COLUMNS;
use referral_cli::names::{ResourceNames, STREAM_FAILURE_QUEUE, TableNames};
use referral_cli::remote;
use referral_domain::enricher::{Enricher, EnricherConfig};
use referral_domain::event::ServiceEvent;
use referral_domain::features::{CustomerFeatures, MemoryLimits};
use referral_domain::orchestrator::{Orchestrator, OrchestratorConfig, StreamCounters};
use referral_domain::ports::{Decision, MessageStore};
use referral_domain::template::TemplateGenerator;
use referral_local::mapping::{StreamConsumer, StreamMapping};
use referral_tests::corpus::Corpus;
use referral_tests::emulator::{endpoint, sdk_config, unique};
use referral_tests::{comparable, expected_features, raw_batch, service_event};
use serde_json::{Map, Value};

fn referral(args: &[String], dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_referral"));
    command
        .current_dir(dir)
        .args(args)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_ENDPOINT_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn report(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "backfill failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("--json prints one JSON document")
}

/// The value at a dotted column of a webhook body, as a CSV cell (`None`: absent).
fn cell(body: &Value, column: &str) -> Option<String> {
    let value = column
        .split('.')
        .try_fold(body, |value, part| value.get(part))?;
    Some(match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join(";"),
        other => panic!("{column}: {other}"),
    })
}

/// The body a CSV row of `body` stands for, rebuilt as the backfill does: equal to `body`
/// when the row says all of it (an empty list or object has no cell).
fn rebuilt(body: &Value) -> Value {
    let mut out = Map::new();
    for column in COLUMNS {
        // An empty cell is an absent field.
        if cell(body, column).is_none_or(|text| text.is_empty()) {
            continue;
        }
        let mut object = &mut out;
        let parts: Vec<&str> = column.split('.').collect();
        for part in &parts[..parts.len() - 1] {
            object = object
                .entry(*part)
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .unwrap();
        }
        let leaf = body
            .pointer(&format!("/{}", parts.join("/")))
            .unwrap()
            .clone();
        object.insert(parts[parts.len() - 1].to_owned(), leaf);
    }
    Value::Object(out)
}

fn quoted(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

struct Inputs {
    dir: PathBuf,
    distinct: Vec<ServiceEvent>,
    deliveries: usize,
}

/// The corpus as `history.jsonl` and `history.csv` (columns in another order than
/// `COLUMNS`), each event's deliveries in one of them, plus three invalid rows.
fn write_inputs() -> Inputs {
    let corpus = Corpus::shuffled_history();
    let dir = std::env::temp_dir().join(unique("backfill"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut columns: Vec<&str> = COLUMNS.to_vec();
    columns.reverse();
    let mut jsonl = std::fs::File::create(dir.join("history.jsonl")).unwrap();
    let mut csv = std::fs::File::create(dir.join("history.csv")).unwrap();
    writeln!(csv, "{}", columns.join(",")).unwrap();
    let mut distinct = BTreeMap::new();
    let (mut in_csv, mut in_jsonl) = (0, 0);
    for delivery in &corpus.deliveries {
        let body: Value = serde_json::from_str(&delivery.body).unwrap();
        distinct
            .entry(delivery.event_id.clone())
            .or_insert_with(|| service_event(&body));
        let odd = delivery.event_id.bytes().map(u32::from).sum::<u32>() % 2 == 1;
        if odd && rebuilt(&body) == body {
            in_csv += 1;
            let row: Vec<String> = columns
                .iter()
                .map(|column| cell(&body, column).map_or_else(String::new, |t| quoted(&t)))
                .collect();
            writeln!(csv, "{}", row.join(",")).unwrap();
        } else {
            in_jsonl += 1;
            writeln!(jsonl, "{}", delivery.body).unwrap();
        }
    }
    assert!(in_csv > 600 && in_jsonl > 600, "{in_csv} / {in_jsonl}");
    // Invalid: a score out of range, a row of the wrong width, a line that is no JSON.
    let mut bad_score: Vec<String> = columns
        .iter()
        .map(|column| match *column {
            "event_id" => "evt_bad_score".to_owned(),
            "occurred_at" => "2024-03-01T10:00:00Z".to_owned(),
            "customer.email" => "bad.score@example.com".to_owned(),
            "service.satisfaction_score" => "6".to_owned(),
            _ => String::new(),
        })
        .collect();
    writeln!(csv, "{}", bad_score.join(",")).unwrap();
    bad_score.pop();
    writeln!(csv, "{}", bad_score.join(",")).unwrap();
    writeln!(jsonl, "not json").unwrap();
    Inputs {
        dir,
        distinct: distinct.into_values().collect(),
        deliveries: corpus.deliveries.len(),
    }
}

async fn scan_all(store: &DynamoFeatureStore) -> Vec<CustomerFeatures> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = store.scan_page(start).await.expect("scan");
        assert!(page.undecodable.is_empty());
        items.extend(page.items);
        match page.next {
            Some(next) => start = Some(next),
            None => return items,
        }
    }
}

/// Fresh tables and queues, and their stream read from now on.
async fn fresh_tables(sdk: &aws_config::SdkConfig) -> (ResourceNames, DynamoStreamFeed) {
    let names = ResourceNames {
        tables: TableNames {
            features_table: unique("features"),
            archive_table: unique("archive"),
            messages_table: unique("messages"),
        },
        queue: unique("queue"),
        dlq: unique("dlq"),
        stream_failures: STREAM_FAILURE_QUEUE.to_owned(),
    };
    let resources = remote::setup(sdk, &names, 5).await.expect("setup");
    let feed = DynamoStreamFeed::start(
        aws_sdk_dynamodbstreams::Client::new(sdk),
        resources.stream_arn.clone(),
        StartingPosition::Latest,
    )
    .await
    .expect("stream");
    (names, feed)
}

/// `referral backfill` of [`write_inputs`]' two files into `names`' tables.
fn backfill_args(names: &ResourceNames) -> Vec<String> {
    [
        "backfill",
        "history.jsonl",
        "history.csv",
        "--json",
        "--state-dir",
        "state",
        "--rejects",
        "rejects.jsonl",
        "--features-table",
        &names.tables.features_table,
        "--archive-table",
        &names.tables.archive_table,
        "--messages-table",
        &names.tables.messages_table,
        "--endpoint-url",
        &endpoint(),
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect()
}

/// The orchestrator over the table's stream, as its mapping runs it, until it has had
/// `changes` records.
async fn orchestrate(
    feed: DynamoStreamFeed,
    messages: &DynamoMessageStore,
    changes: u64,
) -> StreamCounters {
    let orchestrator =
        Orchestrator::new(TemplateGenerator, messages, OrchestratorConfig::default());
    let mapping = StreamMapping::new(feed, &orchestrator);
    let mut counters = StreamCounters::default();
    for _ in 0..50 {
        mapping.consume(1000, &mut counters).await.expect("consume");
        if counters.records >= changes {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(counters.records, changes, "{counters:?}");
    counters
}

/// `args` at 40 write units a second, started and left running once it has finished
/// some customers.
fn paced_backfill(args: &[String], dir: &Path) -> std::process::Child {
    let mut paced = args.to_vec();
    paced.extend(["--max-write-units".to_owned(), "40".to_owned()]);
    let mut backfill = referral(&paced, dir).spawn().expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !checkpointed(&dir.join("state")) {
        assert!(
            Instant::now() < deadline,
            "no customer finished in 2 minutes"
        );
        assert!(
            backfill.try_wait().unwrap().is_none(),
            "finished before any customer was checkpointed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    backfill
}

/// Whether the run's checkpoint has finished customers in it.
fn checkpointed(state: &Path) -> bool {
    std::fs::read_dir(state)
        .into_iter()
        .flatten()
        .flatten()
        .any(|run| std::fs::metadata(run.path().join("done")).is_ok_and(|done| done.len() > 0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shuffled_history_in_jsonl_and_csv_loads_exactly_once_without_messages() {
    let sdk = sdk_config().await;
    let (names, feed) = fresh_tables(&sdk).await;
    let inputs = write_inputs();
    let args = backfill_args(&names);
    // Interrupted once: killed as soon as it has finished some customers.
    let mut first = paced_backfill(&args, &inputs.dir);
    assert!(
        first.try_wait().unwrap().is_none(),
        "finished before it was interrupted"
    );
    first.kill().expect("kill");
    first.wait().expect("wait");

    let resumed = report(&referral(&args, &inputs.dir).output().unwrap());
    eprintln!("resumed run: {resumed}");
    assert_eq!(resumed["resumed"], true);
    assert!(
        resumed["customers_skipped"].as_u64().unwrap() > 0,
        "{resumed}"
    );
    assert_eq!(resumed["events"], inputs.deliveries + 3);
    assert_eq!(resumed["rejected"], 3, "{resumed}");
    assert_eq!(resumed["unrecorded"], 0);
    assert!(resumed["failed"].as_array().unwrap().is_empty());

    // Exactly the reference fold of the distinct events.
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let features = DynamoFeatureStore::new(dynamodb.clone(), &names.tables.features_table);
    let stored = scan_all(&features).await;
    let expected = expected_features(&inputs.distinct, MemoryLimits::default());
    assert_eq!(stored.len(), expected.len());
    for item in &stored {
        let want = expected
            .get(&item.customer_email)
            .expect("a customer of the corpus");
        assert_eq!(
            comparable(item.clone()),
            comparable(want.clone()),
            "{}",
            item.customer_email
        );
        assert_eq!(item.trigger_event_id, None, "history earns no message");
    }

    // One outcome per change: every version suppressed, reason backfill; no message.
    let messages = DynamoMessageStore::new(dynamodb, &names.tables.messages_table);
    let mut changes = 0;
    for item in &stored {
        let decisions = messages.decisions(&item.customer_email).await.unwrap();
        let versions: BTreeSet<u64> = decisions
            .iter()
            .map(|decision| match decision {
                Decision::Suppressed(s) if s.reason == "backfill" => s.features_version,
                other => panic!("{}: {other:?}", item.customer_email),
            })
            .collect();
        assert_eq!(
            versions,
            (1..=item.version).collect(),
            "{}",
            item.customer_email
        );
        changes += item.version;
    }

    // The orchestrator, fed every change the backfill wrote, makes no message (so no
    // model is called).
    let counters = orchestrate(feed, &messages, changes).await;
    assert_eq!(
        (counters.created, counters.skipped),
        (0, changes),
        "{counters:?}"
    );

    // The rejects file: where, which field, and the row to fix.
    let rejects = std::fs::read_to_string(inputs.dir.join("rejects.jsonl")).unwrap();
    let rejects: Vec<Value> = rejects
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let csv_lines = inputs.deliveries as u64 + 3;
    let summary: Vec<(String, String)> = rejects
        .iter()
        .map(|reject| {
            let source = reject["source"].as_str().unwrap();
            let (file, line) = source.rsplit_once(':').unwrap();
            let line: u64 = line.parse().unwrap();
            assert!(line <= csv_lines, "{source}");
            (
                format!(
                    "{}:{}",
                    file,
                    if file.ends_with(".csv") {
                        "row"
                    } else {
                        "line"
                    }
                ),
                reject["field"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("history.jsonl:line".to_owned(), "body".to_owned()),
            (
                "history.csv:row".to_owned(),
                "service.satisfaction_score".to_owned()
            ),
            ("history.csv:row".to_owned(), "row".to_owned()),
        ]
    );
    assert!(
        rejects[1]["body"]
            .as_str()
            .unwrap()
            .contains("evt_bad_score")
    );

    // A second run finds everything applied and writes nothing.
    let again = report(&referral(&args, &inputs.dir).output().unwrap());
    eprintln!("second run: {again}");
    assert_eq!(again["resumed"], false);
    assert_eq!(again["applied"], 0);
    assert_eq!(
        (
            again["item_writes"].clone(),
            again["archive_writes"].clone()
        ),
        (Value::from(0), Value::from(0)),
        "{again}"
    );
    assert_eq!(scan_all(&features).await, stored);
    std::fs::remove_dir_all(&inputs.dir).ok();
}

/// Live traffic while a backfill runs, on the same customers: the live path's conditional
/// writes and the backfill's merge leave exactly the fold of history and live events
/// together; each live change is decided as live changes are (the policy, a message), and
/// every change the backfill wrote stays suppressed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_traffic_during_a_backfill_stays_exact_and_only_live_changes_message() {
    let sdk = sdk_config().await;
    let (names, feed) = fresh_tables(&sdk).await;
    let inputs = write_inputs();

    // A service today for 25 of the history's customers, each delivered twice.
    let now = chrono::Utc::now();
    let mut live_bodies = Vec::new();
    let mut live_customers = BTreeSet::new();
    for delivery in &Corpus::shuffled_history().deliveries {
        if live_customers.len() == 25 || !live_customers.insert(delivery.customer.clone()) {
            continue;
        }
        let mut body: Value = serde_json::from_str(&delivery.body).unwrap();
        body["event_id"] = Value::from(format!("evt_live_{:03}", live_customers.len()));
        body["occurred_at"] = Value::from(
            (now - chrono::Duration::minutes(live_customers.len() as i64))
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
        live_bodies.push(body.to_string());
    }
    let live_events: Vec<ServiceEvent> = live_bodies
        .iter()
        .map(|body| service_event(&serde_json::from_str(body).unwrap()))
        .collect();
    let mut deliveries: Vec<&String> = live_bodies.iter().chain(live_bodies.iter().rev()).collect();
    deliveries.rotate_left(7);

    // The backfill, paced so that it is still writing while the live batches come.
    let mut backfill = paced_backfill(&backfill_args(&names), &inputs.dir);

    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let features = DynamoFeatureStore::new(dynamodb.clone(), &names.tables.features_table);
    let enricher = Enricher::new(
        &features,
        DynamoEventArchive::new(dynamodb.clone(), &names.tables.archive_table),
        EnricherConfig::default(),
    );
    let mut applied = 0;
    for (nth, batch) in deliveries.chunks(10).enumerate() {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let batch: Vec<(String, String)> = batch
            .iter()
            .enumerate()
            .map(|(i, body)| (format!("live-{nth}-{i}"), (*body).clone()))
            .collect();
        let queued = raw_batch(&batch);
        let report = enricher.process(&queued, chrono::Utc::now()).await;
        assert_eq!(
            (report.counters.failed, report.counters.rejected),
            (0, 0),
            "{:?}",
            report.counters
        );
        applied += report.counters.applied;
    }
    assert_eq!(applied, live_events.len() as u64, "each live event once");
    assert!(
        backfill.try_wait().unwrap().is_none(),
        "the backfill ended before the live traffic did: pace it slower"
    );
    let finished = backfill.wait_with_output().expect("wait");
    let summary = report(&finished);
    assert_eq!(summary["unrecorded"], 0, "{summary}");
    assert!(
        summary["failed"].as_array().unwrap().is_empty(),
        "{summary}"
    );
    assert!(
        summary["item_writes"].as_u64().unwrap() > 0,
        "the backfill wrote after the live traffic began: {summary}"
    );

    // Exactly the reference fold of history and live events together.
    let stored = scan_all(&features).await;
    let mut all_events = inputs.distinct.clone();
    all_events.extend(live_events.iter().cloned());
    let expected = expected_features(&all_events, MemoryLimits::default());
    assert_eq!(stored.len(), expected.len());
    for item in &stored {
        assert_eq!(
            comparable(item.clone()),
            comparable(expected[&item.customer_email].clone()),
            "{}",
            item.customer_email
        );
    }

    // Every change the table's stream carries, through the orchestrator.
    let messages = DynamoMessageStore::new(dynamodb, &names.tables.messages_table);
    let changes: u64 = stored.iter().map(|item| item.version).sum();
    orchestrate(feed, &messages, changes).await;

    // One decision per change; a message only for a live change, one per live customer
    // (their first); the backfill's changes suppressed.
    let mut messaged = BTreeSet::new();
    for item in &stored {
        let decisions = messages.decisions(&item.customer_email).await.unwrap();
        let versions: BTreeSet<u64> = decisions
            .iter()
            .map(|decision| match decision {
                Decision::Message(message) => message.features_version,
                Decision::Suppressed(suppression) => suppression.features_version,
            })
            .collect();
        assert_eq!(
            versions,
            (1..=item.version).collect(),
            "{}",
            item.customer_email
        );
        for decision in &decisions {
            match decision {
                Decision::Message(message) => {
                    let trigger = message.trigger_event_id.as_deref().unwrap_or_default();
                    assert!(
                        trigger.starts_with("evt_live_"),
                        "history messaged: {message:?}"
                    );
                    assert!(messaged.insert(item.customer_email.clone()));
                }
                Decision::Suppressed(suppression) => {
                    let live = suppression
                        .trigger_event_id
                        .as_deref()
                        .is_some_and(|id| id.starts_with("evt_live_"));
                    assert_eq!(suppression.reason == "backfill", !live, "{suppression:?}");
                }
            }
        }
    }
    assert_eq!(
        messaged, live_customers,
        "a first message for each live customer"
    );
    std::fs::remove_dir_all(&inputs.dir).ok();
}
