//! `referral dlq ...`: the commands over the dead-letter queues. The work is in
//! `referral_dlq`; this module is the command line and its wiring.

use std::path::PathBuf;
use std::process::ExitCode;

use aws_config::SdkConfig;
pub use referral_dlq::{DlqError, Queue, Scan, look, pace, redact};
use referral_dlq::{
    ExportOptions, ImportOptions, PeekOptions, ReplayOptions, StatsOptions, Tables,
};
use referral_domain::env::Vars;

use crate::names::TableNames;
use referral_domain::redact::check_customer_ref_key;

#[derive(Debug, clap::Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(Debug, clap::Subcommand)]
enum DlqCommand {
    /// Depth, age of the oldest message and counts by error kind.
    Stats(StatsArgs),
    /// Show messages without consuming them (they are made visible again at once).
    Peek(PeekArgs),
    /// Write messages to a JSON Lines file, optionally deleting them once it is safe on disk.
    Export(ExportArgs),
    /// Send the messages of a JSON Lines file (from `export`, possibly fixed by hand) to a queue.
    Import(ImportArgs),
    /// Move messages back to their source queue, or re-run the orchestrator for stream
    /// failure records.
    #[command(after_help = referral_dlq::FILTER_HELP)]
    Replay(ReplayArgs),
}

pub async fn run(args: &DlqArgs, sdk: &SdkConfig) -> Result<ExitCode, DlqError> {
    // `customer=` filters compute refs with this process's key, like the functions do.
    check_customer_ref_key(&Vars::process()).map_err(DlqError::CustomerRefKey)?;
    match &args.command {
        DlqCommand::Stats(args) => referral_dlq::stats(&args.options(), sdk).await,
        DlqCommand::Peek(args) => referral_dlq::peek(&args.options(), sdk).await,
        DlqCommand::Export(args) => referral_dlq::export(&args.options(), sdk).await,
        DlqCommand::Import(args) => referral_dlq::import(&args.options(), sdk).await,
        DlqCommand::Replay(args) => referral_dlq::replay(&args.options(), sdk).await,
    }
}

#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// The queue, by name or URL.
    queue: String,
    /// Messages examined at most for the age and the counts by kind (the depth is exact
    /// whatever this is).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    scan: u64,
    /// Seconds the examined messages stay hidden at most (they are made visible again as
    /// soon as the scan ends; this bounds it if the process dies).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=43_200))]
    lease: u32,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct PeekArgs {
    /// The queue, by name or URL.
    queue: String,
    /// Messages shown at most.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    max: u64,
    /// Show e-mail addresses in clear (they are masked by default).
    #[arg(long)]
    reveal: bool,
    /// Seconds the shown messages stay hidden at most (they are made visible again as soon
    /// as the peek ends; this bounds it if the process dies).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=43_200))]
    lease: u32,
    /// Print one JSON object per message instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The queue, by name or URL.
    queue: String,
    /// The JSON Lines file to write (created with owner-only permissions: it holds customer
    /// data in clear).
    #[arg(long, value_name = "FILE.jsonl")]
    out: PathBuf,
    /// Delete the exported messages from the queue, once the whole file is written and
    /// synced to disk.
    #[arg(long)]
    delete: bool,
    /// Messages exported at most (default: all).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max: Option<u64>,
    /// Overwrite FILE if it exists.
    #[arg(long)]
    force: bool,
    /// Seconds the exported messages stay hidden while the export runs; it must cover
    /// writing the file, or a message could be received twice.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..=43_200))]
    lease: u32,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// A JSON Lines file written by `referral dlq export` (possibly fixed by hand).
    file: PathBuf,
    /// The queue to send the messages to, by name or URL.
    #[arg(long)]
    to: String,
}

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The dead-letter queue, by name or URL.
    queue: String,
    /// Where the messages go, by name or URL. Default: the queue whose redrive policy names
    /// this DLQ (ListDeadLetterSourceQueues).
    #[arg(long, value_name = "QUEUE")]
    to: Option<String>,
    /// Replay only the messages matching EXPR; the others are skipped and made visible again
    /// when the run ends. Grammar below.
    #[arg(long, value_name = "EXPR")]
    filter: Option<String>,
    /// Messages replayed at most (skipped ones do not count).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max: Option<u64>,
    /// Messages per second at most, e.g. 50 or 50/s. Default: as fast as the queues answer.
    #[arg(long, value_name = "N/s", value_parser = pace::parse_rate)]
    rate: Option<f64>,
    /// Print what would be replayed and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Send copies and leave the originals in the dead-letter queue.
    #[arg(long)]
    copy: bool,
    /// Seconds a received message stays hidden while this run holds it. If the process dies,
    /// the messages it held come back after this; a rerun sooner does not see them yet.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=43_200))]
    lease: u32,
    /// Print the summary as one JSON object on stdout (per-message lines go to stderr).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    tables: TableNames,
}

impl StatsArgs {
    fn options(&self) -> StatsOptions {
        StatsOptions {
            queue: self.queue.clone(),
            scan: self.scan,
            lease: self.lease,
            json: self.json,
        }
    }
}

impl PeekArgs {
    fn options(&self) -> PeekOptions {
        PeekOptions {
            queue: self.queue.clone(),
            max: self.max,
            reveal: self.reveal,
            lease: self.lease,
            json: self.json,
        }
    }
}

impl ExportArgs {
    fn options(&self) -> ExportOptions {
        ExportOptions {
            queue: self.queue.clone(),
            out: self.out.clone(),
            delete: self.delete,
            max: self.max,
            force: self.force,
            lease: self.lease,
        }
    }
}

impl ImportArgs {
    fn options(&self) -> ImportOptions {
        ImportOptions {
            file: self.file.clone(),
            to: self.to.clone(),
        }
    }
}

impl ReplayArgs {
    fn options(&self) -> ReplayOptions {
        ReplayOptions {
            queue: self.queue.clone(),
            to: self.to.clone(),
            filter: self.filter.clone(),
            max: self.max,
            rate: self.rate,
            dry_run: self.dry_run,
            copy: self.copy,
            lease: self.lease,
            json: self.json,
            tables: Tables {
                features_table: self.tables.features_table.clone(),
                messages_table: self.tables.messages_table.clone(),
            },
        }
    }
}
