//! The runner's lifecycle rules on fake functions: small bash scripts that speak just
//! enough of the Runtime API (over bash's `/dev/tcp`) to poll and hang, crash, post an init
//! error, or never poll. What Lambda does in each case is what the runner must report.
#![cfg(unix)]
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use referral_lambda_emulator::{FunctionSpec, InvocationOutcome, RunStats, run_function};

/// Opens fd 3 on the Runtime API.
const CONNECT: &str =
    r#"exec 3<>"/dev/tcp/${AWS_LAMBDA_RUNTIME_API%:*}/${AWS_LAMBDA_RUNTIME_API#*:}""#;
const POLL: &str =
    r"printf 'GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: api\r\n\r\n' >&3";

/// A fake function: `body` run by bash with the Runtime API's address in the environment.
fn fake(name: &str, body: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "referral-invoke-fakes-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/bash\nset -eu\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn spec(binary: PathBuf) -> FunctionSpec {
    let mut spec = FunctionSpec::new(binary, "fake");
    spec.timeout = Duration::from_millis(500);
    spec.init_timeout = Duration::from_secs(5);
    spec
}

async fn run(spec: &FunctionSpec, events: usize) -> RunStats {
    let events = (0..events).map(|n| format!("{{\"n\":{n}}}").into_bytes());
    tokio::time::timeout(Duration::from_secs(30), run_function(spec, events))
        .await
        .expect("the run ends")
        .expect("the runner works")
}

#[tokio::test]
async fn a_timed_out_invocation_costs_the_process() {
    // `exec` so that killing the process kills the sleep, not just bash.
    let binary = fake("hangs", &format!("{CONNECT}\n{POLL}\nexec sleep 60"));
    let stats = run(&spec(binary), 2).await;
    assert!(stats.init_error.is_none(), "{stats:?}");
    let outcomes: Vec<&InvocationOutcome> = stats.invocations.iter().map(|i| &i.outcome).collect();
    assert_eq!(
        outcomes,
        [&InvocationOutcome::Timeout, &InvocationOutcome::Timeout]
    );
    for invocation in &stats.invocations {
        assert!(
            invocation.duration >= Duration::from_millis(500),
            "{invocation:?}"
        );
    }
    // Each timeout killed the process; the second event went to a fresh one.
    assert_eq!(stats.processes_started, 2);
    assert!(stats.exit_status.is_some_and(|status| !status.success()));
}

#[tokio::test]
async fn a_process_that_exits_mid_invocation_fails_it_and_the_next_event_gets_a_new_one() {
    let binary = fake("crashes", &format!("{CONNECT}\n{POLL}\nsleep 0.2\nexit 4"));
    let stats = run(&spec(binary), 2).await;
    assert!(stats.init_error.is_none(), "{stats:?}");
    assert_eq!(stats.invocations.len(), 2);
    for invocation in &stats.invocations {
        let InvocationOutcome::Error(error) = &invocation.outcome else {
            panic!("expected an error: {invocation:?}");
        };
        assert_eq!(error.error_type, "Runtime.ExitError");
        assert_eq!(
            error.message,
            format!(
                "RequestId: {} Error: Runtime exited with error: exit status 4",
                invocation.request_id
            )
        );
    }
    assert_eq!(stats.processes_started, 2);
    assert_eq!(stats.exit_status.and_then(|status| status.code()), Some(4));
}

#[tokio::test]
async fn an_exit_before_the_first_poll_is_an_init_error_with_the_exit_status() {
    let binary = fake("exits", "echo 'cannot start' >&2\nexit 3");
    let stats = run(&spec(binary), 3).await;
    let failure = stats.init_error.expect("an init error");
    assert_eq!(failure.error.error_type, "Runtime.ExitError");
    assert_eq!(
        failure.error.message,
        "Error: Runtime exited with error: exit status 3"
    );
    assert_eq!(
        failure.exit_status.and_then(|status| status.code()),
        Some(3)
    );
    assert!(
        stats.invocations.is_empty(),
        "no event is delivered after an init error"
    );
    assert_eq!(stats.processes_started, 1);
    assert_eq!(stats.spawn_to_first_poll, None);
}

#[tokio::test]
async fn a_posted_init_error_is_reported_as_posted() {
    let body = r#"{"errorType":"Runtime.InitError","errorMessage":"no config"}"#;
    let script = format!(
        "{CONNECT}\nbody='{body}'\n\
         printf 'POST /2018-06-01/runtime/init/error HTTP/1.1\\r\\nhost: api\\r\\n\
         lambda-runtime-function-error-type: Runtime.InitError\\r\\ncontent-length: %d\\r\\n\\r\\n%s' \
         \"${{#body}}\" \"$body\" >&3\nread -r status <&3\nexit 7"
    );
    let stats = run(&spec(fake("init-error", &script)), 1).await;
    let failure = stats.init_error.expect("an init error");
    assert_eq!(failure.error.error_type, "Runtime.InitError");
    assert_eq!(failure.error.message, "no config");
    // It exited by itself after the report, and that exit status is the one kept.
    assert_eq!(
        failure.exit_status.and_then(|status| status.code()),
        Some(7)
    );
    assert!(stats.invocations.is_empty());
}

#[tokio::test]
async fn a_process_that_never_polls_times_out_its_init() {
    let mut spec = spec(fake("silent", "exec sleep 60"));
    spec.init_timeout = Duration::from_millis(300);
    let stats = run(&spec, 1).await;
    let failure = stats.init_error.expect("an init error");
    assert_eq!(failure.error.error_type, "Sandbox.Timedout");
    assert!(failure.exit_status.is_some_and(|status| !status.success()));
    assert!(stats.invocations.is_empty());
}

#[tokio::test]
async fn a_binary_that_cannot_start_is_an_error_of_the_run() {
    let spec = spec(PathBuf::from("/nonexistent/bootstrap"));
    let events = [b"{}".to_vec()];
    let error = run_function(&spec, events).await.unwrap_err();
    assert!(
        error.to_string().contains("/nonexistent/bootstrap"),
        "{error}"
    );
}

#[tokio::test]
async fn the_environment_is_cleared_and_lambdas_variables_set() {
    // Prints its environment to a file, then hangs polling.
    let out = std::env::temp_dir().join(format!("referral-invoke-env-{}", fastrand::u64(..)));
    let script = format!(
        "env > '{}'\n{CONNECT}\n{POLL}\nexec sleep 60",
        out.display()
    );
    let mut spec = spec(fake("env", &script));
    spec.env.insert("CUSTOM".into(), "1".into());
    spec.env
        .insert("AWS_LAMBDA_LOG_LEVEL".into(), "DEBUG".into());
    spec.env
        .insert("AWS_LAMBDA_RUNTIME_API".into(), "elsewhere:1".into());
    let stats = run(&spec, 1).await;
    assert_eq!(stats.invocations.len(), 1);
    let env = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    let value = |name: &str| {
        env.lines()
            .find_map(|line| line.strip_prefix(&format!("{name}=")))
            .map(str::to_owned)
    };
    assert_eq!(value("CUSTOM").as_deref(), Some("1"));
    assert_eq!(value("AWS_LAMBDA_LOG_LEVEL").as_deref(), Some("DEBUG"));
    assert_eq!(value("AWS_LAMBDA_FUNCTION_NAME").as_deref(), Some("fake"));
    assert_eq!(
        value("AWS_LAMBDA_FUNCTION_VERSION").as_deref(),
        Some("$LATEST")
    );
    assert_eq!(
        value("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").as_deref(),
        Some("128")
    );
    assert_eq!(value("AWS_LAMBDA_LOG_FORMAT").as_deref(), Some("JSON"));
    assert_eq!(
        value("AWS_LAMBDA_LOG_GROUP_NAME").as_deref(),
        Some("/aws/lambda/fake")
    );
    assert!(value("AWS_LAMBDA_LOG_STREAM_NAME").is_some_and(|s| s.contains("[$LATEST]")));
    let api = value("AWS_LAMBDA_RUNTIME_API").unwrap();
    assert!(
        api.starts_with("127.0.0.1:"),
        "the runner's address wins: {api}"
    );
    // Cargo sets CARGO_MANIFEST_DIR for tests; the function must not see it.
    assert_eq!(value("CARGO_MANIFEST_DIR"), None);
    assert_eq!(value("PATH"), std::env::var("PATH").ok());
}
