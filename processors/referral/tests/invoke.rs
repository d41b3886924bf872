//! `referral invoke` and its runner on the real Lambda binaries of this workspace: the
//! ingest function refusing unsigned requests, init errors, one invocation per JSONL line,
//! and (against moto's server) a signed webhook reaching the queue and an SQS batch
//! reaching the features table through the enricher.
//!
//! The Lambda binaries are the debug builds `tests/run.sh` makes (see
//! `common/lambda_binaries.rs`); the tests fail saying how to build them when they are
//! missing or older than their sources.
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::process::Output;
use std::time::Duration;

use referral_lambda_emulator::{FunctionSpec, InvocationOutcome, Payload, run_function};
use serde_json::{Value, json};

/// Nothing listens there: a function that tried AWS would fail, not reach anything.
const DEAD_ENDPOINT: &str = "http://127.0.0.1:9";
const SECRET: &str = "whsec_invoke_test_secret_0123";

mod common;
use common::lambda_binaries;
use lambda_binaries::{lambda_binary, run_referral, workspace};

fn fixture(name: &str) -> Value {
    let path = workspace().join("events/lambda").join(name);
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// The API Gateway fixture without its signature header.
fn unsigned_request() -> Value {
    let mut request = fixture("apigw-http-v2-request.json");
    request["headers"]
        .as_object_mut()
        .unwrap()
        .remove("x-signature");
    request
}

/// `referral invoke FUNCTION ARGS` in the workspace, `stdin` fed to it. Variables the
/// command reads are cleared, so only the arguments count.
fn invoke(function: &str, args: &[&str], stdin: &[u8]) -> Output {
    run_referral(&[&["invoke", function][..], args].concat(), stdin)
}

fn stdout_lines(output: &Output) -> Vec<Value> {
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("each stdout line is JSON"))
        .collect()
}

fn show(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The ingest handler's answer in an API Gateway response: status and parsed body.
fn http_answer(response: &Value) -> (u64, Value) {
    let body = response["body"].as_str().expect("a body");
    (
        response["statusCode"].as_u64().expect("a status code"),
        serde_json::from_str(body).expect("a JSON body"),
    )
}

#[test]
fn an_unsigned_request_is_answered_401_by_the_ingest_binary() {
    let ingest = lambda_binary("ingest");
    let event = unsigned_request().to_string();
    let args = ["--event", "-", "--endpoint-url", DEAD_ENDPOINT, "--binary"];
    let output = invoke(
        "ingest",
        &[&args[..], &[ingest.to_str().unwrap()]].concat(),
        event.as_bytes(),
    );
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 1, "{}", show(&output));
    let (status, body) = http_answer(&lines[0]);
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_signature");
    assert_eq!(body["reason"], "missing");
    // The function's own JSON log line went to stderr.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .lines()
            .any(|line| line.contains("\"reason\":\"missing\"") && line.starts_with('{')),
        "{}",
        show(&output)
    );
}

#[test]
fn each_jsonl_line_is_one_invocation_answered_in_order() {
    let ingest = lambda_binary("ingest");
    let mut not_post = unsigned_request();
    not_post["requestContext"]["http"]["method"] = Value::from("GET");
    let jsonl = format!(
        "{}\n{}\n{}\n",
        unsigned_request(),
        fixture("apigw-http-v2-request.json"),
        not_post
    );
    let output = invoke(
        "ingest",
        &[
            "--event",
            "-",
            "--queue",
            "http://127.0.0.1:9/123456789012/q",
            "--binary",
            ingest.to_str().unwrap(),
        ],
        jsonl.as_bytes(),
    );
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let answers: Vec<(u64, Value)> = stdout_lines(&output).iter().map(http_answer).collect();
    assert_eq!(answers.len(), 3, "{}", show(&output));
    assert_eq!(
        (answers[0].0, &answers[0].1["reason"]),
        (401, &Value::from("missing"))
    );
    // Signed with a secret this run does not have.
    assert_eq!(
        (answers[1].0, &answers[1].1["reason"]),
        (401, &Value::from("mismatch"))
    );
    assert_eq!(answers[2].0, 405);
}

#[test]
fn a_missing_variable_is_an_init_error_with_exit_status_2() {
    let ingest = lambda_binary("ingest");
    let event = unsigned_request().to_string();
    let output = invoke(
        "ingest",
        &[
            "--event",
            "-",
            "--endpoint-url",
            DEAD_ENDPOINT,
            "--env",
            "WEBHOOK_SECRETS=",
            "--binary",
            ingest.to_str().unwrap(),
        ],
        event.as_bytes(),
    );
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    assert!(output.stdout.is_empty(), "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The function's own message, then the init error as the Runtime API saw it.
    assert!(stderr.contains("WEBHOOK_SECRETS"), "{}", show(&output));
    assert!(
        stderr.contains("Runtime.ExitError") && stderr.contains("exit status 1"),
        "{}",
        show(&output)
    );
}

#[test]
fn a_bad_message_policy_setting_stops_the_orchestrator_at_start_up_naming_it() {
    let orchestrator = lambda_binary("orchestrator");
    let event = fixture("dynamodb-stream-insert-modify.json").to_string();
    for (variable, value, remedy) in [
        ("MESSAGE_COOLDOWN", "7", "e.g. 7d"),
        ("MESSAGE_MIN_SATISFACTION_AVG", "6", "from 0 to 5"),
        ("MESSAGE_MIN_TRIGGER_SCORE", "low", "from 0 to 5"),
        ("BEDROCK_DAILY_CALL_BUDGET", "-1", "whole number"),
    ] {
        let setting = format!("{variable}={value}");
        let output = invoke(
            "orchestrator",
            &[
                "--event",
                "-",
                "--endpoint-url",
                DEAD_ENDPOINT,
                "--env",
                &setting,
                "--binary",
                orchestrator.to_str().unwrap(),
            ],
            event.as_bytes(),
        );
        assert_eq!(output.status.code(), Some(2), "{}", show(&output));
        assert!(output.stdout.is_empty(), "{}", show(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        let named = format!("environment variable {variable} must be");
        assert!(
            stderr.contains(&named) && stderr.contains(remedy),
            "{}",
            show(&output)
        );
    }
}

#[test]
fn a_variable_invoke_cannot_fill_is_named_before_anything_runs() {
    let ingest = lambda_binary("ingest");
    let event = unsigned_request().to_string();
    let output = invoke(
        "ingest",
        &["--event", "-", "--binary", ingest.to_str().unwrap()],
        event.as_bytes(),
    );
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "one line, no function log: {}",
        show(&output)
    );
    assert!(lines[0].contains("WEBHOOK_QUEUE_URL"), "{}", show(&output));
    assert!(lines[0].contains("--endpoint-url"), "{}", show(&output));
}

/// A request the eraser cannot act on is refused naming the field, before any AWS call (the
/// endpoint is a closed loopback port).
#[test]
fn the_eraser_refuses_a_bad_request_naming_the_field() {
    let eraser = lambda_binary("eraser");
    let events = [
        json!({"emails": []}),
        json!({"emails": "jane.doe@example.com"}),
        json!({"emails": ["jane.doe@example.com"], "dryrun": true}),
    ]
    .map(|event| event.to_string())
    .join("\n");
    let args = [
        "--event",
        "-",
        "--endpoint-url",
        "http://127.0.0.1:9",
        "--binary",
        eraser.to_str().unwrap(),
    ];
    let output = invoke("eraser", &args, events.as_bytes());
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let messages: Vec<String> = stdout_lines(&output)
        .iter()
        .map(|line| line["errorMessage"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        messages,
        [
            "emails: the list is empty: name at least one address",
            "emails: must be a list of addresses",
            "dryrun: unknown field (expected emails, dry_run)",
        ],
        "{}",
        show(&output)
    );
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains("jane.doe"),
        "{}",
        show(&output)
    );
}

#[test]
fn a_missing_binary_says_how_to_build_it() {
    let output = invoke(
        "enricher",
        &[
            "--event",
            "events/lambda/sqs-batch.json",
            "--endpoint-url",
            DEAD_ENDPOINT,
            "--binary",
            "target/no-such-bootstrap",
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("infra/build.sh"), "{}", show(&output));
}

/// The runner's API on the ingest binary: one process for every event, measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_reports_responses_and_measures_the_process() {
    let mut spec = FunctionSpec::new(lambda_binary("ingest"), "ingest");
    spec.env = [
        ("WEBHOOK_SECRETS", SECRET),
        ("WEBHOOK_QUEUE_URL", "http://127.0.0.1:9/123456789012/q"),
        ("AWS_ENDPOINT_URL", DEAD_ENDPOINT),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect();
    spec.timeout = Duration::from_secs(10);
    let events = (0..3).map(|_| unsigned_request().to_string().into_bytes());
    let stats = run_function(&spec, events).await.unwrap();

    assert!(stats.init_error.is_none(), "{stats:?}");
    assert_eq!(stats.processes_started, 1);
    assert_eq!(stats.invocations.len(), 3);
    for invocation in &stats.invocations {
        let InvocationOutcome::Response(Payload::Json(response)) = &invocation.outcome else {
            panic!("expected a JSON response: {invocation:?}");
        };
        assert_eq!(response["statusCode"], 401);
        assert!(invocation.duration < spec.timeout);
    }
    let ids: std::collections::BTreeSet<&str> = stats
        .invocations
        .iter()
        .map(|i| i.request_id.as_str())
        .collect();
    assert_eq!(ids.len(), 3, "a request id per invocation");
    assert!(stats.spawn_to_first_poll.is_some());
    if cfg!(target_os = "linux") {
        // Read from /proc before the process was stopped (CPU time may round to zero).
        assert!(stats.peak_rss_kb.is_some_and(|kb| kb > 1000), "{stats:?}");
    }
    // Killed by the runner while it waited for another event, as Lambda ends an idle
    // sandbox: not exited by itself (as it does when its poll fails).
    let status = stats.exit_status.expect("the process was reaped");
    assert_eq!(status.code(), None, "{status:?}");
}

#[path = "invoke/moto.rs"]
mod moto;
