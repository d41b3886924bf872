//! Runs a Lambda function binary as Lambda does: a cleared environment with Lambda's
//! variables, the Runtime API on loopback, one event at a time. A timed-out invocation
//! costs the process (Lambda resets the sandbox); the next event starts a fresh one, which
//! must initialise again.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::driver;
pub use crate::function::{
    DEFAULT_INIT_TIMEOUT, DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT, FunctionSpec, InitFailure,
    Invocation, InvocationOutcome, InvokeError, Payload, RunStats,
};
use crate::ids;
use crate::runtime_api::RuntimeApi;

/// Taken from this process's environment; everything else is cleared, as in Lambda.
const INHERITED: &[&str] = &[
    "PATH",
    "HOME",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_EC2_METADATA_DISABLED",
    "RUST_LOG",
    "RUST_BACKTRACE",
];
/// `AWS_ENDPOINT_URL` and its per-service forms (`AWS_ENDPOINT_URL_SQS`, ...).
const INHERITED_PREFIX: &str = "AWS_ENDPOINT_URL";

/// Runs `spec`'s binary and delivers `events` one by one; see [`run_function_with`].
pub async fn run_function(
    spec: &FunctionSpec,
    events: impl IntoIterator<Item = Vec<u8>>,
) -> Result<RunStats, InvokeError> {
    run_function_with(spec, events, |_| {}).await
}

/// Runs `spec`'s binary and delivers `events` one by one, each after the previous one was
/// answered, failed or timed out; `on_invocation` sees each invocation as it ends. The
/// process is measured and stopped after the last one. An init failure ends the run: it is
/// in [`RunStats::init_error`], not an `Err`, which is kept for the runner's own failures.
pub async fn run_function_with(
    spec: &FunctionSpec,
    events: impl IntoIterator<Item = Vec<u8>>,
    mut on_invocation: impl FnMut(&Invocation),
) -> Result<RunStats, InvokeError> {
    let api = RuntimeApi::bind().await.map_err(InvokeError::Bind)?;
    // `vars()` would panic on a variable that is not UTF-8; none on the allow-list is.
    let parent = std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)));
    let env = child_env(spec, api.address(), parent);
    driver::drive(spec, &env, api, events, &mut on_invocation).await
}

/// The environment of the function process: the allow-listed part of `parent`, Lambda's
/// variables, `spec.env` over those, and the Runtime API's address over everything.
pub fn child_env(
    spec: &FunctionSpec,
    runtime_api: SocketAddr,
    parent: impl IntoIterator<Item = (String, String)>,
) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = parent
        .into_iter()
        .filter(|(name, _)| {
            INHERITED.contains(&name.as_str()) || name.starts_with(INHERITED_PREFIX)
        })
        .collect();
    let task_root = std::path::absolute(&spec.binary)
        .ok()
        .and_then(|binary| binary.parent().map(|dir| dir.display().to_string()))
        .unwrap_or_default();
    let lambda = [
        ("AWS_LAMBDA_FUNCTION_NAME", spec.function_name.clone()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            spec.memory_mb.to_string(),
        ),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", spec.function_name),
        ),
        ("AWS_LAMBDA_LOG_STREAM_NAME", ids::log_stream_name()),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON".to_owned()),
        ("AWS_LAMBDA_LOG_LEVEL", "INFO".to_owned()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
        ("_HANDLER", "bootstrap".to_owned()),
        ("LAMBDA_TASK_ROOT", task_root),
        ("TZ", ":UTC".to_owned()),
    ];
    for (name, value) in lambda {
        env.insert(name.to_owned(), value);
    }
    env.extend(spec.env.clone());
    env.insert("AWS_LAMBDA_RUNTIME_API".to_owned(), runtime_api.to_string());
    env
}
