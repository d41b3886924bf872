//! The message policy through the `referral` binary: the defaults give the messages they gave
//! before the policy existed (a golden file), a cooldown spaces a busy customer's messages
//! by event time alike on embedded adapters and on moto, a satisfaction floor holds back
//! the unhappy until their average recovers, and `messages preview` decides without
//! writing.
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Duration, TimeZone, Utc};
use referral_tests::corpus::{Corpus, CorpusSpec};
use referral_tests::emulator::{endpoint, unique};
use serde_json::{Value, json};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `referral ARGS` (plus `--endpoint-url` when given), its JSON output.
fn referral_json(args: &[&str], endpoint: Option<&str>) -> Value {
    let mut command = Command::new(env!("CARGO_BIN_EXE_referral"));
    command
        .current_dir(workspace())
        .args(args)
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    if let Some(url) = endpoint {
        command.args(["--endpoint-url", url]);
    }
    let output = command.output().expect("run the referral binary");
    assert!(
        output.status.success(),
        "referral {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON document")
}

/// Fresh tables and queues for one run against moto.
fn fresh_names() -> Vec<String> {
    let names = [
        ("--features-table", "features"),
        ("--archive-table", "archive"),
        ("--messages-table", "messages"),
        ("--queue", "queue"),
        ("--dlq", "dlq"),
    ];
    names
        .iter()
        .flat_map(|(flag, name)| [(*flag).to_owned(), unique(name)])
        .collect()
}

fn write_jsonl(name: &str, lines: impl IntoIterator<Item = String>) -> PathBuf {
    let path = std::env::temp_dir().join(format!("{}.jsonl", unique(name)));
    let text: Vec<String> = lines.into_iter().collect();
    std::fs::write(&path, text.join("\n") + "\n").expect("write the events");
    path
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temp path")
}

/// `(customer, version)` of each entry of a `messages` or `suppressed` array.
fn changes(entries: &Value) -> Vec<(String, u64)> {
    entries
        .as_array()
        .expect("an array")
        .iter()
        .map(|entry| {
            (
                entry["customerEmail"].as_str().unwrap().to_owned(),
                entry["features_version"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The golden file is `referral run --json events/webhooks`'s `messages` as the binary of
/// 2fa956e (main before the policy was merged, with the input hardening) printed them, with
/// each `prompt` replaced by `prompt_version` 1 and the `prompt_hash` of that very text
/// (checked when the prompt's text stopped being kept).
#[test]
fn the_defaults_give_the_messages_of_before_the_policy_golden() {
    let mut run = referral_json(&["run", "--json", "events/webhooks"], None);
    // Each message carries the trace `run` started for its webhook (as ingest would),
    // which the golden file predates.
    for message in run["messages"].as_array_mut().unwrap() {
        let trace_id = message.as_object_mut().unwrap().remove("trace_id");
        let trace_id = trace_id
            .as_ref()
            .and_then(Value::as_str)
            .unwrap_or_default();
        assert_eq!(trace_id.len(), 32, "{message}");
    }
    let golden_path = workspace().join("processors/referral/tests/golden/webhooks-messages.json");
    let golden: Value =
        serde_json::from_str(&std::fs::read_to_string(&golden_path).unwrap()).unwrap();
    assert_eq!(
        run["messages"], golden,
        "messages differ from {golden_path:?}"
    );
    assert_eq!(run["suppressed"], json!([]));
    assert_eq!(run["summary"]["suppressed"], 0);
    assert_eq!(run["summary"]["messages"], 27);
}

#[test]
fn a_7d_cooldown_spaces_a_busy_customers_messages_by_event_time_embedded_and_on_moto() {
    // One customer, 5,000 services over three years, up to two days late, with redeliveries.
    // The three years end before today: the enricher refuses events from its future.
    let corpus = Corpus::generate(CorpusSpec {
        seed: 14,
        distinct_events: 5_000,
        duplicates: 500,
        customers: 1,
        start: Utc.with_ymd_and_hms(2022, 1, 1, 0, 0, 0).unwrap(),
        span: Duration::days(3 * 365),
        ..CorpusSpec::default()
    })
    .unwrap();
    let occurred: HashMap<&str, DateTime<Utc>> = corpus
        .deliveries
        .iter()
        .map(|delivery| (delivery.event_id.as_str(), delivery.occurred_at))
        .collect();
    let file = write_jsonl(
        "busy-customer",
        corpus.deliveries.iter().map(|d| d.body.clone()),
    );
    let args = ["run", "--json", "--cooldown", "7d", path_str(&file)];
    let embedded = referral_json(&args, None);
    let names = fresh_names();
    let mut remote_args: Vec<&str> = args.to_vec();
    remote_args.extend(names.iter().map(String::as_str));
    let remote = referral_json(&remote_args, Some(&endpoint()));
    std::fs::remove_file(&file).ok();

    assert_eq!(embedded["summary"]["applied"], 5_000);
    assert_eq!(embedded["summary"]["rejected"], 0);
    let messages = embedded["messages"].as_array().unwrap();
    assert!(
        (100..=157).contains(&messages.len()),
        "{} messages: at most one per 7 days of three years",
        messages.len()
    );
    let times: Vec<DateTime<Utc>> = messages
        .iter()
        .map(|message| occurred[message["trigger_event_id"].as_str().unwrap()])
        .collect();
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::days(7),
            "messages at {} and {}",
            pair[0],
            pair[1]
        );
    }
    // Every other change is suppressed, for the cooldown: one outcome per change.
    let suppressed = embedded["suppressed"].as_array().unwrap();
    assert!(suppressed.iter().all(|entry| entry["reason"] == "cooldown"));
    let mut versions: Vec<u64> = changes(&embedded["messages"])
        .into_iter()
        .chain(changes(&embedded["suppressed"]))
        .map(|(_, version)| version)
        .collect();
    versions.sort_unstable();
    let last = embedded["features"][0]["version"].as_u64().unwrap();
    assert_eq!(versions, (1..=last).collect::<Vec<u64>>());
    assert_eq!(
        embedded["summary"]["suppressed"].as_u64(),
        Some(suppressed.len() as u64)
    );

    assert_eq!(remote["messages"], embedded["messages"]);
    assert_eq!(remote["suppressed"], embedded["suppressed"]);
    assert_eq!(remote["summary"], embedded["summary"]);
}

#[test]
fn a_satisfaction_floor_holds_back_the_unhappy_until_their_average_recovers() {
    let corpus = Corpus::issue_shape();
    let file = write_jsonl(
        "satisfaction",
        corpus.deliveries.iter().map(|d| d.body.clone()),
    );
    // One event per write, so a customer's version n is their n-th distinct event.
    let run = referral_json(
        &[
            "run",
            "--json",
            "--batch-size",
            "1",
            "--min-satisfaction",
            "3.5",
            path_str(&file),
        ],
        None,
    );
    std::fs::remove_file(&file).ok();

    // Each customer's average at each version, in millionths, from the corpus alone.
    let mut seen = BTreeSet::new();
    let mut sums: HashMap<String, (u64, u64)> = HashMap::new();
    let mut at_least: BTreeMap<(String, u64), bool> = BTreeMap::new();
    let mut version: HashMap<String, u64> = HashMap::new();
    for delivery in &corpus.deliveries {
        if !seen.insert(delivery.event_id.clone()) {
            continue;
        }
        let body: Value = serde_json::from_str(&delivery.body).unwrap();
        let (sum, count) = sums.entry(delivery.customer.clone()).or_default();
        if let Some(score) = body["service"]["satisfaction_score"].as_f64() {
            *sum += (score * 1e6).round() as u64;
            *count += 1;
        }
        let recovered = match *count {
            0 => true,
            n => *sum >= 3_500_000 * n,
        };
        let v = version.entry(delivery.customer.clone()).or_default();
        *v += 1;
        at_least.insert((delivery.customer.clone(), *v), recovered);
    }

    let messages = changes(&run["messages"]);
    let suppressed = changes(&run["suppressed"]);
    assert_eq!(messages.len() + suppressed.len(), at_least.len());
    for change in &messages {
        assert!(
            at_least[change],
            "a message at an average below 3.5: {change:?}"
        );
    }
    for (change, entry) in suppressed.iter().zip(run["suppressed"].as_array().unwrap()) {
        assert_eq!(entry["reason"], "satisfaction");
        assert!(!at_least[change], "suppressed at 3.5 or more: {change:?}");
    }
    // Someone fell below the floor and came back above it: they get messages again.
    let recovered = suppressed.iter().any(|(customer, low)| {
        messages
            .iter()
            .any(|(other, version)| other == customer && version > low)
    });
    assert!(recovered, "no customer recovered in this corpus");
}

#[test]
fn messages_preview_decides_from_reads_and_writes_nothing() {
    let url = endpoint();
    let names = fresh_names();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let event = |id: &str, day: &str, score: f64| {
        json!({
            "event_id": id, "event_type": "service.completed",
            "occurred_at": format!("2026-03-{day}T10:00:00Z"),
            "customer": {"email": "Pat@Example.com", "name": "Pat",
                         "address": {"city": "Austin", "state": "TX"}},
            "service": {"id": id, "type": "lawn_care", "satisfaction_score": score}
        })
        .to_string()
    };
    // Day 1: a message; day 4, a separate write: within the 7-day cooldown.
    let first = write_jsonl("preview-1", [event("p1", "01", 5.0)]);
    let second = write_jsonl("preview-2", [event("p2", "04", 4.0)]);
    for file in [&first, &second] {
        let mut args = vec!["run", "--json", "--cooldown", "7d", path_str(file)];
        args.extend(&names);
        referral_json(&args, Some(&url));
        std::fs::remove_file(file).ok();
    }
    // The features and messages tables' flags, without the archive's and the queues'.
    let tables = [&names[..2], &names[4..6]].concat();
    let preview = |policy: &[&str]| {
        let mut args = vec!["messages", "preview", "pat@example.com", "--json"];
        args.extend(&tables);
        args.extend(policy);
        referral_json(&args, Some(&url))
    };
    let list = || {
        let mut args = vec!["messages", "list", "pat@example.com"];
        args.extend(&tables[2..4]);
        referral_json(&args, Some(&url))
    };
    let items = || async {
        let sdk = referral_tests::emulator::sdk_config().await;
        aws_sdk_dynamodb::Client::new(&sdk)
            .scan()
            .table_name(tables[3])
            .select(aws_sdk_dynamodb::types::Select::Count)
            .send()
            .await
            .unwrap()
            .count
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let before = (list(), runtime.block_on(items()));

    let cooling = preview(&["--cooldown", "7d"]);
    assert_eq!(cooling["features_version"], 2);
    assert_eq!(cooling["decision"], "suppressed");
    assert_eq!(cooling["reason"], "cooldown");
    assert_eq!(cooling["message_slot"]["version"], 1);
    assert_eq!(cooling["recorded"], "suppressed: cooldown");
    assert!(
        cooling["prompt"]
            .as_str()
            .unwrap()
            .contains("Average Satisfaction Score: 4.5/5.0")
    );

    let open = preview(&[]);
    assert_eq!(open["decision"], "message");
    assert_eq!(open["generator"], "model");
    let spent = preview(&["--daily-model-budget", "0"]);
    assert_eq!(spent["generator"], "template");
    assert_eq!(spent["fallback_reason"], "budget");
    assert_eq!(spent["model_calls_today"], 0);
    let unhappy = preview(&["--min-satisfaction", "4.6"]);
    assert_eq!(unhappy["reason"], "satisfaction");

    let after = (list(), runtime.block_on(items()));
    assert_eq!(after, before, "the preview wrote nothing");
}
