//! The three functions' binaries run as Lambda runs them (`referral invoke`) against moto's
//! server (`REFERRAL_TEST_ENDPOINT`), fed with events from `referral events`: what each
//! answers, what it leaves in the queues and tables, and its metrics line, which must be
//! valid CloudWatch embedded metric format.
//!
//! Which binaries: with `REFERRAL_SMOKE_BINARIES=DIR`, the `sam build` output in DIR
//! (`DIR/<Function>/bootstrap`: release builds made as they are deployed; `infra/smoke.sh`
//! runs this file so in CI); without it, the debug builds that `tests/run.sh` makes. Either
//! way a missing binary fails the test, saying how to build it.
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

mod common;
#[path = "smoke/emf.rs"]
mod emf;
use common::function_binaries;

use aws_sdk_sqs::types::MessageSystemAttributeName;
use function_binaries::{generated, invoke, workspace};
use referral_aws::dynamo::{DynamoFeatureStore, DynamoMessageStore};
use referral_domain::ports::{FeatureStore, MessageStore};
use referral_domain::template::TEMPLATE_GENERATOR;
use referral_tests::emulator::{fresh_queues, fresh_tables, queue_depth, sdk_config};
use serde_json::Value;

const SECRET: &str = "whsec_smoke_test_secret_0123";
const VALID: &str = "events/webhooks/valid";
/// Nothing listens there: Bedrock calls fail at once, and the template writes the message.
const DEAD_BEDROCK: &str = "http://127.0.0.1:9";

/// The function's EMF lines, each validated; their metric values by name, summed.
fn metrics(log: &str, service: &str) -> std::collections::BTreeMap<String, f64> {
    let lines = emf::lines(log);
    assert!(
        !lines.is_empty(),
        "no EMF line in the {service} log:\n{log}"
    );
    let mut totals = std::collections::BTreeMap::new();
    for line in &lines {
        let names = emf::validate(line).unwrap_or_else(|e| panic!("invalid EMF ({e}): {line}"));
        assert_eq!(line["service"], service, "{line}");
        for name in names {
            *totals.entry(name.clone()).or_insert(0.0) += line[&name].as_f64().unwrap();
        }
    }
    totals
}

fn queue_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

fn status(answer: &Value) -> (u64, Value) {
    let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    (answer["statusCode"].as_u64().unwrap(), body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_accepts_signed_webhooks_and_refuses_the_rest() {
    let config = sdk_config().await;
    let queues = fresh_queues(&config, 5).await;
    let jane = format!("{VALID}/01-jane-doe-first-service.json");
    // A valid webhook past the queue's 256 KiB.
    let big = std::env::temp_dir().join(format!("referral-smoke-big-{}.json", std::process::id()));
    let padding = "x".repeat(300 * 1024);
    let webhook = std::fs::read_to_string(workspace().join(&jane)).unwrap();
    let webhook = webhook.replacen('{', &format!("{{\"notes\":\"{padding}\","), 1);
    std::fs::write(&big, webhook).unwrap();
    let big = big.to_str().unwrap().to_owned();

    let now = ["--secret", SECRET, "--timestamp", "now"];
    let requests = [
        generated(&[&["apigw", &jane][..], &now].concat()),
        generated(&["apigw", &jane, "--unsigned"]),
        // Signed properly, but long ago: a replay.
        generated(&[
            "apigw",
            &jane,
            "--secret",
            SECRET,
            "--timestamp",
            "1768230247",
        ]),
        generated(&[&["apigw", &big][..], &now].concat()),
    ]
    .concat();
    let args = [
        "--queue",
        queue_name(&queues.url),
        "--webhook-secrets",
        SECRET,
    ];
    let (answers, log) = invoke("ingest", "IngestFunction", &requests, &args);
    let _ = std::fs::remove_file(&big);
    let answers: Vec<(u64, Value)> = answers.iter().map(status).collect();
    assert_eq!(answers[0].0, 202, "{answers:?}\n{log}");
    assert_eq!(answers[0].1["event_id"], "evt_01KESBRMM8A7S6MM0A78RMXX32");
    assert_eq!(
        (answers[1].0, &answers[1].1["reason"]),
        (401, &"missing".into())
    );
    assert_eq!(
        (answers[2].0, &answers[2].1["reason"]),
        (401, &"stale".into())
    );
    assert_eq!(answers[3].0, 413, "{answers:?}");
    assert_eq!(answers.len(), 4);

    // Only the signed webhook is queued, exactly as `referral events sqs` says it will be.
    let sqs = aws_sdk_sqs::Client::new(&config);
    assert_eq!(queue_depth(&sqs, &queues.url).await, (1, 0));
    let received = sqs
        .receive_message()
        .queue_url(&queues.url)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap();
    let message = &received.messages.unwrap_or_default()[0];
    let expected: Value = serde_json::from_str(&generated(&["sqs", &jane])).unwrap();
    let expected = &expected["Records"][0];
    assert_eq!(message.body.as_deref(), expected["body"].as_str());
    assert_eq!(
        message.md5_of_body.as_deref(),
        expected["md5OfBody"].as_str()
    );
    // What `referral events sqs` generates is what ingest queued, but for the trace ingest
    // started at random (`events` output is reproducible); SQS's digest of the attributes
    // is the one the fixtures compute, trace included.
    let mut received: Vec<(&str, &str)> = message
        .message_attributes
        .iter()
        .flatten()
        .map(|(name, value)| (name.as_str(), value.string_value().unwrap()))
        .collect();
    received.sort_unstable();
    assert_eq!(
        message.md5_of_message_attributes.as_deref(),
        Some(referral_fixtures::md5::string_attributes_digest(&received).as_str())
    );
    let trace = received
        .iter()
        .position(|(name, _)| *name == "traceparent")
        .map(|index| received.remove(index).1)
        .expect("ingest queues a traceparent");
    assert!(
        referral_domain::trace::TraceContext::parse(trace).is_ok(),
        "{trace}"
    );
    let generated: Vec<(&str, &str)> = expected["messageAttributes"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, value)| (name.as_str(), value["stringValue"].as_str().unwrap()))
        .collect();
    assert_eq!(received, generated);

    let counted = metrics(&log, "ingest");
    assert_eq!(counted["requests"], 4.0);
    assert_eq!(counted["accepted"], 1.0);
    assert_eq!(counted["unauthorized"], 2.0);
    assert_eq!(counted["too_large"], 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enricher_writes_features_and_dead_letters_the_poison_message() {
    let config = sdk_config().await;
    let (tables, _stream) = fresh_tables(&config).await;
    let queues = fresh_queues(&config, 5).await;
    let batch = generated(&[
        "sqs",
        &format!("{VALID}/01-jane-doe-first-service.json"),
        &format!("{VALID}/05-jane-doe-redelivered.json"),
        &format!("{VALID}/10-noah-kim-minimal.json"),
        "events/webhooks/invalid/body--not-json.json",
    ]);
    let args = [
        "--features-table",
        &tables.features,
        "--archive-table",
        &tables.archive,
        "--dlq",
        queue_name(&queues.dlq_url),
    ];
    let (answers, log) = invoke("enricher", "EnricherFunction", &batch, &args);
    assert_eq!(
        answers,
        [serde_json::json!({ "batchItemFailures": [] })],
        "{log}"
    );

    let store = DynamoFeatureStore::new(aws_sdk_dynamodb::Client::new(&config), tables.features);
    for email in ["jane.doe@example.com", "noah.kim@example.com"] {
        let features = store.load(email).await.unwrap();
        assert_eq!(
            features.map(|f| f.events_applied),
            Some(1),
            "{email}\n{log}"
        );
    }
    let sqs = aws_sdk_sqs::Client::new(&config);
    let dead = sqs
        .receive_message()
        .queue_url(&queues.dlq_url)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(dead.len(), 1, "{log}");
    let reason = dead[0].message_attributes.clone().unwrap_or_default();
    let kind = reason
        .get("error_kind")
        .and_then(|v| v.string_value.clone());
    assert!(kind.is_some_and(|kind| !kind.is_empty()), "{reason:?}");
    assert!(
        dead[0]
            .body
            .as_deref()
            .unwrap()
            .starts_with("event_id=evt_01M5Q2XG")
    );

    let counted = metrics(&log, "enricher");
    assert_eq!(
        (
            counted["applied"],
            counted["duplicate"],
            counted["rejected"]
        ),
        (2.0, 1.0, 1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestrator_writes_one_message_per_change_with_the_template_when_bedrock_is_down() {
    let config = sdk_config().await;
    let (tables, _stream) = fresh_tables(&config).await;
    // Jane's item created, Noah's created, Jane's changed: three writes, three records.
    let records = generated(&[
        "stream",
        &format!("{VALID}/01-jane-doe-first-service.json"),
        &format!("{VALID}/10-noah-kim-minimal.json"),
        &format!("{VALID}/12-jane-doe-late-arrival.json"),
        "--batch-size",
        "1",
    ]);
    let bedrock = format!("AWS_ENDPOINT_URL_BEDROCK_RUNTIME={DEAD_BEDROCK}");
    let args = [
        "--messages-table",
        &tables.messages,
        "--env",
        &bedrock,
        "--env",
        "BEDROCK_TIMEOUT_MS=2000",
    ];
    let (answers, log) = invoke("orchestrator", "OrchestratorFunction", &records, &args);
    assert_eq!(
        answers,
        [serde_json::json!({ "batchItemFailures": [] })],
        "{log}"
    );

    let store = DynamoMessageStore::new(aws_sdk_dynamodb::Client::new(&config), tables.messages);
    let mut written = 0;
    for (email, changes) in [("jane.doe@example.com", 2), ("noah.kim@example.com", 1)] {
        let messages = store.list(email).await.unwrap();
        assert_eq!(messages.len(), changes, "{email}\n{log}");
        for message in &messages {
            assert_eq!(message.generator, TEMPLATE_GENERATOR, "{email}");
            assert!(!message.body.is_empty());
        }
        written += messages.len();
    }
    assert_eq!(written, 3);

    let counted = metrics(&log, "orchestrator");
    assert_eq!(counted["created"], 3.0);
    assert_eq!(counted["created_by_template"], 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestrator_applies_the_message_policy_its_environment_sets_and_counts_it() {
    use referral_domain::ports::Decision;

    let config = sdk_config().await;
    let (tables, _stream) = fresh_tables(&config).await;
    // Jane's first service, Noah's (unscored), Tom's (scored 0), then Jane's late arrival,
    // which occurred two months before her first: four writes, four records.
    let records = generated(&[
        "stream",
        &format!("{VALID}/01-jane-doe-first-service.json"),
        &format!("{VALID}/10-noah-kim-minimal.json"),
        &format!("{VALID}/03-tom-becker-zero-score.json"),
        &format!("{VALID}/12-jane-doe-late-arrival.json"),
        "--batch-size",
        "1",
    ]);
    let bedrock = format!("AWS_ENDPOINT_URL_BEDROCK_RUNTIME={DEAD_BEDROCK}");
    let args = [
        "--messages-table",
        &tables.messages,
        "--env",
        &bedrock,
        "--env",
        "MESSAGE_COOLDOWN=7d",
        "--env",
        "MESSAGE_MIN_TRIGGER_SCORE=1",
        "--env",
        "BEDROCK_DAILY_CALL_BUDGET=0",
    ];
    let (answers, log) = invoke("orchestrator", "OrchestratorFunction", &records, &args);
    assert_eq!(
        answers,
        [serde_json::json!({ "batchItemFailures": [] })],
        "{log}"
    );

    // One outcome per change: a message the template wrote for want of budget (no model
    // call: Bedrock's address answers nothing, and no other reason shows), or a suppression.
    let store = DynamoMessageStore::new(aws_sdk_dynamodb::Client::new(&config), tables.messages);
    let mut outcomes = Vec::new();
    for email in [
        "jane.doe@example.com",
        "noah.kim@example.com",
        "tom.becker@example.org",
    ] {
        for decision in store.decisions(email).await.unwrap() {
            outcomes.push(match decision {
                Decision::Message(message) => {
                    assert_eq!(message.generator, TEMPLATE_GENERATOR, "{email}");
                    (email, message.features_version, message.fallback_reason)
                }
                Decision::Suppressed(suppression) => (
                    email,
                    suppression.features_version,
                    Some(format!("suppressed: {}", suppression.reason)),
                ),
            });
        }
    }
    let reason = |text: &str| Some(text.to_owned());
    assert_eq!(
        outcomes,
        [
            ("jane.doe@example.com", 1, reason("budget")),
            ("jane.doe@example.com", 2, reason("suppressed: cooldown")),
            ("noah.kim@example.com", 1, reason("budget")),
            (
                "tom.becker@example.org",
                1,
                reason("suppressed: trigger_score")
            ),
        ],
        "{log}"
    );

    let counted = metrics(&log, "orchestrator");
    assert_eq!(counted["created"], 2.0);
    assert_eq!(counted["budget_exhausted"], 2.0);
    assert_eq!(counted["suppressed"], 2.0);
    assert_eq!(counted["suppressed_cooldown"], 1.0);
    assert_eq!(counted["suppressed_trigger_score"], 1.0);
    assert_eq!(counted["suppressed_satisfaction"], 0.0);
    // The generator's own counts: Bedrock was never tried.
    assert_eq!(counted["primary_ok"] + counted["fallback_unavailable"], 0.0);
}
