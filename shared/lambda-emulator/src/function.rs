//! What `invoke` runs and what comes back: the function's configuration, the events it is
//! handed, each invocation's outcome and the run's figures.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use crate::runtime_api::FunctionError;

/// Lambda's defaults for a function that sets no timeout or memory size.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
pub const DEFAULT_MEMORY_MB: u32 = 128;
/// Lambda's limit for the init phase (start-up until the first poll for an event).
pub const DEFAULT_INIT_TIMEOUT: Duration = Duration::from_secs(10);

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
    pub(crate) fn from_body(body: Vec<u8>) -> Self {
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
