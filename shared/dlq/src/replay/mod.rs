//! `dlq replay`: messages back to their source queue (receive → send → delete, the delete
//! only once the send succeeded), or, for the orchestrator's stream failure records, the
//! orchestrator re-run over the records they point at.
//!
//! Nothing is lost whenever the process stops: a message is deleted from the DLQ only
//! after its copy is in the target queue, and whatever the run holds comes back (released at
//! the end, or after its lease if the process died). A message may be sent twice (sent, then
//! the process dies before the delete); that is harmless because the enricher acknowledges
//! an applied event as a duplicate, and on FIFO queues the deduplication id makes SQS drop
//! the second copy.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::process::ExitCode;

use aws_config::SdkConfig;
use aws_sdk_sqs::types::MessageAttributeValue;
use chrono::Utc;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use referral_aws::sqs::MAX_MESSAGE_ATTRIBUTES;
use referral_domain::redact::short_hash;
use serde::Serialize;
use tokio::time::Instant;

use super::DlqError;
use super::filter::{Facts, Filter};
use super::interrupt::{INTERRUPTED_EXIT, Interrupt};
use super::origin::QueueRole;
use super::pace::Pacer;
use super::queue::{BATCH_LIMIT, DlqMessage, Outgoing, Queue, Scan};
use super::stream::{Rerun, Rerunner, StreamFailure};
use referral_domain::orchestrator::StreamCounters;
use referral_domain::ports::AdapterError;
use referral_domain::redact::mask_emails;

mod message;
mod report;
mod rerun;

use report::{Progress, Summary};

/// The attribute counting how often a message was replayed.
pub const REPLAY_COUNT: &str = "replay_count";
/// When `replay_count` does not fit, these go first, in this order: the enricher writes
/// them again if the message fails again.
const DROPPABLE: &[&str] = &[
    "error_message",
    "enricher_version",
    "error_field",
    "source_message_id",
    "first_failure_at",
    "source",
];
/// Attributes never dropped to make room.
const KEPT: &[&str] = &[
    REPLAY_COUNT,
    "error_kind",
    "event_id",
    "event_type",
    "customer_ref",
    // The webhook's trace goes on through the replay to its message.
    referral_domain::trace::TRACEPARENT,
];

/// Test hook for crash safety: when set to k, the process exits abruptly right after the
/// k-th successful send and before that message's delete, as a kill at the worst moment
/// would. Not a flag on purpose: nobody should find it in `--help`; and only debug builds
/// (the ones the tests run) read it, so no released binary can be made to stop half-way.
const ABORT_AFTER_VAR: &str = "REFERRAL_DLQ_ABORT_AFTER";
/// Exit status of that abrupt exit.
const ABORT_EXIT: i32 = 86;

#[cfg(debug_assertions)]
fn abort_after() -> Option<u64> {
    std::env::var(ABORT_AFTER_VAR)
        .ok()
        .and_then(|value| value.trim().parse().ok())
}

#[cfg(not(debug_assertions))]
fn abort_after() -> Option<u64> {
    None
}

#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The dead-letter queue, by name or URL.
    pub queue: String,
    /// Where the messages go, by name or URL. Default: the queue whose redrive policy names
    /// this DLQ (ListDeadLetterSourceQueues).
    pub to: Option<String>,
    /// Replay only the messages matching EXPR; the others are skipped and made visible again
    /// when the run ends. Grammar below.
    pub filter: Option<String>,
    /// Messages replayed at most (skipped ones do not count).
    pub max: Option<u64>,
    /// Messages per second at most, e.g. 50 or 50/s. Default: as fast as the queues answer.
    pub rate: Option<f64>,
    /// Print what would be replayed and change nothing.
    pub dry_run: bool,
    /// Send copies and leave the originals in the dead-letter queue.
    pub copy: bool,
    /// Seconds a received message stays hidden while this run holds it. If the process dies,
    /// the messages it held come back after this; a rerun sooner does not see them yet.
    pub lease: u32,
    /// Print the summary as one JSON object on stdout (per-message lines go to stderr).
    pub json: bool,
    pub tables: Tables,
}

/// The tables of the orchestrator's stream failure records.
#[derive(Debug, Clone)]
pub struct Tables {
    /// The features table, whose stream the failure records point into.
    pub features_table: String,
    /// The messages table the re-run orchestrator writes to.
    pub messages_table: String,
}

/// What a replay did.
/// One replay run.
struct Replay<'a> {
    args: &'a ReplayOptions,
    sdk: &'a SdkConfig,
    dlq: &'a Queue,
    /// Whether the DLQ can hold stream-failure records at all.
    role: QueueRole,
    target: Option<Queue>,
    /// Why there is no target, reported when a message needs one.
    no_target: Option<DlqError>,
    filter: Option<Filter>,
    rerunner: Option<Rerunner>,
    pacer: Pacer,
    interrupt: Interrupt,
    progress: Progress,
    summary: Summary,
    sends: SendLog,
}

/// The sends of one run: how many, when, and the run's id.
#[derive(Debug)]
struct SendLog {
    /// Fresh per run: FIFO deduplication ids of `--copy` sends.
    run_id: String,
    count: u64,
    abort_after: Option<u64>,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl SendLog {
    fn new() -> Self {
        SendLog {
            run_id: short_hash(format!("{:?}{}", Utc::now(), std::process::id()).as_bytes()),
            count: 0,
            abort_after: abort_after(),
            first: None,
            last: None,
        }
    }

    /// Counts a send that began at `started` and succeeded just now. Under the crash-test
    /// hook, exits the process right after it, before the message's delete.
    fn record(&mut self, started: Instant) {
        self.first.get_or_insert(started);
        self.last = Some(Instant::now());
        self.count += 1;
        if self.abort_after == Some(self.count) {
            eprintln!(
                "{ABORT_AFTER_VAR}={}: exiting right after this send, before its delete",
                self.count
            );
            std::process::exit(ABORT_EXIT);
        }
    }

    /// From the start of the first send to the end of the last, and the rate over it.
    fn window(&self) -> Option<(f64, Option<f64>)> {
        let window = self.last?.duration_since(self.first?).as_secs_f64();
        let rate = (self.count > 1 && window > 0.0).then(|| (self.count - 1) as f64 / window);
        Some((window, rate))
    }
}

pub async fn run(args: &ReplayOptions, sdk: &SdkConfig) -> Result<ExitCode, DlqError> {
    let filter = args.filter.as_deref().map(Filter::parse).transpose()?;
    let client = aws_sdk_sqs::Client::new(sdk);
    let dlq = Queue::resolve(&client, &args.queue).await?;
    let (target, no_target) = resolve_target(&client, &dlq, args.to.as_deref()).await?;
    let role = dlq.role().await?;
    let depth = dlq.depth().await?;
    let length = args.max.map_or(depth.visible, |max| max.min(depth.visible));
    let mut replay = Replay {
        args,
        sdk,
        dlq: &dlq,
        role,
        summary: Summary {
            dlq: dlq.name().to_owned(),
            target: target.as_ref().map(|target| target.name().to_owned()),
            filter: filter.as_ref().map(|filter| filter.shown().to_owned()),
            dry_run: args.dry_run,
            copy: args.copy,
            ..Summary::default()
        },
        target,
        no_target,
        filter,
        rerunner: None,
        pacer: Pacer::new(if args.dry_run { None } else { args.rate }),
        interrupt: Interrupt::listen(),
        progress: Progress::new(length, args.json),
        sends: SendLog::new(),
    };
    let started = Instant::now();
    let mut scan = Scan::new(&dlq, args.lease);
    let outcome = replay.process(&mut scan).await;
    // Skipped, failed, copied and not-yet-handled messages: visible again at once.
    let released = scan.release_all().await;
    replay.progress.finish();
    replay.summary.elapsed_seconds = started.elapsed().as_secs_f64();
    if let Some((window, rate)) = replay.sends.window() {
        replay.summary.send_window_seconds = window;
        replay.summary.rate_per_second = rate;
    }
    replay.print_summary(depth.in_flight)?;
    outcome?;
    released?;
    Ok(if replay.summary.interrupted {
        ExitCode::from(INTERRUPTED_EXIT)
    } else if replay.summary.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The target queue, or why there is none (an error only once a message needs a target:
/// a DLQ of stream failure records has no source queue and needs none).
async fn resolve_target(
    client: &aws_sdk_sqs::Client,
    dlq: &Queue,
    to: Option<&str>,
) -> Result<(Option<Queue>, Option<DlqError>), DlqError> {
    let target = match to {
        Some(to) => Queue::resolve(client, to).await?,
        None => {
            let sources = dlq.dead_letter_sources().await?;
            match sources.as_slice() {
                [] => {
                    return Ok((
                        None,
                        Some(DlqError::NoSourceQueue {
                            dlq: dlq.name().to_owned(),
                        }),
                    ));
                }
                [source] => Queue::resolve(client, source).await?,
                several => {
                    return Ok((
                        None,
                        Some(DlqError::SeveralSourceQueues {
                            dlq: dlq.name().to_owned(),
                            count: several.len(),
                            sources: several.join(", "),
                        }),
                    ));
                }
            }
        }
    };
    // By ARN, so that a URL and a name of the same queue are recognised as one.
    if target.url() == dlq.url() || target.arn().await? == dlq.arn().await? {
        return Err(DlqError::SameQueue {
            queue: dlq.name().to_owned(),
        });
    }
    Ok((Some(target), None))
}
