//! `referral local serve` with no endpoint: the whole pipeline on the embedded adapters, no
//! emulator and no credentials. A signed webhook is in the customer's features and messages
//! moments later; an invalid one is refused naming its field and stored nowhere; a late
//! event for a known customer is refused by the enricher and shows up in the dead letters.
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

mod common;
use common::serve;

use std::time::{Duration, Instant};

use referral_tests::event_body;
use serde_json::{Value, json};
use serve::Server;

const DAY: i64 = 24 * 60;

/// Polls `GET path` until `done` holds for its answer; the time it took.
fn wait_for(server: &Server, path: &str, done: impl Fn(u16, &Value) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        let (status, body) = server.get(path);
        if done(status, &body) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "GET {path} still answers {status} {body}; server log:\n{}",
            server.log.lock().map(|log| log.clone()).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A valid webhook for `customer` at `minute`, with a plausible square footage whatever
/// the minute (the harness derives it from the minute).
fn webhook(event_id: &str, customer: &str, minute: i64, score: f64) -> Value {
    let mut body = event_body(event_id, customer, minute, Some(score));
    body["property_info"]["square_feet"] = json!(2000);
    body
}

#[test]
fn a_webhook_reaches_features_and_messages_with_no_emulator() {
    // No endpoint, no credentials, no region: nothing for an AWS client to use.
    let mut server = Server::start(&[]);
    let customer = "Pat.Lee@Example.com";
    let first = webhook("serve-embedded-1", customer, DAY * 5, 4.5);

    let (status, answer) = server.post_signed(&first.to_string());
    assert_eq!(status, 202, "{answer}");
    let features_took = wait_for(&server, "/features/pat.lee%40example.com", |status, _| {
        status == 200
    });
    let messages_took = wait_for(&server, "/messages/pat.lee@example.com", |_, messages| {
        messages.as_array().is_some_and(|list| list.len() == 1)
    });
    println!(
        "signed webhook → features in {} ms, message in {} ms",
        features_took.as_millis(),
        messages_took.as_millis()
    );
    let (_, features) = server.get("/features/pat.lee@example.com");
    assert_eq!(features["customerEmail"], json!("pat.lee@example.com"));
    assert_eq!(features["service_count"], json!(1));

    // Refused at the door: 400 naming the field, and nothing of it anywhere.
    let mut invalid = event_body("serve-embedded-bad", "kim.ray@example.com", 1, Some(9.0));
    invalid["service"]["satisfaction_score"] = json!(9.0);
    let (status, answer) = server.post_signed(&invalid.to_string());
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("service.satisfaction_score"), "{answer}");
    let (status, unsigned) = server.post_unsigned(&first.to_string());
    assert_eq!(status, 401, "{unsigned}");
    assert_eq!(server.get("/features/kim.ray@example.com").0, 404);
    assert_eq!(
        server.get("/messages/kim.ray@example.com"),
        (200, json!([]))
    );
    assert_eq!(server.get("/dead-letters"), (200, json!([])));

    // Valid at the door: an event older than everything the item itself still remembers is
    // applied all the same (its id is checked in the archive); one that reuses an applied id
    // with other content is refused by the enricher and dead-lettered.
    for day in 2..=30_i64 {
        let body = webhook(
            &format!("serve-embedded-{day}"),
            customer,
            DAY * 5 * day,
            4.5,
        );
        let (status, answer) = server.post_signed(&body.to_string());
        assert_eq!(status, 202, "{answer}");
    }
    wait_for(&server, "/features/pat.lee@example.com", |_, features| {
        features["service_count"] == json!(30)
    });
    let late = webhook("serve-embedded-late", customer, 0, 4.0);
    assert_eq!(server.post_signed(&late.to_string()).0, 202);
    wait_for(&server, "/features/pat.lee@example.com", |_, features| {
        features["service_count"] == json!(31)
    });
    let conflicting = webhook("serve-embedded-2", customer, DAY * 10, 1.0);
    assert_eq!(server.post_signed(&conflicting.to_string()).0, 202);
    wait_for(&server, "/dead-letters", |_, letters| {
        letters.as_array().is_some_and(|list| list.len() == 1)
    });
    let (_, letters) = server.get("/dead-letters");
    let letter = &letters[0];
    assert_eq!(
        letter["error_kind"],
        json!("conflicting_duplicate"),
        "{letter}"
    );
    assert_eq!(
        letter["body"]["event_id"],
        json!("serve-embedded-2"),
        "{letter}"
    );
    let shown = letter.to_string();
    assert!(
        !shown.to_lowercase().contains("pat.lee@example.com"),
        "a dead letter shows an e-mail address in clear: {shown}"
    );
    let (_, features) = server.get("/features/pat.lee@example.com");
    assert_eq!(
        features["service_count"],
        json!(31),
        "the conflicting duplicate was applied"
    );

    assert_eq!(server.get("/nothing-here").0, 404);
    assert_eq!(server.get("/features/not-an-address").0, 400);
    let status = server.interrupt();
    assert!(status.success(), "local serve exited with {status}");
}

#[test]
fn a_command_that_needs_aws_and_has_no_credentials_says_so_in_one_line() {
    let home = std::env::temp_dir().join(format!("referral-no-aws-{}", std::process::id()));
    std::fs::create_dir_all(&home).expect("temp home");
    for args in [
        &["features", "get", "someone@example.com"][..],
        &["local", "serve", "--aws", "--port", "0"][..],
        &["dlq", "stats", "referral-webhooks-dlq"][..],
    ] {
        let output = serve::referral()
            .args(args)
            .env("HOME", &home)
            .env("AWS_REGION", "us-east-1")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_CONFIG_FILE")
            .env_remove("AWS_SHARED_CREDENTIALS_FILE")
            .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
            .env_remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
            .env_remove("AWS_CONTAINER_CREDENTIALS_FULL_URI")
            .output()
            .expect("run referral");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|line| !line.trim().is_empty())
            .collect();
        assert_eq!(lines.len(), 1, "{args:?}: more than one line: {stderr}");
        assert!(
            lines[0].contains("no AWS credentials") && lines[0].contains("--endpoint-url"),
            "{args:?}: {stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(&home);
}
