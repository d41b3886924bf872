//! Where the tests find the Lambda functions' binaries. They belong to other packages, so
//! cargo does not build them for these tests (`CARGO_BIN_EXE_*` exists only for this
//! package's binaries): `tests/run.sh` builds them first, and they are found next to this
//! package's own binary, in the same target directory and profile wherever that is.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The debug build of a Lambda function's binary; fails when it is missing or stale.
pub fn lambda_binary(name: &str) -> PathBuf {
    let directory = Path::new(env!("CARGO_BIN_EXE_referral"))
        .parent()
        .expect("the referral binary is in a directory");
    let binary = directory.join(name);
    let build = format!(
        "build it with `cargo build -p referral-{name} --bin {name}` (tests/run.sh does this \
         before the tests)"
    );
    let built = std::fs::metadata(&binary)
        .and_then(|metadata| metadata.modified())
        .unwrap_or_else(|_| panic!("{} is missing: {build}", binary.display()));
    // The sources cargo compiled into it, from its dep-info file: a test-only module
    // changed since does not make the binary stale.
    let dep_info = binary.with_extension("d");
    let sources = std::fs::read_to_string(&dep_info)
        .unwrap_or_else(|_| panic!("{} is missing: {build}", dep_info.display()));
    // `binary: input input…`, a space inside a path escaped as `\ `.
    let inputs = sources
        .lines()
        .next()
        .and_then(|line| line.split_once(": "))
        .map(|(_, inputs)| inputs.replace("\\ ", "\u{0}"))
        .unwrap_or_default();
    let newest = inputs
        .split(' ')
        .map(|path| PathBuf::from(path.replace('\u{0}', " ")))
        .filter_map(|path| Some((std::fs::metadata(&path).ok()?.modified().ok()?, path)))
        .max();
    if let Some((newest, path)) = newest {
        assert!(
            built >= newest,
            "{} is older than {}: re{build}",
            binary.display(),
            path.display()
        );
    }
    binary
}

/// Runs `referral ARGS` in the workspace with `stdin`; the variables it reads are cleared, so
/// that only the arguments count.
pub fn run_referral(args: &[&str], stdin: &[u8]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_referral"));
    command
        .current_dir(workspace())
        .args(args)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("WEBHOOK_SECRETS")
        .env_remove("WEBHOOK_QUEUE")
        .env_remove("WEBHOOK_DLQ")
        .env_remove("FEATURES_TABLE")
        .env_remove("MESSAGES_TABLE");
    output_with_stdin(command, stdin)
}

/// Runs `command` with `stdin` fed to it; its stdout and stderr.
pub fn output_with_stdin(mut command: Command, stdin: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the referral binary");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(stdin)
        .expect("feed stdin");
    child
        .wait_with_output()
        .expect("wait for the referral binary")
}
