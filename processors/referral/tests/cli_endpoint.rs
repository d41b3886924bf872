//! `referral run --endpoint-url` against moto's server: the same features, rejections and
//! messages as the embedded run, read back from DynamoDB.
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

use referral_tests::emulator::{endpoint, unique};
use serde_json::Value;

fn run_json(extra: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_referral"))
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .args(["run", "--json", "events/webhooks"])
        .args(extra)
        .env_remove("AWS_ENDPOINT_URL")
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

fn without_versions(document: &Value) -> Value {
    let mut document = document.clone();
    for feature in document["features"].as_array_mut().expect("features") {
        feature.as_object_mut().expect("object").remove("version");
    }
    document
}

#[test]
fn the_endpoint_run_equals_the_embedded_run() {
    let url = endpoint();
    let embedded = run_json(&[]);
    let names = [
        unique("features"),
        unique("messages"),
        unique("queue"),
        unique("dlq"),
        unique("archive"),
    ];
    // The flag after the subcommand's own arguments: it is global.
    let remote = run_json(&[
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
        "--endpoint-url",
        &url,
    ]);
    assert_eq!(
        without_versions(&remote)["features"],
        without_versions(&embedded)["features"]
    );
    assert_eq!(remote["rejected"], embedded["rejected"]);
    assert_eq!(remote["messages"], embedded["messages"]);
    assert_eq!(remote["summary"], embedded["summary"]);
    assert_eq!(embedded["summary"]["applied"], 33);
    assert_eq!(embedded["messages"].as_array().map(Vec::len), Some(27));
}
