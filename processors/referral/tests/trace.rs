//! One trace from webhook to message, through the real path: a webhook posted to `referral
//! local serve` with a `traceparent` (ingest's handler, the queue, the enricher's handler,
//! the feature item and its stream record, the orchestrator) ends in a message record with
//! that trace id, shown by `GET /messages/{email}` and `referral messages list`, and every
//! line the three functions write for it carries the trace id. On moto and in memory; and
//! `referral run` gives each message the trace it started for its webhook, the same
//! embedded and on moto.
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

mod common;
use common::serve;

use std::time::{Duration, Instant};

use referral_tests::emulator::{endpoint, unique};
use referral_tests::event_body;
use serde_json::Value;
use serve::{Server, referral};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SENDERS_SPAN: &str = "00f067aa0ba902b7";

fn traceparent() -> String {
    format!("00-{TRACE_ID}-{SENDERS_SPAN}-01")
}

/// `--features-table NAME ...`: fresh resources of one test on moto.
fn fresh_names() -> Vec<String> {
    [
        ("--features-table", "features"),
        ("--archive-table", "archive"),
        ("--messages-table", "messages"),
        ("--queue", "queue"),
        ("--dlq", "dlq"),
    ]
    .iter()
    .flat_map(|(flag, name)| [(*flag).to_owned(), unique(name)])
    .collect()
}

/// The customer's messages once there are `count`, within 30 s.
fn messages_of(server: &Server, email: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, messages) = server.get(&format!("/messages/{email}"));
        assert_eq!(status, 200, "{messages}");
        let messages = messages.as_array().unwrap().clone();
        if messages.len() >= count {
            return messages;
        }
        assert!(
            Instant::now() < deadline,
            "no message for the webhook within 30 s: {}",
            server.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The log line with this message, carrying `trace_id`, within 10 s (the orchestrator's line
/// is written after the record it answers GET from).
fn line_of(server: &Server, message: &str, trace_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines = server.log_lines();
        let found = lines
            .iter()
            .find(|line| line["message"] == message && line["trace_id"] == trace_id);
        if let Some(line) = found {
            return line.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no `{message}` line with trace_id {trace_id}: {lines:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Posts two webhooks of one customer, one with the sender's trace and one without, and
/// checks the trace reaches the message record, the GET and every function's line. Returns
/// the customer.
fn one_trace_from_webhook_to_message(server: &Server) -> String {
    let email = format!("{}@example.com", unique("traced"));
    let traced = event_body(&unique("evt-traced"), &email, 1, Some(4.5));
    let (status, answer) =
        server.post_signed_with(&traced.to_string(), &[("traceparent", &traceparent())]);
    assert_eq!(status, 202, "{answer}");
    let messages = messages_of(server, &email, 1);
    assert_eq!(messages[0]["trace_id"], TRACE_ID, "{messages:?}");

    // Ingest's outcome line, the enricher's per-event line, the orchestrator's per-change
    // line; and the batch lines link the record's trace, continued by ingest's own span.
    let ingest = line_of(server, "webhook request handled", TRACE_ID);
    assert_eq!(ingest["status"], 202);
    let enricher = line_of(server, "message processed", TRACE_ID);
    assert_eq!(enricher["outcome"], "applied");
    let orchestrator = line_of(server, "record processed", TRACE_ID);
    assert_eq!(orchestrator["outcome"], "created");
    // The enricher's batch line and the stream mapping's, on moto and in memory alike.
    for batch_line in ["batch processed", "stream batch processed"] {
        let batch = server
            .log_lines()
            .into_iter()
            .find(|line| {
                line["message"] == batch_line
                    && line["links"]
                        .as_str()
                        .is_some_and(|links| links.contains(TRACE_ID))
            })
            .unwrap_or_else(|| {
                panic!(
                    "no `{batch_line}` line links the trace: {:#?}",
                    server.log_lines()
                )
            });
        let link = batch["links"].as_str().unwrap();
        assert!(
            !link.contains(SENDERS_SPAN),
            "the queued trace is ingest's span, not the sender's: {link}"
        );
    }
    for line in [&ingest, &enricher, &orchestrator] {
        assert!(
            !line.to_string().contains(&email),
            "an address logged: {line}"
        );
    }

    // A webhook without a trace gets one started at ingest, and its message has that one.
    let untraced = event_body(&unique("evt-untraced"), &email, 2, Some(4.0));
    let (status, answer) = server.post_signed(&untraced.to_string());
    assert_eq!(status, 202, "{answer}");
    let messages = messages_of(server, &email, 2);
    let started = messages[1]["trace_id"].as_str().unwrap();
    assert_eq!(started.len(), 32, "{messages:?}");
    assert_ne!(started, TRACE_ID);
    line_of(server, "record processed", started);
    email
}

#[test]
fn a_posted_traceparent_reaches_the_message_on_moto() {
    let url = endpoint();
    let names = fresh_names();
    let mut args = vec!["--endpoint-url", url.as_str()];
    args.extend(names.iter().map(String::as_str));
    let server = Server::start(&args);
    let email = one_trace_from_webhook_to_message(&server);

    // `referral messages list` shows it too, read from the table.
    let table = &names[names
        .iter()
        .position(|name| name == "--messages-table")
        .unwrap()
        + 1];
    let listed = referral()
        .args(["messages", "list", &email, "--messages-table", table])
        .args(["--endpoint-url", &url])
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["trace_id"], TRACE_ID, "{listed}");
}

#[test]
fn a_posted_traceparent_reaches_the_message_in_memory() {
    let server = Server::start(&[]);
    one_trace_from_webhook_to_message(&server);
}

/// `referral local send --traceparent` puts the webhooks it sends in the given trace; a value
/// that is not a traceparent is refused before anything is sent, naming the flag.
#[test]
fn local_send_joins_the_trace_it_is_given() {
    let server = Server::start(&[]);
    let email = format!("{}@example.com", unique("sent"));
    let dir = std::env::temp_dir().join(unique("trace-send"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("one.json");
    std::fs::write(
        &file,
        event_body(&unique("evt-sent"), &email, 1, Some(4.5)).to_string(),
    )
    .unwrap();
    let send = |traceparent: &str| {
        referral()
            .args(["local", "send", "--url", &server.webhook_url()])
            .args(["--traceparent", traceparent])
            .env("WEBHOOK_SECRET", serve::SECRET)
            .arg(&file)
            .output()
            .unwrap()
    };

    let refused = send("00-not-a-trace-01");
    assert_eq!(refused.status.code(), Some(2), "a usage error");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--traceparent"), "{stderr}");

    let sent = send(&traceparent());
    let stdout = String::from_utf8_lossy(&sent.stdout);
    assert!(
        sent.status.success() && stdout.contains(" 202 "),
        "{stdout}\n{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let messages = messages_of(&server, &email, 1);
    assert_eq!(messages[0]["trace_id"], TRACE_ID, "{messages:?}");
}

/// `referral run --json FILE [ARGS]`'s document.
fn run_json(file: &std::path::Path, extra: &[&str]) -> Value {
    let output = referral()
        .args(["run", "--json"])
        .arg(file)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn run_gives_each_message_the_trace_of_its_webhook_embedded_and_on_moto() {
    let dir = std::env::temp_dir().join(unique("trace-run"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("events.jsonl");
    let bodies: Vec<String> = (0..6)
        .map(|i| {
            event_body(
                &format!("run-{i}"),
                &format!("c{}@example.com", i % 3),
                i,
                Some(4.0),
            )
            .to_string()
        })
        .collect();
    std::fs::write(&file, bodies.join("\n")).unwrap();

    // One webhook a batch: a write, a message and a trace each.
    let one_by_one = run_json(&file, &["--batch-size", "1"]);
    let trace_of = |run: &Value, trigger: &str| -> String {
        let messages = run["messages"].as_array().unwrap();
        let message = messages
            .iter()
            .find(|message| message["trigger_event_id"] == trigger)
            .unwrap_or_else(|| panic!("no message triggered by {trigger}: {run}"));
        message["trace_id"].as_str().unwrap().to_owned()
    };
    let mut traces: Vec<String> = (0..6)
        .map(|i| trace_of(&one_by_one, &format!("run-{i}")))
        .collect();
    assert!(traces.iter().all(|trace| trace.len() == 32), "{traces:?}");
    traces.sort_unstable();
    traces.dedup();
    assert_eq!(traces.len(), 6, "one trace per webhook");

    // Both webhooks of a customer in one write: the message has the trace of the last one
    // applied (its trigger), the very trace that webhook had on its own.
    let embedded = run_json(&file, &[]);
    assert_eq!(
        embedded["messages"].as_array().unwrap().len(),
        3,
        "{embedded}"
    );
    for trigger in ["run-3", "run-4", "run-5"] {
        assert_eq!(trace_of(&embedded, trigger), trace_of(&one_by_one, trigger));
    }

    let url = endpoint();
    let names = fresh_names();
    let mut args = vec!["--endpoint-url", url.as_str()];
    args.extend(names.iter().map(String::as_str));
    let on_moto = run_json(&file, &args);
    assert_eq!(on_moto["messages"], embedded["messages"]);
}
