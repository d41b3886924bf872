//! A Lambda function's built binary run as Lambda runs it (`referral invoke`, a loopback
//! Runtime API) against moto's server (`REFERRAL_TEST_ENDPOINT`), fed with events that
//! `referral events` generates. The same helpers as `smoke.rs`'s, to share.
//!
//! Which binaries: with `REFERRAL_SMOKE_BINARIES=DIR`, the `sam build` output in DIR
//! (`DIR/<Function>/bootstrap`); without it, the debug builds that `tests/run.sh` makes
//! ([`lambda_binary`] fails when one is missing or stale, saying how to build it).

use super::lambda_binaries;

use std::path::PathBuf;

pub use lambda_binaries::{lambda_binary, run_referral, workspace};
use referral_tests::emulator::endpoint;
use serde_json::Value;

/// The binary of `function`, from `REFERRAL_SMOKE_BINARIES` or the debug build.
pub fn binary(function: &str, logical_id: &str) -> PathBuf {
    match std::env::var_os("REFERRAL_SMOKE_BINARIES") {
        Some(dir) => {
            let path = workspace().join(dir).join(logical_id).join("bootstrap");
            assert!(
                path.is_file(),
                "{} is missing: build the functions with `sam build` (infra/smoke.sh says how)",
                path.display()
            );
            path
        }
        None => lambda_binary(function),
    }
}

/// `referral ARGS` with `stdin`: whether it succeeded, its stdout and its stderr.
pub fn referral(args: &[&str], stdin: &[u8]) -> (bool, String, String) {
    let output = run_referral(args, stdin);
    (
        output.status.success(),
        String::from_utf8(output.stdout).expect("referral writes UTF-8"),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `referral events ARGS` as JSONL (one event a line), ready for `invoke --event -`.
pub fn generated(args: &[&str]) -> String {
    let (ok, stdout, stderr) = referral(&[&["events"][..], args].concat(), b"");
    assert!(ok, "referral events {args:?}: {stderr}");
    serde_json::Deserializer::from_str(&stdout)
        .into_iter::<Value>()
        .map(|event| event.expect("referral events writes JSON").to_string() + "\n")
        .collect()
}

/// `referral invoke FUNCTION` on `events`: each invocation's answer, and the function's log.
/// Blocks in place: call it from a multi-threaded runtime's task, or outside any runtime.
pub fn invoke(
    function: &str,
    logical_id: &str,
    events: &str,
    args: &[&str],
) -> (Vec<Value>, String) {
    let binary = binary(function, logical_id);
    let url = endpoint();
    let common = ["invoke", function, "--event", "-", "--endpoint-url", &url];
    let binary_args = ["--binary", binary.to_str().expect("a UTF-8 path")];
    let all = [&common[..], args, &binary_args].concat();
    let run = || referral(&all, events.as_bytes());
    let (ok, stdout, stderr) = match tokio::runtime::Handle::try_current() {
        Ok(_) => tokio::task::block_in_place(run),
        Err(_) => run(),
    };
    assert!(ok, "referral invoke {function} failed:\n{stdout}\n{stderr}");
    let answers = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("invoke writes one JSON answer a line"))
        .collect();
    (answers, stderr)
}
