//! Runs a Lambda function binary as Lambda does: a cleared environment with Lambda's
//! variables, the Runtime API on loopback, one event at a time. A timed-out invocation
//! costs the process (Lambda resets the sandbox); the next event starts a fresh one, which
//! must initialise again.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use super::driver;
use super::ids;
use super::runtime_api::{FunctionError, RuntimeApi};

/// Lambda's defaults for a function that sets no timeout or memory size.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
pub const DEFAULT_MEMORY_MB: u32 = 128;
/// Lambda's limit for the init phase (start-up until the first poll for an event).
pub const DEFAULT_INIT_TIMEOUT: Duration = Duration::from_secs(10);

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

/// The function to run and its configuration.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// The executable (a `bootstrap`, or a debug build of the function's binary).
    pub binary: PathBuf,
    pub function_name: String,
    /// The function's own variables; they override the runner's Lambda variables.
    pub env: BTreeMap<String, String>,
    /// Per invocation.
    pub timeout: Duration,
    /// Announced in `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`; not enforced.
    pub memory_mb: u32,
    /// From start-up to the first poll for an event.
    pub init_timeout: Duration,
}

impl FunctionSpec {
    /// A function with Lambda's default timeout and memory size and no variables of its own.
    pub fn new(binary: impl Into<PathBuf>, function_name: impl Into<String>) -> Self {
        FunctionSpec {
            binary: binary.into(),
            function_name: function_name.into(),
            env: BTreeMap::new(),
            timeout: DEFAULT_TIMEOUT,
            memory_mb: DEFAULT_MEMORY_MB,
            init_timeout: DEFAULT_INIT_TIMEOUT,
        }
    }
}

/// A response body: JSON, as Lambda payloads are, or the bytes as sent when they are not.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Json(serde_json::Value),
    Raw(Vec<u8>),
}

impl Payload {
    pub(super) fn from_body(body: Vec<u8>) -> Self {
        match serde_json::from_slice(&body) {
            Ok(json) => Payload::Json(json),
            Err(_) => Payload::Raw(body),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum InvocationOutcome {
    Response(Payload),
    /// Reported by the function, or by the runner for a process that exited mid-invocation
    /// (`Runtime.ExitError`, as Lambda reports it).
    Error(FunctionError),
    Timeout,
}

#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    pub outcome: InvocationOutcome,
    /// From handing out the event to the answer (or the timeout).
    pub duration: Duration,
}

/// Why the function never got to (or back to) its events.
#[derive(Debug, Clone)]
pub struct InitFailure {
    /// As posted to `/init/error`, or `Runtime.ExitError` for a process that exited before
    /// asking for an event, or `Sandbox.Timedout` for one that never asked in time.
    pub error: FunctionError,
    pub exit_status: Option<ExitStatus>,
}

#[derive(Debug, Default)]
pub struct RunStats {
    /// Set when a process failed to initialise; the events after it were not delivered.
    pub init_error: Option<InitFailure>,
    pub invocations: Vec<Invocation>,
    /// From starting the first process to its first poll: the cold start.
    pub spawn_to_first_poll: Option<Duration>,
    /// CPU time of every process started, each read just before it was stopped (Linux
    /// only: zero elsewhere, and for a process that exited by itself).
    pub cpu_user: Duration,
    pub cpu_system: Duration,
    /// The highest `VmHWM` of those processes, in KiB (Linux only).
    pub peak_rss_kb: Option<u64>,
    /// How the last process ended.
    pub exit_status: Option<ExitStatus>,
    /// More than one after a timeout or crash.
    pub processes_started: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("cannot open the Runtime API on 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),
    #[error("cannot start {}: {source}", binary.display())]
    Spawn {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot wait for the function process: {0}")]
    Wait(#[source] std::io::Error),
    #[error("the Runtime API server stopped unexpectedly")]
    ApiStopped,
}

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
