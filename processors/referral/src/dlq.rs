//! `referral dlq ...`: inspect, export, import and replay dead-letter queues, against any
//! AWS-API endpoint (an account, or a local emulator).
//!
//! Every command works by receive → act → delete (or release), never by
//! `StartMessageMoveTask`: filtering and inspection need each message in hand, and the
//! emulator used in development does not implement the move task. A message taken from a
//! queue is hidden for a lease while this process holds it; whatever it does not delete it
//! makes visible again before it exits, and a crashed run's messages come back by
//! themselves when the lease runs out. So no command can lose a message.

mod filter;
mod interrupt;
mod origin;
pub(crate) mod pace;
mod queue;
pub(crate) mod redact;
mod replay;
mod show;
mod stream;
mod transfer;

pub use queue::{Queue, Scan};
pub(crate) use show::look;

use std::path::PathBuf;
use std::process::ExitCode;

use aws_config::SdkConfig;
use referral_domain::env::{EnvError, Vars};
use referral_domain::ports::AdapterError;
use referral_domain::redact::check_customer_ref_key;

#[derive(Debug, clap::Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(Debug, clap::Subcommand)]
enum DlqCommand {
    /// Depth, age of the oldest message and counts by error kind.
    Stats(show::StatsArgs),
    /// Show messages without consuming them (they are made visible again at once).
    Peek(show::PeekArgs),
    /// Write messages to a JSON Lines file, optionally deleting them once it is safe on disk.
    Export(transfer::ExportArgs),
    /// Send the messages of a JSON Lines file (from `export`, possibly fixed by hand) to a queue.
    Import(transfer::ImportArgs),
    /// Move messages back to their source queue, or re-run the orchestrator for stream
    /// failure records.
    #[command(after_help = filter::HELP)]
    Replay(replay::ReplayArgs),
}

/// What stops a `dlq` command before it could do its work. Per-message failures of a
/// replay are not errors: they are counted, reported, and the messages stay in the queue.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error(
        "queue {queue}: {source}. Check the queue name (or give its URL) and --endpoint-url / \
         AWS_ENDPOINT_URL"
    )]
    Queue {
        queue: String,
        #[source]
        source: AdapterError,
    },
    #[error(
        "no queue names {dlq} as its dead-letter queue (ListDeadLetterSourceQueues is empty): \
         pass --to QUEUE to say where the messages go"
    )]
    NoSourceQueue { dlq: String },
    #[error(
        "{count} queues send their dead letters to {dlq} ({sources}): pass --to QUEUE to choose one"
    )]
    SeveralSourceQueues {
        dlq: String,
        count: usize,
        sources: String,
    },
    #[error(
        "refusing to replay {queue} onto itself: every message would come straight back; pass \
         --to with the queue the messages came from"
    )]
    SameQueue { queue: String },
    #[error(transparent)]
    Filter(#[from] filter::FilterError),
    #[error("{path} exists already: choose another --out, or pass --force to overwrite it")]
    OutputExists { path: PathBuf },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}:{line}: {detail}. Each line must be one JSON object with a \"body\" string and \
         optional \"attributes\" of string values; fix the line and import again (nothing was sent)"
    )]
    ImportLine {
        path: PathBuf,
        line: usize,
        detail: String,
    },
    #[error(
        "{path}:{line} could not be sent to {queue}: {source}. Lines before it were sent; import \
         the file again once the cause is fixed (a message sent twice is harmless: the enricher \
         skips events it has applied)"
    )]
    ImportSend {
        path: PathBuf,
        line: usize,
        queue: String,
        #[source]
        source: AdapterError,
    },
    #[error("Bedrock is configured for stream re-runs but not usable: {0}")]
    Bedrock(#[from] EnvError),
    #[error("{0}; `customer=` filters match refs only when CUSTOMER_REF_KEY is the functions' key")]
    CustomerRefKey(#[source] EnvError),
    #[error("cannot encode the output as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

pub async fn run(args: &DlqArgs, sdk: &SdkConfig) -> Result<ExitCode, DlqError> {
    // `customer=` filters compute refs with this process's key, like the functions do.
    check_customer_ref_key(&Vars::process()).map_err(DlqError::CustomerRefKey)?;
    match &args.command {
        DlqCommand::Stats(args) => show::stats(args, sdk).await,
        DlqCommand::Peek(args) => show::peek(args, sdk).await,
        DlqCommand::Export(args) => transfer::export(args, sdk).await,
        DlqCommand::Import(args) => transfer::import(args, sdk).await,
        DlqCommand::Replay(args) => replay::run(args, sdk).await,
    }
}
