//! `referral invoke FUNCTION --event FILE|-`: a deployed function's binary run locally the
//! way Lambda runs it (like `sam local invoke`, without Docker), with the environment the
//! SAM template gives it, filled for local use.
//!
//! The emulator itself (Runtime API, runner, template reading) is the
//! `referral-lambda-emulator` crate; this module is the command's wiring: the project's
//! resources and flags, the events file, stdout and the exit status.

pub mod environment;
mod events;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use referral_lambda_emulator::template::{self, TemplateError};
use referral_lambda_emulator::{
    DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT, FunctionSpec, Invocation, InvocationOutcome, InvokeError,
    MAX_PAYLOAD_BYTES, Payload, RunStats, run_function_with,
};

use crate::DEVELOPMENT_SECRET;
use crate::names::ResourceNames;
use environment::{Local, UnfillableError};

/// Where the template is, from the project's root.
const TEMPLATE_PATH: &str = "infra/template.yaml";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Function {
    Ingest,
    Enricher,
    Orchestrator,
    /// Erasure by API: `{"emails": [...], "dry_run": false}`.
    Eraser,
}

impl Function {
    /// The binary's name, as in the template's `Metadata.BuildProperties.Binary`.
    pub fn name(self) -> &'static str {
        match self {
            Function::Ingest => "ingest",
            Function::Enricher => "enricher",
            Function::Orchestrator => "orchestrator",
            Function::Eraser => "eraser",
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct InvokeArgs {
    /// The function to run.
    #[arg(value_enum)]
    pub function: Function,
    /// The event: a JSON file, a JSONL file (one event per line, one invocation each), or
    /// `-` for stdin.
    #[arg(long)]
    pub event: PathBuf,
    /// The function's executable (default: target/lambda/FUNCTION/bootstrap, which
    /// infra/build.sh builds).
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// The SAM template the function's variables come from (default: infra/template.yaml
    /// of the project around the current directory).
    #[arg(long)]
    pub template: Option<PathBuf>,
    /// Seconds an invocation may take (default: the template's Timeout).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=900))]
    pub timeout: Option<u64>,
    #[command(flatten)]
    pub resources: ResourceNames,
    /// Webhook signing secrets, comma-separated (the template's WebhookSecrets).
    #[arg(long, env = "WEBHOOK_SECRETS", default_value = DEVELOPMENT_SECRET, hide_env_values = true)]
    pub webhook_secrets: String,
    /// NAME=VALUE in the function's environment, over everything else (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_assignment)]
    pub env: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum InvokeCommandError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Unfillable(#[from] UnfillableError),
    #[error(
        "no {TEMPLATE_PATH} in {} or a directory above it: run from the project, or pass \
         --template and --binary",
        cwd.display()
    )]
    NoProject { cwd: PathBuf },
    #[error(
        "{} is not a file: build the functions with infra/build.sh, or pass --binary PATH \
         (e.g. target/debug/{function} after `cargo build -p referral-{function}`)",
        path.display()
    )]
    NoBinary {
        path: PathBuf,
        function: &'static str,
    },
    #[error("cannot read {source_name}: {error}")]
    ReadEvents {
        source_name: String,
        error: std::io::Error,
    },
    #[error("{source_name}: not JSON or JSONL ({error})")]
    BadEvents {
        source_name: String,
        error: serde_json::Error,
    },
    #[error("{source_name} holds no event")]
    NoEvents { source_name: String },
    #[error(
        "{source_name}: event {number} is {size} bytes; Lambda takes at most {MAX_PAYLOAD_BYTES}"
    )]
    EventTooLarge {
        source_name: String,
        number: usize,
        size: usize,
    },
    #[error(transparent)]
    Run(#[from] InvokeError),
    #[error("cannot write a response to stdout: {0}")]
    Stdout(std::io::Error),
}

/// Runs the command: one JSON line per invocation on stdout (the response, or the error
/// as Lambda reports it), the function's logs and a summary on stderr. Exit status 0 when
/// every invocation answered, 1 when one failed or timed out, 2 when the function did not
/// initialise. Usage and input errors are `Err` (status 2), and so are the runner's own
/// failures (status 1).
pub async fn run(
    args: &InvokeArgs,
    endpoint_url: Option<&str>,
) -> Result<ExitCode, InvokeCommandError> {
    let function = args.function.name();
    let cwd = std::env::current_dir().unwrap_or_default();
    let project = cwd
        .ancestors()
        .find(|dir| dir.join(TEMPLATE_PATH).is_file())
        .map(Path::to_path_buf);
    let no_project = || InvokeCommandError::NoProject { cwd: cwd.clone() };
    let template_path = match &args.template {
        Some(path) => path.clone(),
        None => project.as_ref().ok_or_else(no_project)?.join(TEMPLATE_PATH),
    };
    let deployed = template::load(&template_path, function)?;
    let local = Local {
        endpoint_url: endpoint_url.map(str::to_owned),
        features_table: args.resources.tables.features_table.clone(),
        archive_table: args.resources.tables.archive_table.clone(),
        messages_table: args.resources.tables.messages_table.clone(),
        queue: args.resources.queue.clone(),
        dlq: args.resources.dlq.clone(),
        stream_failures: args.resources.stream_failures.clone(),
        webhook_secrets: args.webhook_secrets.clone(),
    };
    let env = environment::fill(&deployed, &local, &args.env, |name| {
        std::env::var(name).ok()
    })?;
    let binary = match &args.binary {
        Some(path) => path.clone(),
        None => default_binary(project.as_deref().ok_or_else(no_project)?, function),
    };
    if !binary.is_file() {
        return Err(InvokeCommandError::NoBinary {
            path: binary,
            function,
        });
    }
    let events = events::read(&args.event)?;
    if env.get("WEBHOOK_SECRETS").map(String::as_str) == Some(DEVELOPMENT_SECRET) {
        eprintln!(
            "referral invoke: WEBHOOK_SECRETS is the built-in development secret; set \
             --webhook-secrets (or WEBHOOK_SECRETS) for anything else"
        );
    }
    let timeout = args
        .timeout
        .or(deployed.timeout_seconds)
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs);
    let spec = FunctionSpec {
        env,
        timeout,
        memory_mb: deployed.memory_mb.unwrap_or(DEFAULT_MEMORY_MB),
        ..FunctionSpec::new(binary, function)
    };
    let mut write_error = None;
    let stats = run_function_with(&spec, events, |invocation| {
        if write_error.is_none() {
            write_error = print_invocation(invocation, timeout).err();
        }
    })
    .await?;
    if let Some(error) = write_error {
        return Err(InvokeCommandError::Stdout(error));
    }
    if !stats.invocations.is_empty() {
        eprintln!("referral invoke: {function}: {}", summary(&stats));
    }
    if let Some(failure) = &stats.init_error {
        let error = &failure.error;
        // A Runtime.ExitError already says how the process ended.
        let status = match failure.exit_status {
            Some(status) if error.error_type != "Runtime.ExitError" => {
                format!(" (process {status})")
            }
            _ => String::new(),
        };
        eprintln!(
            "error: {function} did not initialise: {}: {}{status}",
            error.error_type, error.message
        );
        return Ok(ExitCode::from(2));
    }
    let all_answered = stats
        .invocations
        .iter()
        .all(|invocation| matches!(invocation.outcome, InvocationOutcome::Response(_)));
    Ok(if all_answered {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `target/lambda/FUNCTION/bootstrap`, in `CARGO_TARGET_DIR` when that is set.
fn default_binary(project: &Path, function: &str) -> PathBuf {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| project.join("target"), PathBuf::from);
    target.join("lambda").join(function).join("bootstrap")
}

fn parse_assignment(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))?;
    let valid = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "`{name}` is not a variable name (letters, digits, _)"
        ));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// One JSON line: the response, or the error as Lambda reports it to a synchronous caller.
fn print_invocation(invocation: &Invocation, timeout: Duration) -> std::io::Result<()> {
    let error = |error_type: &str, message: &str| serde_json::json!({ "errorType": error_type, "errorMessage": message });
    let line = match &invocation.outcome {
        InvocationOutcome::Response(Payload::Json(json)) => json.clone(),
        // Still one JSON line: bytes that are not JSON become a string.
        InvocationOutcome::Response(Payload::Raw(bytes)) => {
            serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned())
        }
        InvocationOutcome::Error(failure) => error(&failure.error_type, &failure.message),
        InvocationOutcome::Timeout => error(
            "Sandbox.Timedout",
            &format!(
                "RequestId: {} Error: Task timed out after {:.2} seconds",
                invocation.request_id,
                timeout.as_secs_f64()
            ),
        ),
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()
}

fn summary(stats: &RunStats) -> String {
    let count = |wanted: fn(&InvocationOutcome) -> bool| {
        stats
            .invocations
            .iter()
            .filter(|invocation| wanted(&invocation.outcome))
            .count()
    };
    let mut text = format!(
        "{} invocation(s): {} answered, {} failed, {} timed out",
        stats.invocations.len(),
        count(|outcome| matches!(outcome, InvocationOutcome::Response(_))),
        count(|outcome| matches!(outcome, InvocationOutcome::Error(_))),
        count(|outcome| matches!(outcome, InvocationOutcome::Timeout)),
    );
    if let Some(cold) = stats.spawn_to_first_poll {
        text.push_str(&format!("; start-up {} ms", cold.as_millis()));
    }
    text.push_str(&format!(
        "; CPU {} ms user + {} ms system",
        stats.cpu_user.as_millis(),
        stats.cpu_system.as_millis()
    ));
    if let Some(kb) = stats.peak_rss_kb {
        text.push_str(&format!("; peak RSS {:.1} MiB", kb as f64 / 1024.0));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_are_name_equals_value() {
        assert_eq!(
            parse_assignment("A_1=x=y"),
            Ok(("A_1".to_owned(), "x=y".to_owned()))
        );
        assert_eq!(
            parse_assignment("EMPTY="),
            Ok(("EMPTY".to_owned(), String::new()))
        );
        for bad in ["novalue", "=x", "1A=x", "A-B=x"] {
            assert!(parse_assignment(bad).is_err(), "{bad}");
        }
    }
}
