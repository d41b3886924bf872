//! Dead-letter queues (`referral dlq ...`): inspect, export, import and replay them, against
//! any AWS-API endpoint (an account, or a local emulator).
//!
//! Every command works by receive → act → delete (or release), never by
//! `StartMessageMoveTask`: filtering and inspection need each message in hand, and the
//! emulator used in development does not implement the move task. A message taken from a
//! queue is hidden for a lease while this process holds it; whatever it does not delete it
//! makes visible again before it exits, and a crashed run's messages come back by
//! themselves when the lease runs out. So no command can lose a message.

mod filter;
pub mod interrupt;
mod origin;
pub mod pace;
mod queue;
pub mod redact;
mod replay;
mod show;
mod stream;
mod transfer;

pub use filter::HELP as FILTER_HELP;
pub use queue::{DlqMessage, Queue, Scan};
pub use replay::{ReplayOptions, Tables, run as replay};
pub use show::{PeekOptions, StatsOptions, look, peek, stats};
pub use transfer::{ExportOptions, ImportOptions, export, import};

use std::path::PathBuf;

use referral_domain::env::EnvError;
use referral_domain::ports::AdapterError;

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
