//! `referral run --json` over the fixtures in `events/webhooks`: every number checked
//! against the fold worked out independently of this code.
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use referral_domain::prompt::PROMPT_VERSION;
use serde_json::Value;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run_json(args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_referral"))
        .current_dir(workspace())
        .args(["run", "--json"])
        .args(args)
        // The embedded run needs no AWS: no endpoint (which would select the AWS-API run),
        // no credentials, and nothing to ask for them.
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("run the referral binary");
    assert!(
        output.status.success(),
        "referral run failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("--json prints one JSON document")
}

/// (email, avg, services, band, city, state, zip, type, sq ft, year, first_seen, last_updated)
type Row = (
    &'static str,
    f64,
    u64,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    u64,
    u64,
    &'static str,
    &'static str,
);

const EXPECTED: &[Row] = &[
    (
        "carlos.mendez@example.org",
        4.25,
        9,
        "high",
        "Tampa",
        "FL",
        "33602",
        "townhouse",
        1850,
        2005,
        "2026-03-01T08:00:00Z",
        "2026-07-04T18:00:00Z",
    ),
    (
        "daniel.ortiz@example.com",
        3.0,
        3,
        "medium",
        "Phoenix",
        "AZ",
        "85004",
        "single_family",
        1950,
        1994,
        "2026-01-05T15:00:00Z",
        "2026-07-15T13:45:00Z",
    ),
    (
        "grace.liu@example.org",
        4.5,
        4,
        "medium",
        "Raleigh",
        "NC",
        "27601",
        "condo",
        1200,
        2001,
        "2026-03-05T17:00:00Z",
        "2026-08-12T14:30:00Z",
    ),
    (
        "jane.doe@example.com",
        4.0,
        6,
        "high",
        "Austin",
        "TX",
        "78701",
        "single_family",
        2500,
        1998,
        "2025-11-03T15:15:00Z",
        "2026-08-30T16:20:00.500Z",
    ),
    (
        "lena.fischer@example.com",
        2.5,
        2,
        "low",
        "Portland",
        "OR",
        "97209",
        "condo",
        850,
        2015,
        "2026-01-29T03:00:00Z",
        "2026-06-14T16:10:00Z",
    ),
    (
        "mei.tanaka@example.org",
        3.5,
        2,
        "medium",
        "Seattle",
        "WA",
        "98103",
        "multi_family",
        3200,
        1962,
        "2026-03-11T06:00:00Z",
        "2026-03-11T07:30:00Z",
    ),
    (
        "omar.haddad@example.com",
        2.5,
        3,
        "medium",
        "Chicago",
        "IL",
        "60614",
        "single_family",
        1650,
        1924,
        "2026-02-02T13:30:00Z",
        "2026-05-18T22:45:00Z",
    ),
    (
        "priya.shah@example.com",
        3.8,
        6,
        "medium",
        "Denver",
        "CO",
        "80203",
        "single_family",
        2100,
        2010,
        "2025-12-10T20:00:00Z",
        "2026-09-09T18:00:00Z",
    ),
    (
        "sam.okafor@example.org",
        3.5,
        2,
        "medium",
        "Columbus",
        "OH",
        "43215",
        "townhouse",
        1400,
        1999,
        "2026-02-11T19:20:00Z",
        "2026-05-27T14:00:00Z",
    ),
    (
        "tom.becker@example.org",
        0.0,
        1,
        "low",
        "Madison",
        "WI",
        "53703",
        "multi_family",
        4100,
        1930,
        "2026-02-27T22:00:00Z",
        "2026-02-27T22:00:00Z",
    ),
];

fn by_email(document: &Value) -> BTreeMap<String, Value> {
    document["features"]
        .as_array()
        .expect("features array")
        .iter()
        .map(|f| {
            (
                f["customerEmail"]
                    .as_str()
                    .expect("customerEmail")
                    .to_owned(),
                f.clone(),
            )
        })
        .collect()
}

#[test]
fn the_fixtures_fold_to_the_expected_features() {
    let document = run_json(&["events/webhooks"]);
    let summary = &document["summary"];
    let counts: Vec<u64> = [
        "events",
        "customers",
        "applied",
        "duplicates",
        "ignored",
        "rejected",
        "unprocessed",
    ]
    .iter()
    .map(|key| summary[key].as_u64().unwrap_or(u64::MAX))
    .collect();
    assert_eq!(counts, [73, 11, 33, 5, 1, 34, 0], "summary {summary}");

    let features = by_email(&document);
    assert_eq!(features.len(), 11);
    for &(email, avg, services, band, city, state, zip, kind, square_feet, year, first, last) in
        EXPECTED
    {
        let f = &features[email];
        let p = &f["property_features"];
        assert_eq!(f["satisfaction_avg"].as_f64(), Some(avg), "{email} avg");
        assert_eq!(f["service_count"].as_u64(), Some(services), "{email} count");
        assert_eq!(f["lifetime_value"], band, "{email} band");
        assert_eq!(
            (&p["city"], &p["state"], &p["zip"]),
            (&city.into(), &state.into(), &zip.into()),
            "{email} address"
        );
        assert_eq!(p["property_type"], kind, "{email} type");
        assert_eq!(p["square_feet"].as_u64(), Some(square_feet), "{email} size");
        assert_eq!(p["year_built"].as_u64(), Some(year), "{email} year");
        assert_eq!(
            (f["first_seen"].as_str(), f["last_updated"].as_str()),
            (Some(first), Some(last)),
            "{email} times"
        );
    }
    let noah = &features["noah.kim@example.com"];
    assert_eq!(
        (
            noah["satisfaction_avg"].as_f64(),
            noah["service_count"].as_u64()
        ),
        (Some(3.5), Some(1))
    );
    assert!(
        noah["property_features"]
            .as_object()
            .expect("object")
            .values()
            .all(Value::is_null)
    );
    assert_eq!(
        features["carlos.mendez@example.org"]["property_features"]["pest_issues"],
        serde_json::json!(["termites", "ants"])
    );
}

#[test]
fn every_write_that_applied_events_has_exactly_one_message() {
    let document = run_json(&["events/webhooks"]);
    let features = by_email(&document);
    let mut seen = BTreeSet::new();
    for message in document["messages"].as_array().expect("messages") {
        let email = message["customerEmail"].as_str().expect("email");
        let version = message["features_version"].as_u64().expect("version");
        assert!(
            seen.insert((email.to_owned(), version)),
            "two messages for {email} v{version}"
        );
        assert_eq!(message["generator"], "template");
        assert_eq!(
            message["prompt_version"], PROMPT_VERSION,
            "{email} v{version}"
        );
        assert!(
            message.get("prompt").is_none(),
            "the prompt's text is not kept"
        );
        for key in [
            "trigger_event_id",
            "recommended_service",
            "body",
            "prompt_hash",
        ] {
            assert!(
                message[key].as_str().is_some_and(|s| !s.is_empty()),
                "{key} of {email} v{version}"
            );
        }
    }
    // Every write applies at least one event, so each version 1..=v has its message.
    let expected: BTreeSet<(String, u64)> = features
        .iter()
        .flat_map(|(email, f)| {
            (1..=f["version"].as_u64().unwrap_or(0)).map(move |v| (email.clone(), v))
        })
        .collect();
    assert_eq!(seen, expected);
    assert_eq!(
        document["summary"]["messages"].as_u64(),
        Some(expected.len() as u64)
    );
}

#[test]
fn every_invalid_fixture_is_rejected_naming_its_field_and_no_valid_one_is() {
    let document = run_json(&["events/webhooks"]);
    let invalid_dir = workspace().join("events/webhooks/invalid");
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    for entry in std::fs::read_dir(&invalid_dir).expect("invalid fixtures") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        let field = name
            .split("--")
            .next()
            .expect("FIELD--what.json")
            .to_owned();
        expected.insert(format!("events/webhooks/invalid/{name}:1"), field);
    }
    let rejected: BTreeMap<String, String> = document["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|r| {
            let error = r["error"].as_str().expect("error");
            let field = r["field"].as_str().expect("field");
            assert!(
                error.contains(&format!("`{field}`")),
                "the error must name the field: {error}"
            );
            (
                r["source"].as_str().expect("source").to_owned(),
                field.to_owned(),
            )
        })
        .collect();
    assert_eq!(rejected, expected);
}

#[test]
fn batch_size_changes_versions_but_not_features() {
    let strip = |document: &Value| -> Vec<Value> {
        document["features"]
            .as_array()
            .expect("features")
            .iter()
            .map(|f| {
                let mut f = f.clone();
                f.as_object_mut().map(|o| o.remove("version"));
                f
            })
            .collect()
    };
    let one = run_json(&["--batch-size", "1", "events/webhooks/valid"]);
    let all = run_json(&["--batch-size", "500", "events/webhooks/valid"]);
    assert_eq!(strip(&one), strip(&all));
    assert_eq!(all["summary"]["batches"].as_u64(), Some(1));
    assert_eq!(one["summary"]["batches"].as_u64(), Some(39));
}

#[test]
fn a_missing_path_is_a_clear_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_referral"))
        .args(["run", "no/such/dir"])
        .output()
        .expect("run the referral binary");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot read `no/such/dir`"), "{stderr}");
}

#[test]
fn an_unreachable_endpoint_is_a_run_time_failure_told_once() {
    // A port nothing listens on: the listener is dropped before the run starts.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port();
    let output = Command::new(env!("CARGO_BIN_EXE_referral"))
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .args(["run", "events/webhooks/valid", "--endpoint-url"])
        .arg(format!("http://127.0.0.1:{port}"))
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("run the referral binary");
    let stderr = String::from_utf8_lossy(&output.stderr);
    // 2 is for usage and input errors; the inputs are fine, the AWS API is not there.
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("failed transiently"), "{stderr}");
    assert!(stderr.contains("Connection refused"), "{stderr}");
    // The adapter's text names the operation; the SDK's cause follows it once, not twice.
    assert_eq!(stderr.matches("dispatch failure").count(), 1, "{stderr}");
}

/// Bytes that are not UTF-8, and an event too large to queue, are each refused alone, as
/// ingest refuses them (400 `not_utf8`, 413): the run applies the rest and prints its report.
#[test]
fn a_line_that_is_not_utf8_or_too_large_is_refused_alone() {
    let directory = std::env::temp_dir().join(format!("referral-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let file = directory.join("hostile.jsonl");
    let event = |id: &str, name: &str| {
        serde_json::json!({
            "event_id": id, "event_type": "service.completed",
            "occurred_at": "2026-11-20T15:04:05Z",
            "customer": {"email": "ana@example.com", "name": name},
        })
        .to_string()
    };
    let mut bytes = Vec::new();
    bytes.extend_from_slice(event("evt-good", "Ana").as_bytes());
    bytes.push(b'\n');
    // "Jos\xe9": Latin-1, not UTF-8. Read lossily it would be applied as "Jos\u{fffd}".
    bytes.extend_from_slice(event("evt-latin1", "Jos").as_bytes());
    let at = bytes.len() - 3;
    bytes.insert(at, 0xe9);
    bytes.push(b'\n');
    let mut large: Value = serde_json::from_str(&event("evt-large", "Ana")).unwrap();
    large["note"] = Value::String("x".repeat(300 * 1024));
    bytes.extend_from_slice(large.to_string().as_bytes());
    bytes.push(b'\n');
    std::fs::write(&file, &bytes).unwrap();

    let report = run_json(&[file.to_str().unwrap()]);
    std::fs::remove_dir_all(&directory).unwrap();
    assert_eq!(report["summary"]["applied"], 1, "{}", report["summary"]);
    assert_eq!(report["summary"]["rejected"], 2, "{}", report["summary"]);
    let refused: BTreeSet<(String, String)> = report["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rejected| {
            (
                rejected["source"]
                    .as_str()
                    .unwrap()
                    .rsplit(':')
                    .next()
                    .unwrap()
                    .to_owned(),
                rejected["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        refused,
        BTreeSet::from([
            ("2".to_owned(), "not_utf8".to_owned()),
            ("3".to_owned(), "too_large".to_owned())
        ])
    );
}
