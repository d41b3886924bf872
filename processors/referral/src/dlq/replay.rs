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
use referral_domain::enricher::{APPLY_STALE_ATTRIBUTE, STALE_KIND};
use referral_domain::redact::short_hash;
use serde::Serialize;
use tokio::time::Instant;

use super::DlqError;
use super::filter::{Facts, Filter};
use super::interrupt::{INTERRUPTED_EXIT, Interrupt};
use super::pace::{Pacer, parse_rate};
use super::queue::{BATCH_LIMIT, DlqMessage, Outgoing, Queue, Scan};
use super::stream::{Rerun, Rerunner, StreamFailure};
use referral_domain::ports::AdapterError;
use referral_domain::redact::mask_emails;
use referral_local::pipeline::StreamCounters;

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
    APPLY_STALE_ATTRIBUTE,
    "error_kind",
    "event_id",
    "event_type",
    "customer_ref",
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
    #[arg(long, value_name = "N/s", value_parser = parse_rate)]
    rate: Option<f64>,
    /// Print what would be replayed and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Send copies and leave the originals in the dead-letter queue.
    #[arg(long)]
    copy: bool,
    /// Also replay events dead-lettered as `stale` (older than the customer's dedupe window,
    /// so the enricher could not prove them new), marked so that the enricher applies them
    /// unless it remembers them. Only for events you know were never applied: one that was
    /// applied and forgotten would be counted twice. Without this flag stale dead letters
    /// are skipped, since replaying them unmarked only brings them back.
    #[arg(long)]
    apply_stale: bool,
    /// Seconds a received message stays hidden while this run holds it. If the process dies,
    /// the messages it held come back after this; a rerun sooner does not see them yet.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=43_200))]
    lease: u32,
    /// Print the summary as one JSON object on stdout (per-message lines go to stderr).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    tables: TableArgs,
}

/// The tables of the orchestrator's stream failure records.
#[derive(Debug, Clone, clap::Args)]
struct TableArgs {
    /// The features table, whose stream the failure records point into.
    #[arg(long, env = "FEATURES_TABLE", default_value = "CustomerFeatures")]
    features_table: String,
    /// The messages table the re-run orchestrator writes to.
    #[arg(long, env = "MESSAGES_TABLE", default_value = "ReferralMessages")]
    messages_table: String,
}

/// What a replay did.
#[derive(Debug, Clone, Default, Serialize)]
struct Summary {
    dlq: String,
    target: Option<String>,
    filter: Option<String>,
    dry_run: bool,
    copy: bool,
    /// Messages sent to the target (and deleted from the DLQ unless `copy`).
    moved: u64,
    /// Dry run: messages that would have been moved.
    would_move: u64,
    /// Stream failure records whose batch the orchestrator re-ran.
    stream_reruns: u64,
    /// Dry run: stream failure records whose records are there to re-run.
    would_rerun: u64,
    /// Messages created by the re-runs (the others existed already).
    messages_created: u64,
    skipped: u64,
    /// Stale dead letters skipped for want of `--apply-stale` (also counted in `skipped`).
    skipped_stale: u64,
    /// Messages left in the DLQ because their replay failed.
    failed: u64,
    interrupted: bool,
    elapsed_seconds: f64,
    /// From the start of the first send to the end of the last.
    send_window_seconds: f64,
    /// Sends per second over that window.
    rate_per_second: Option<f64>,
}

impl Summary {
    fn replayed(&self) -> u64 {
        self.moved + self.would_move + self.stream_reruns + self.would_rerun
    }
}

/// Per-message lines and the progress bar.
#[derive(Debug)]
struct Progress {
    bar: Option<ProgressBar>,
    to_stderr: bool,
}

impl Progress {
    fn new(length: u64, json: bool) -> Self {
        // A bar only for a person watching: logs and pipes get plain lines.
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {per_sec} {msg}",
            ) {
                bar.set_style(style);
            }
            bar
        });
        Progress {
            bar,
            to_stderr: json,
        }
    }

    /// A line about one message. Under the bar only the notable ones are printed.
    fn line(&self, notable: bool, text: &str) {
        match &self.bar {
            Some(bar) if notable => bar.println(text),
            Some(_) => {}
            None if self.to_stderr => eprintln!("{text}"),
            None => println!("{text}"),
        }
    }

    fn update(&self, summary: &Summary) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(format!(
                "moved {} skipped {} failed {}",
                summary.moved + summary.stream_reruns,
                summary.skipped,
                summary.failed
            ));
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// One replay run.
struct Replay<'a> {
    args: &'a ReplayArgs,
    sdk: &'a SdkConfig,
    dlq: &'a Queue,
    target: Option<Queue>,
    /// Why there is no target, reported when a message needs one.
    no_target: Option<DlqError>,
    filter: Option<Filter>,
    rerunner: Option<Rerunner>,
    pacer: Pacer,
    interrupt: Interrupt,
    progress: Progress,
    summary: Summary,
    /// Fresh per run: FIFO deduplication ids of `--copy` sends.
    run_id: String,
    sends: u64,
    abort_after: Option<u64>,
    first_send: Option<Instant>,
    last_send: Option<Instant>,
}

pub async fn run(args: &ReplayArgs, sdk: &SdkConfig) -> Result<ExitCode, DlqError> {
    let filter = args.filter.as_deref().map(Filter::parse).transpose()?;
    let client = aws_sdk_sqs::Client::new(sdk);
    let dlq = Queue::resolve(&client, &args.queue).await?;
    let (target, no_target) = resolve_target(&client, &dlq, args.to.as_deref()).await?;
    let depth = dlq.depth().await?;
    let length = args.max.map_or(depth.visible, |max| max.min(depth.visible));
    let mut replay = Replay {
        args,
        sdk,
        dlq: &dlq,
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
        run_id: short_hash(format!("{:?}{}", Utc::now(), std::process::id()).as_bytes()),
        sends: 0,
        abort_after: abort_after(),
        first_send: None,
        last_send: None,
    };
    let started = Instant::now();
    let mut scan = Scan::new(&dlq, args.lease);
    let outcome = replay.process(&mut scan).await;
    // Skipped, failed, copied and not-yet-handled messages: visible again at once.
    let released = scan.release_all().await;
    replay.progress.finish();
    replay.summary.elapsed_seconds = started.elapsed().as_secs_f64();
    if let (Some(first), Some(last)) = (replay.first_send, replay.last_send) {
        let window = last.duration_since(first).as_secs_f64();
        replay.summary.send_window_seconds = window;
        if replay.sends > 1 && window > 0.0 {
            replay.summary.rate_per_second = Some((replay.sends - 1) as f64 / window);
        }
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

impl Replay<'_> {
    async fn process(&mut self, scan: &mut Scan<'_>) -> Result<(), DlqError> {
        let max = self.args.max.unwrap_or(u64::MAX);
        // Receive no more than the run can handle well within the lease, so that held
        // messages do not reappear (under a new receipt, which the delete would need) while
        // they wait for their turn. Two batches are held at once (one received ahead), so
        // each may take a third of the lease.
        let per_lease = self.args.rate.map_or(BATCH_LIMIT, |rate| {
            let fit = rate * f64::from(self.args.lease) / 3.0;
            if fit >= BATCH_LIMIT as f64 {
                BATCH_LIMIT
            } else {
                (fit as usize).max(1)
            }
        });
        let want = |remaining: u64| {
            usize::try_from(remaining)
                .unwrap_or(BATCH_LIMIT)
                .min(per_lease)
        };
        let mut batch = Vec::new();
        loop {
            let remaining = max.saturating_sub(self.summary.replayed());
            if remaining == 0 || self.interrupt.is_set() {
                break;
            }
            if batch.is_empty() {
                batch = scan.next(want(remaining)).await?;
                if batch.is_empty() {
                    break;
                }
            }
            // The next batch is received while this one is replayed: a paced replay spends
            // most of its time waiting for its slots, and a receive added to that wait, every
            // batch, would hold the average below the rate.
            let ahead = remaining.saturating_sub(batch.len() as u64);
            let next = async {
                if ahead == 0 {
                    Ok(Vec::new())
                } else {
                    scan.next(want(ahead)).await
                }
            };
            let ((deleted, handled), next) = tokio::join!(self.handle_batch(&batch, max), next);
            for message_id in &deleted {
                scan.forget(message_id);
            }
            handled?;
            batch = next?;
        }
        self.summary.interrupted = self.interrupt.is_set();
        Ok(())
    }

    /// Replays a batch until it ends, `--max` is reached or Ctrl-C; what it does not reach
    /// stays held, released with the rest when the run ends. Returns the ids of the messages
    /// deleted from the DLQ (the scan no longer holds them), also when a message failed.
    async fn handle_batch(
        &mut self,
        batch: &[DlqMessage],
        max: u64,
    ) -> (Vec<String>, Result<(), DlqError>) {
        let mut deleted = Vec::new();
        for message in batch {
            if self.interrupt.is_set() || self.summary.replayed() >= max {
                break;
            }
            match self.handle(message).await {
                Ok(true) => deleted.push(message.message_id.clone()),
                Ok(false) => {}
                Err(error) => return (deleted, Err(error)),
            }
            self.progress.update(&self.summary);
        }
        (deleted, Ok(()))
    }

    /// Replays one message. `true` when it was deleted from the DLQ.
    async fn handle(&mut self, message: &DlqMessage) -> Result<bool, DlqError> {
        let facts = Facts::of(message);
        let label = describe(message, &facts);
        if let Some(filter) = &self.filter {
            if !filter.matches(&facts, Utc::now()) {
                self.summary.skipped += 1;
                self.progress.line(false, &format!("skipped    {label}"));
                return Ok(false);
            }
        }
        if let Some(failure) = StreamFailure::recognise(&message.body) {
            return self.rerun(message, &failure, &label).await;
        }
        let stale = facts.kind == STALE_KIND;
        if stale && !self.args.apply_stale {
            self.summary.skipped += 1;
            self.summary.skipped_stale += 1;
            self.progress.line(
                true,
                &format!("skipped    {label}: stale; --apply-stale replays it to be applied"),
            );
            return Ok(false);
        }
        let Some(target) = self.target.clone() else {
            return Err(self.no_target.take().unwrap_or(DlqError::NoSourceQueue {
                dlq: self.dlq.name().to_owned(),
            }));
        };
        if self.args.dry_run {
            self.summary.would_move += 1;
            self.progress
                .line(true, &format!("would move {label} → {}", target.name()));
            return Ok(false);
        }
        let (outgoing, replay_count, dropped) = match self.outgoing(message, &target, stale) {
            Ok(built) => built,
            Err(reason) => {
                self.summary.failed += 1;
                self.progress
                    .line(true, &format!("failed     {label}: {reason}"));
                return Ok(false);
            }
        };
        if !self.pacer.wait(&mut self.interrupt).await {
            return Ok(false);
        }
        let send_started = Instant::now();
        let sent = target.send(outgoing).await;
        if let Err(error) = sent {
            self.summary.failed += 1;
            self.progress.line(
                true,
                &format!(
                    "failed     {label}: sending to {} failed ({error}); it stays in {}",
                    target.name(),
                    self.dlq.name()
                ),
            );
            return Ok(false);
        }
        self.first_send.get_or_insert(send_started);
        self.last_send = Some(Instant::now());
        self.sends += 1;
        if self.abort_after == Some(self.sends) {
            eprintln!(
                "{ABORT_AFTER_VAR}={}: exiting right after this send, before its delete",
                self.sends
            );
            std::process::exit(ABORT_EXIT);
        }
        let dropped = if dropped.is_empty() {
            String::new()
        } else {
            format!(" (dropped {} to make room)", dropped.join(", "))
        };
        let done = format!(
            "{label} → {} (replay {replay_count}){dropped}",
            target.name()
        );
        let dlq = self.dlq.name();
        Ok(self
            .settle(
                message,
                |summary| &mut summary.moved,
                (format!("copied     {done}"), format!("moved      {done}")),
                |error| {
                    format!(
                        "failed     {label}: sent to {} but not deleted from {dlq} ({error}); a \
                         rerun sends it again, which is harmless (the enricher skips applied \
                         events)",
                        target.name()
                    )
                },
            )
            .await)
    }

    /// After a message's work succeeded: keeps it in the DLQ (`--copy`) or deletes it, and
    /// counts it with `count` and prints the line of whichever happened (`lines`: kept,
    /// deleted). A failed delete counts as a failure, explained by `undeleted`. `true` when
    /// the message was deleted.
    async fn settle(
        &mut self,
        message: &DlqMessage,
        count: fn(&mut Summary) -> &mut u64,
        lines: (String, String),
        undeleted: impl FnOnce(&AdapterError) -> String,
    ) -> bool {
        let (kept, deleted) = lines;
        if self.args.copy {
            *count(&mut self.summary) += 1;
            self.progress.line(false, &kept);
            return false;
        }
        match self.dlq.delete(&message.receipt).await {
            Ok(()) => {
                *count(&mut self.summary) += 1;
                self.progress.line(false, &deleted);
                true
            }
            Err(error) => {
                self.summary.failed += 1;
                self.progress.line(true, &undeleted(&error));
                false
            }
        }
    }

    /// Re-runs the orchestrator for a stream failure record; deletes the record once every
    /// message of its batch exists.
    async fn rerun(
        &mut self,
        message: &DlqMessage,
        failure: &StreamFailure,
        label: &str,
    ) -> Result<bool, DlqError> {
        if self.rerunner.is_none() {
            let rerunner = Rerunner::new(
                self.sdk,
                &self.args.tables.features_table,
                &self.args.tables.messages_table,
            )?;
            self.progress.line(
                false,
                &format!(
                    "stream failure records re-run the orchestrator into {} with the {}",
                    self.args.tables.messages_table,
                    rerunner.generator_name()
                ),
            );
            self.rerunner = Some(rerunner);
        }
        if !self.args.dry_run && !self.pacer.wait(&mut self.interrupt).await {
            return Ok(false);
        }
        let Some(rerunner) = &self.rerunner else {
            return Ok(false);
        };
        let where_ = failure.describe();
        let (result, counters) = match rerunner.rerun(failure, self.args.dry_run).await {
            Rerun::WouldRun { records } => {
                self.summary.would_rerun += 1;
                self.progress.line(
                    true,
                    &format!("would re-run {label}: {where_}, {records} record(s) retained"),
                );
                return Ok(false);
            }
            Rerun::WouldReconcile => {
                self.summary.would_rerun += 1;
                self.progress.line(
                    true,
                    &format!(
                        "would re-run {label}: {where_}: records no longer retained, every \
                         customer's current features would be checked"
                    ),
                );
                return Ok(false);
            }
            Rerun::Failed(reason) => {
                self.summary.failed += 1;
                self.progress.line(
                    true,
                    &format!(
                        "failed     {label}: {where_}: {reason}; left in {}",
                        self.dlq.name()
                    ),
                );
                return Ok(false);
            }
            Rerun::Done { records, counters } => (
                format!(
                    "{records} record(s), {} message(s) created, {} existed already",
                    counters.messages_created, counters.already_created
                ),
                counters,
            ),
            Rerun::Reconciled { customers: 0, .. } => (
                "records no longer retained; covered by this run's check of every customer"
                    .to_owned(),
                StreamCounters::default(),
            ),
            Rerun::Reconciled {
                customers,
                counters,
            } => (
                format!(
                    "records no longer retained; checked every customer's current features \
                     ({customers}): {} message(s) created, {} existed already",
                    counters.messages_created, counters.already_created
                ),
                counters,
            ),
        };
        self.summary.messages_created += counters.messages_created;
        let done = format!("re-ran     {label}: {where_}: {result}");
        Ok(self
            .settle(
                message,
                |summary| &mut summary.stream_reruns,
                (done.clone(), done),
                |error| {
                    format!(
                        "failed     {label}: re-ran {where_} ({result}) but could not delete the \
                         record ({error}); a rerun finds the messages exist"
                    )
                },
            )
            .await)
    }

    /// The message to send: body and attributes as they were, `replay_count` added or
    /// incremented, `apply_stale` for a stale event replayed on purpose, FIFO group kept and
    /// a fresh deduplication id.
    fn outgoing(
        &self,
        message: &DlqMessage,
        target: &Queue,
        apply_stale: bool,
    ) -> Result<(Outgoing, u32, Vec<String>), String> {
        let count = message
            .attribute(REPLAY_COUNT)
            .and_then(|count| count.trim().parse::<u32>().ok())
            .unwrap_or(0)
            .saturating_add(1);
        let mut attributes = message.attributes.clone();
        let value = MessageAttributeValue::builder()
            .data_type("Number")
            .string_value(count.to_string())
            .build()
            .map_err(|error| format!("cannot build the {REPLAY_COUNT} attribute: {error}"))?;
        attributes.insert(REPLAY_COUNT.to_owned(), value);
        if apply_stale {
            let marker = MessageAttributeValue::builder()
                .data_type("String")
                .string_value("true")
                .build()
                .map_err(|error| {
                    format!("cannot build the {APPLY_STALE_ATTRIBUTE} attribute: {error}")
                })?;
            attributes.insert(APPLY_STALE_ATTRIBUTE.to_owned(), marker);
        }
        let dropped = make_room(&mut attributes);
        let mut outgoing = Outgoing {
            body: message.body.clone(),
            attributes,
            ..Outgoing::default()
        };
        if target.is_fifo() {
            outgoing.group_id = Some(
                message
                    .group_id
                    .clone()
                    .or_else(|| message.attribute("customer_ref").map(str::to_owned))
                    .or_else(|| message.attribute("event_id").map(str::to_owned))
                    .unwrap_or_else(|| "replay".to_owned()),
            );
            // Not the original's id (SQS would drop the message as a duplicate of its first
            // send). Stable for a move, so a send repeated after a crash is dropped by SQS;
            // unique per run for a copy, which is asked for on purpose.
            outgoing.deduplication_id = Some(if self.args.copy {
                format!("copy-{}-{}", self.run_id, message.message_id)
            } else {
                format!("replay-{}-{count}", message.message_id)
            });
        }
        Ok((outgoing, count, dropped))
    }

    fn print_summary(&self, in_flight_at_start: u64) -> Result<(), DlqError> {
        let summary = &self.summary;
        if self.args.json {
            println!("{}", serde_json::to_string(summary)?);
            return Ok(());
        }
        let target = summary.target.as_deref().unwrap_or("(no target queue)");
        let mut head = format!("replay of {} → {target}", summary.dlq);
        if let Some(filter) = &summary.filter {
            head.push_str(&format!(", filter {filter}"));
        }
        if summary.copy {
            head.push_str(", copies");
        }
        println!("{head}");
        if summary.dry_run {
            println!(
                "dry run: would move {}, would re-run {} stream batch(es), skipped {}, failed {}; \
                 nothing was changed",
                summary.would_move, summary.would_rerun, summary.skipped, summary.failed
            );
        } else {
            println!(
                "summary: moved {}, skipped {}, failed {}; stream batches re-run {} ({} message(s) \
                 created)",
                summary.moved,
                summary.skipped,
                summary.failed,
                summary.stream_reruns,
                summary.messages_created
            );
        }
        let mut timing = format!("took {:.2} s", summary.elapsed_seconds);
        if let Some(rate) = summary.rate_per_second {
            timing.push_str(&format!(
                "; {} sends in {:.2} s, {rate:.1}/s",
                self.sends, summary.send_window_seconds
            ));
        }
        println!("{timing}");
        if summary.interrupted {
            println!("interrupted: run the same command again to continue");
        }
        if summary.skipped_stale > 0 {
            println!(
                "{} stale event(s) skipped: the enricher could not prove them new. Replay them \
                 with --apply-stale (e.g. --filter kind=stale --apply-stale) only if they were \
                 never applied",
                summary.skipped_stale
            );
        }
        if summary.failed > 0 {
            println!(
                "failed messages stay in {} (see the lines above)",
                summary.dlq
            );
        }
        if in_flight_at_start > 0 {
            println!(
                "note: {in_flight_at_start} message(s) were in flight when the run started (held by \
                 another consumer or a crashed run) and were not seen; run again once their lease \
                 has run out"
            );
        }
        Ok(())
    }
}

/// Drops attributes until SQS's limit is met: `replay_count` was added to a message that
/// may have had ten already. Returns the names dropped.
fn make_room(attributes: &mut HashMap<String, MessageAttributeValue>) -> Vec<String> {
    let mut dropped = Vec::new();
    while attributes.len() > MAX_MESSAGE_ATTRIBUTES {
        let victim = DROPPABLE
            .iter()
            .map(|name| (*name).to_owned())
            .find(|name| attributes.contains_key(name))
            .or_else(|| {
                attributes
                    .keys()
                    .filter(|name| !KEPT.contains(&name.as_str()))
                    .max()
                    .cloned()
            });
        match victim {
            Some(name) => {
                attributes.remove(&name);
                dropped.push(name);
            }
            None => break,
        }
    }
    dropped
}

/// A message for a line of output: id, kind, event id and type; never an address.
fn describe(message: &DlqMessage, facts: &Facts) -> String {
    let mut text = format!("{} kind={}", message.message_id, facts.kind);
    if let Some(event_id) = &facts.event_id {
        text.push_str(&format!(" event={}", mask_emails(event_id)));
    }
    if let Some(event_type) = &facts.event_type {
        text.push_str(&format!(" type={}", mask_emails(event_type)));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attribute(value: &str) -> MessageAttributeValue {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .unwrap()
    }

    #[test]
    fn replay_count_always_fits_and_reason_details_go_first() {
        let mut attributes: HashMap<String, MessageAttributeValue> = [
            "error_kind",
            "error_field",
            "error_message",
            "enricher_version",
            "first_failure_at",
            "source_message_id",
            "event_id",
            "event_type",
            "customer_ref",
            "source",
            REPLAY_COUNT,
        ]
        .into_iter()
        .map(|name| (name.to_owned(), attribute("x")))
        .collect();
        assert_eq!(make_room(&mut attributes), vec!["error_message".to_owned()]);
        assert_eq!(attributes.len(), MAX_MESSAGE_ATTRIBUTES);
        assert!(attributes.contains_key(REPLAY_COUNT));

        let mut others: HashMap<String, MessageAttributeValue> = (0..10)
            .map(|index| (format!("a{index}"), attribute("x")))
            .chain([(REPLAY_COUNT.to_owned(), attribute("1"))])
            .collect();
        assert_eq!(make_room(&mut others), vec!["a9".to_owned()]);
        assert!(others.contains_key(REPLAY_COUNT));

        let mut few: HashMap<String, MessageAttributeValue> =
            [(REPLAY_COUNT.to_owned(), attribute("1"))].into();
        assert!(make_room(&mut few).is_empty());
    }
}
