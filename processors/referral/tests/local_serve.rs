//! `referral local serve` end to end against moto's server: 300 signed webhooks posted
//! concurrently by `referral local send` (20% duplicates) become every customer's features
//! and exactly one message per applied change; unsigned and invalid posts are refused; and
//! Ctrl-C stops the server with no message left in flight.
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

mod common;
use common::serve;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use referral_aws::dynamo::{DynamoFeatureStore, DynamoMessageStore};
use referral_domain::event::ServiceEvent;
use referral_domain::features::MemoryLimits;
use referral_domain::ports::{FeatureStore, MessageStore};
use referral_tests::emulator::{endpoint, queue_depth, sdk_config, unique};
use referral_tests::{comparable, event_body, expected_features, service_event};
use serde_json::json;
use serve::{SECRET, Server, referral};

/// The customer of the one unsigned post: refused, so never in the table.
const UNSIGNED_CUSTOMER: &str = "unsigned@example.com";

fn send(file: &Path, url: &str, secret: &str, extra: &[&str]) -> Output {
    referral()
        .args(["local", "send"])
        .arg(file)
        .args(["--url", url, "--secret", secret])
        .args(extra)
        .output()
        .expect("run referral local send")
}

fn write_jsonl(dir: &Path, name: &str, bodies: &[serde_json::Value]) -> PathBuf {
    let path = dir.join(name);
    let text: Vec<String> = bodies.iter().map(|body| body.to_string()).collect();
    std::fs::write(&path, text.join("\n")).expect("write the webhook file");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_concurrent_webhooks_end_in_features_and_one_message_per_change() {
    let url = endpoint();
    let config = sdk_config().await;
    let names = [
        unique("features"),
        unique("messages"),
        unique("queue"),
        unique("dlq"),
        unique("archive"),
    ];
    let mut server = Server::start(&[
        "--endpoint-url",
        &url,
        "--features-table",
        &names[0],
        "--archive-table",
        &names[4],
        "--messages-table",
        &names[1],
        "--queue",
        &names[2],
        "--dlq",
        &names[3],
    ]);
    let webhook_url = server.webhook_url();

    // 240 distinct events over 30 customers, and 60 re-sends of earlier ones (20%).
    let mut bodies: Vec<serde_json::Value> = (0..240)
        .map(|i| {
            event_body(
                &format!("e2e-{i:03}"),
                &format!("cust{:02}@example.com", i % 30),
                (i * 7 % 500) as i64,
                Some((i % 5) as f64 + 0.5),
            )
        })
        .collect();
    for i in 0..60 {
        bodies.push(bodies[i * 4].clone());
    }
    fastrand::seed(11);
    fastrand::shuffle(&mut bodies);
    let dir = std::env::temp_dir().join(unique("local-serve"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = write_jsonl(&dir, "load.jsonl", &bodies);

    let started = Instant::now();
    let sent = send(
        &file,
        &webhook_url,
        SECRET,
        &["--count", "300", "--concurrency", "32"],
    );
    let summary = String::from_utf8_lossy(&sent.stderr);
    assert!(sent.status.success(), "{summary}");
    // A re-send signed in the same second as its original is the same request: ingest
    // answers it 200 `already_accepted` without queuing it again.
    let answered = |status: &str| -> u64 {
        summary
            .split(&format!("{status}: "))
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|count| count.parse().ok())
            .unwrap_or(0)
    };
    assert_eq!(
        answered("202") + answered("200"),
        300,
        "every signed valid webhook is accepted: {summary}"
    );
    assert!(answered("202") >= 240, "{summary}");

    // Refusals: no signature, a wrong secret, and a signed but invalid event.
    let unsigned_body = event_body("e2e-unsigned", UNSIGNED_CUSTOMER, 1, Some(5.0));
    let (status, answer) = server.post_unsigned(&unsigned_body.to_string());
    assert_eq!(status, 401, "{answer}");
    let wrong_secret = send(
        &file,
        &webhook_url,
        "whsec_not_the_right_secret",
        &["--count", "3"],
    );
    assert!(String::from_utf8_lossy(&wrong_secret.stderr).contains("401: 3"));
    let mut invalid = event_body("e2e-invalid", "not-an-address", 1, None);
    invalid["customer"]["email"] = serde_json::json!("no-at-sign.example.com");
    let invalid_file = write_jsonl(&dir, "invalid.jsonl", &[invalid]);
    let refused = send(&invalid_file, &webhook_url, SECRET, &[]);
    let refused_text = String::from_utf8_lossy(&refused.stdout);
    assert!(
        refused_text.contains("400") && refused_text.contains("customer.email"),
        "{refused_text}"
    );

    // Within a bounded time every customer's item is the fold of its distinct events, with
    // one message per write.
    let events: Vec<ServiceEvent> = bodies.iter().map(service_event).collect();
    let expected = expected_features(&events, MemoryLimits::default());
    let store = DynamoFeatureStore::new(aws_sdk_dynamodb::Client::new(&config), names[0].clone());
    let messages =
        DynamoMessageStore::new(aws_sdk_dynamodb::Client::new(&config), names[1].clone());
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut pending: Vec<String> = expected.keys().cloned().collect();
    while !pending.is_empty() {
        assert!(
            Instant::now() < deadline,
            "not done in time: {} customers pending",
            pending.len()
        );
        let mut still = Vec::new();
        for email in pending {
            // While the server writes, a read may fail: moto creates an item a conditional
            // update makes (keys only) before it sets its attributes, and a concurrent query
            // can see it half-made. DynamoDB's updates are atomic; here, look again later.
            let done = match store.load(&email).await {
                Ok(Some(item))
                    if comparable(item.clone()) == comparable(expected[&email].clone()) =>
                {
                    messages
                        .list(&email)
                        .await
                        .is_ok_and(|listed| listed.len() as u64 == item.version)
                }
                _ => false,
            };
            if !done {
                still.push(email);
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    let elapsed = started.elapsed();
    println!(
        "300 webhooks (240 distinct events, 30 customers) through local serve in {:.2} s: {:.0} events/s",
        elapsed.as_secs_f64(),
        300.0 / elapsed.as_secs_f64()
    );
    // Nothing more arrives later: the counts stay exact.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        store.load(UNSIGNED_CUSTOMER).await.expect("load").is_none(),
        "an unsigned webhook reached the table"
    );
    for email in expected.keys() {
        let item = store.load(email).await.expect("load").expect("item");
        assert_eq!(
            messages.list(email).await.expect("list").len() as u64,
            item.version,
            "{email}"
        );
    }

    // The listener answers from the same tables and queues.
    let some_customer = expected.keys().next().expect("a customer");
    let (status, features) = server.get(&format!("/features/{some_customer}"));
    assert_eq!(status, 200, "{features}");
    assert_eq!(features["customerEmail"], json!(some_customer));
    let (status, listed) = server.get(&format!("/messages/{some_customer}"));
    assert_eq!(status, 200, "{listed}");
    assert_eq!(
        listed.as_array().map(Vec::len),
        Some(usize::try_from(features["version"].as_u64().expect("version")).expect("small"))
    );
    assert_eq!(server.get("/dead-letters"), (200, json!([])));

    // Ctrl-C: a clean stop, and nothing left in the queue or in flight.
    let status = server.interrupt();
    assert!(status.success(), "local serve exited with {status}");
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue_url = referral_aws_local::provision::queue_url(&sqs, &names[2])
        .await
        .expect("queue url");
    assert_eq!(
        queue_depth(&sqs, &queue_url).await,
        (0, 0),
        "messages left in the queue (visible, in flight)"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
