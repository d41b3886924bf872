//! `referral backfill`: loads a history of webhooks (JSON/JSONL as `run` reads them, CSV
//! exports) into the feature store through the live path's enricher core, so the fold,
//! the dedupe memory, the archive and the conditional writes are the live path's own.
//!
//! Two passes. The first streams every input, validates each event as ingest would
//! (a refused one goes to the rejects file with its `file:line` and field) and spills the
//! valid ones into partition files by customer, in a state directory named by the inputs.
//! The second takes the partitions one at a time (memory: one partition), groups them by
//! customer and hands customers to the enricher in batches: each customer's item is written
//! once per `max_events_per_write` of its events, merged with what the table holds under the
//! version condition. After each batch its finished customers are appended to a checkpoint,
//! so a rerun after an interruption skips them; a complete run removes its state directory.

pub use referral_fixtures::csv;
mod s3;

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use referral_aws::backfill::{
    Classified, HistoryEnricher, HistoryTables, WritePace, WriteTally, batches, classify,
    customer_histories, dynamo_enricher, load_batch, partition_of,
};
use referral_domain::enricher::Outcome;
use referral_domain::ports::{AdapterError, ErasureLog, EventArchive, FeatureStore, MessageStore};
use referral_local::pipeline::{InputEvent, RejectedEvent};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::inputs::{self, InputError};
use crate::lifetime::{LifetimeValueArgs, parse_units};
use crate::names::TableNames;
use crate::policy::RetentionArgs;

#[derive(Debug, clap::Args)]
pub struct BackfillArgs {
    /// Webhook files (.json, .jsonl, .ndjson), CSV exports (.csv) or directories of them.
    #[arg(required_unless_present = "status")]
    paths: Vec<PathBuf>,
    /// Validate, then write the valid events to S3 partitioned by customer (JSONL objects
    /// `PREFIX/part-NNNN.jsonl`), for the template's backfill state machine; no table is written.
    #[arg(long, value_name = "s3://BUCKET/PREFIX", value_parser = s3::S3Location::parse, conflicts_with = "status")]
    to: Option<s3::S3Location>,
    /// With `--to`: how many objects the customers are spread over (the map's items).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=MAX_PARTITIONS), requires = "to")]
    partitions: u64,
    /// Follow a run of the backfill state machine until it ends (its execution ARN).
    #[arg(long, value_name = "EXECUTION_ARN")]
    status: Option<String>,
    /// With `--status`: seconds between two looks at the execution.
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600), requires = "status")]
    poll_seconds: u64,
    /// Where refused events go, one JSON object a line (source, field, kind, error, body).
    #[arg(long, default_value = "backfill-rejects.jsonl")]
    rejects: PathBuf,
    /// Where the partitions and the checkpoint of a run are kept until it completes.
    #[arg(long, default_value = ".referral-backfill")]
    state_dir: PathBuf,
    /// At most this many write units a second (item and archive writes). Unset: no cap.
    #[arg(long, value_name = "N", value_parser = parse_units)]
    max_write_units: Option<f64>,
    /// One JSON object instead of the summary line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    tables: TableNames,
    #[command(flatten)]
    rule: LifetimeValueArgs,
    #[command(flatten)]
    retention: RetentionArgs,
}

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("{path}:{line}: {source}")]
    Header {
        path: PathBuf,
        line: usize,
        #[source]
        source: csv::HeaderError,
    },
    #[error("cannot write `{path}`: {source}")]
    State {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` is damaged ({detail}); delete it to start this backfill afresh")]
    Damaged { path: PathBuf, detail: String },
    #[error(transparent)]
    Rule(#[from] referral_domain::features::RuleError),
    #[error(transparent)]
    Store(#[from] AdapterError),
    #[error("cannot encode the report as JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{action}: {detail}")]
    Aws { action: String, detail: String },
}

/// Input bytes per partition: the second pass holds one partition in memory.
const PARTITION_BYTES: u64 = 64 << 20;
const MAX_PARTITIONS: u64 = 4096;

/// What a backfill did.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// Events read from the inputs (this run's first pass, or the interrupted run's).
    pub events: u64,
    pub rejected: u64,
    /// Well-formed events of another type than `service.completed`.
    pub ignored: u64,
    pub customers: u64,
    /// Customers an interrupted run had finished, not redone.
    pub customers_skipped: u64,
    pub applied: u64,
    /// Events the table held already (a second run, live traffic, duplicates in the inputs).
    pub duplicates: u64,
    #[serde(flatten)]
    pub writes: WriteTally,
    /// Write units of items and archive together, per event read.
    pub write_units_per_event: f64,
    /// Customers left unfinished (masked): run again.
    pub failed: Vec<String>,
    pub resumed: bool,
    pub rejects: PathBuf,
    pub elapsed_seconds: f64,
}

/// One valid event, spilled to its customer's partition.
#[derive(Debug, Serialize, Deserialize)]
struct Spilled {
    customer: String,
    /// When it occurred, in seconds: a customer's history is applied in time order, as live
    /// traffic would have, so most events land above the item's floor (no archive read).
    at: i64,
    source: String,
    body: String,
}

/// What the first pass found, kept so a resumed run reports it.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Scan {
    events: u64,
    valid: u64,
    rejected: u64,
    ignored: u64,
    partitions: u64,
}

pub async fn run(args: &BackfillArgs, sdk: &SdkConfig) -> Result<ExitCode, BackfillError> {
    if let Some(execution) = &args.status {
        return s3::follow(
            execution,
            Duration::from_secs(args.poll_seconds),
            args.json,
            sdk,
        )
        .await;
    }
    if let Some(target) = &args.to {
        return s3::upload(args, target, sdk).await;
    }
    let rule = args.rule.rule()?;
    let pace = args
        .max_write_units
        .map(|units| Arc::new(WritePace::new(units)));
    let (enricher, tally) = dynamo_enricher(
        &aws_sdk_dynamodb::Client::new(sdk),
        &HistoryTables {
            features: args.tables.features_table.clone(),
            archive: args.tables.archive_table.clone(),
            messages: args.tables.messages_table.clone(),
        },
        args.retention.message_retention,
        rule,
        pace,
    );
    let report = backfill(args, &enricher, &tally).await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{}", summary_line(&report));
    }
    let complete = report.failed.is_empty() && report.writes.unrecorded == 0;
    Ok(if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The whole backfill on any adapters (the CLI's are DynamoDB's).
pub async fn backfill<S, M, A>(
    args: &BackfillArgs,
    enricher: &HistoryEnricher<S, M, A>,
    tally: &Mutex<WriteTally>,
) -> Result<Report, BackfillError>
where
    S: FeatureStore,
    M: MessageStore,
    A: EventArchive + ErasureLog,
{
    let started = Instant::now();
    let files = inputs::input_files(&args.paths, is_backfill_file)?;
    let state = args
        .state_dir
        .join(run_key(&files, &args.tables.features_table)?);
    let scan_path = state.join("scan.json");
    let resumed = scan_path.is_file();
    let scan = match resumed {
        true => {
            let text = fs::read_to_string(&scan_path).map_err(state_error(&scan_path))?;
            serde_json::from_str(&text).map_err(|error| BackfillError::Damaged {
                path: scan_path.clone(),
                detail: error.to_string(),
            })?
        }
        false => first_pass(&files, &state, &args.rejects, partitions_for(&files))?,
    };
    let done_path = state.join("done");
    let done = finished_customers(&done_path)?;
    let mut checkpoint = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&done_path)
        .map_err(state_error(&done_path))?;
    let mut rejects = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.rejects)
        .map_err(state_error(&args.rejects))?;

    let mut report = Report {
        events: scan.events,
        rejected: scan.rejected,
        ignored: scan.ignored,
        resumed,
        rejects: args.rejects.clone(),
        ..Report::default()
    };
    let progress = progress_bar(scan.valid);
    for partition in 0..scan.partitions {
        let path = partition_path(&state, partition);
        let file = File::open(&path).map_err(state_error(&path))?;
        let mut spilled = Vec::new();
        for (index, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(state_error(&path))?;
            let event: Spilled =
                serde_json::from_str(&line).map_err(|error| BackfillError::Damaged {
                    path: path.clone(),
                    detail: format!("line {}: {error}", index + 1),
                })?;
            spilled.push((event.customer, event.at, event.source, event.body));
        }
        let mut pending = Vec::new();
        for (customer, events) in customer_histories(spilled) {
            report.customers += 1;
            if done.contains(&customer_hash(&customer)) {
                report.customers_skipped += 1;
                progress.inc(events.len() as u64);
            } else {
                pending.push((customer, events));
            }
        }
        for batch in batches(pending) {
            let loaded = load_batch(enricher, &batch, resumed).await;
            report.applied += loaded.applied;
            report.duplicates += loaded.duplicates;
            report.failed.extend(loaded.unfinished);
            for refused in &loaded.refused {
                report.rejected += 1;
                let rejected = RejectedEvent {
                    source: refused.source.clone(),
                    event_id: refused.event_id.clone(),
                    kind: refused.kind,
                    field: refused.field,
                    error: refused.error.clone(),
                };
                reject(&mut rejects, &rejected, &refused.body)
                    .map_err(state_error(&args.rejects))?;
            }
            for customer in loaded.finished {
                writeln!(checkpoint, "{}", customer_hash(&customer))
                    .and_then(|()| checkpoint.flush())
                    .map_err(state_error(&done_path))?;
            }
            progress.inc(batch.iter().map(|(_, events)| events.len() as u64).sum());
        }
    }
    progress.finish_and_clear();
    report.writes = *tally.lock().unwrap_or_else(PoisonError::into_inner);
    report.write_units_per_event = match report.events {
        0 => 0.0,
        events => report.writes.write_units() as f64 / events as f64,
    };
    report.elapsed_seconds = started.elapsed().as_secs_f64();
    if report.failed.is_empty() {
        // Complete: a rerun starts afresh (and finds every event applied).
        fs::remove_dir_all(&state).map_err(state_error(&state))?;
    }
    Ok(report)
}

/// Streams every input, refuses what ingest would, spills the rest by customer.
fn first_pass(
    files: &[PathBuf],
    state: &Path,
    rejects_path: &Path,
    partitions: u64,
) -> Result<Scan, BackfillError> {
    fs::create_dir_all(state).map_err(state_error(state))?;
    let mut parts = Vec::new();
    for partition in 0..partitions {
        let path = partition_path(state, partition);
        parts.push(BufWriter::new(
            File::create(&path).map_err(state_error(&path))?,
        ));
    }
    let mut rejects =
        BufWriter::new(File::create(rejects_path).map_err(state_error(rejects_path))?);
    let mut scan = Scan {
        partitions,
        ..Scan::default()
    };
    let mut write_error = None;
    let mut each = |read: Read| {
        if write_error.is_some() {
            return;
        }
        scan.events += 1;
        let written = match read {
            Read::Event(event) => spill(event, &mut parts, &mut rejects, &mut scan),
            Read::Refused(refused, text) => {
                scan.rejected += 1;
                reject(&mut rejects, &refused, &text)
            }
        };
        if let Err(error) = written {
            write_error = Some(error);
        }
    };
    for file in files {
        if is_csv(file) {
            read_csv(file, &mut each)?;
        } else {
            inputs::read_file(file, &mut |event| each(Read::Event(event)))?;
        }
    }
    if let Some(error) = write_error {
        return Err(state_error(state)(error));
    }
    for mut part in parts {
        part.flush().map_err(state_error(state))?;
    }
    rejects.flush().map_err(state_error(rejects_path))?;
    // Written last: its presence says the partitions are complete.
    let scan_path = state.join("scan.json");
    let partial = state.join("scan.json.partial");
    fs::write(&partial, serde_json::to_vec(&scan)?).map_err(state_error(&partial))?;
    fs::rename(&partial, &scan_path).map_err(state_error(&scan_path))?;
    Ok(scan)
}

/// Enough partitions that one fits in memory.
fn partitions_for(files: &[PathBuf]) -> u64 {
    let bytes: u64 = files
        .iter()
        .filter_map(|file| fs::metadata(file).ok())
        .map(|metadata| metadata.len())
        .sum();
    bytes.div_ceil(PARTITION_BYTES).clamp(1, MAX_PARTITIONS)
}

/// What the first pass reads: an event, or a CSV row that is no event at all (with its text).
enum Read {
    Event(InputEvent),
    Refused(RejectedEvent, String),
}

/// One event: refused (reported, and written to the rejects file) or spilled.
fn spill(
    event: InputEvent,
    parts: &mut [BufWriter<File>],
    rejects: &mut impl Write,
    scan: &mut Scan,
) -> std::io::Result<()> {
    if let Err(refused) = event.to_queue() {
        scan.rejected += 1;
        return reject(rejects, &refused, &event.body);
    }
    match classify(&event.body) {
        Classified::Service { customer, at } => {
            scan.valid += 1;
            let partition = partition_of(&customer, parts.len());
            let spilled = Spilled {
                customer,
                at,
                source: event.source,
                body: event.body,
            };
            let line = serde_json::to_string(&spilled).map_err(std::io::Error::other)?;
            writeln!(parts[partition], "{line}")
        }
        Classified::Other => {
            scan.ignored += 1;
            Ok(())
        }
        Classified::Refused(rejection) => {
            scan.rejected += 1;
            let event_id = rejection.event_id.clone();
            let refusal = Outcome::Rejected(rejection).refusal();
            let refused = RejectedEvent {
                source: event.source,
                event_id,
                kind: refusal.as_ref().map_or("invalid_value", |r| r.kind),
                field: refusal.as_ref().map_or("body", |r| r.field),
                error: refusal.map_or_else(String::new, |r| r.message),
            };
            reject(rejects, &refused, &event.body)
        }
    }
}

/// Reports a refused event on stderr (where and which field, never its values) and keeps
/// it, body included, in the rejects file to be fixed and loaded again.
fn reject(rejects: &mut impl Write, refused: &RejectedEvent, body: &str) -> std::io::Result<()> {
    eprintln!(
        "rejected {}: `{}` ({}): {}",
        refused.source, refused.field, refused.kind, refused.error
    );
    #[derive(Serialize)]
    struct Line<'a> {
        #[serde(flatten)]
        refused: &'a RejectedEvent,
        body: &'a str,
    }
    let line = serde_json::to_string(&Line { refused, body }).map_err(std::io::Error::other)?;
    writeln!(rejects, "{line}")
}

/// Each row of a CSV export as the webhook body it stands for.
fn read_csv(file: &Path, each: &mut dyn FnMut(Read)) -> Result<(), BackfillError> {
    let read_error = |source| InputError::Read {
        path: file.to_owned(),
        source,
    };
    let name = file.display().to_string();
    let mut records = csv::Records::new(BufReader::new(File::open(file).map_err(read_error)?));
    let header_error = |line, source| BackfillError::Header {
        path: file.to_owned(),
        line,
        source,
    };
    let Some(header) = records.next_record().map_err(read_error)? else {
        return Err(header_error(1, csv::HeaderError::Missing));
    };
    let columns = csv::header(&header).map_err(|source| header_error(header.line, source))?;
    while let Some(record) = records.next_record().map_err(read_error)? {
        let source = format!("{name}:{}", record.line);
        match (record.utf8, csv::row_body(&columns, &record)) {
            (true, Ok(body)) => each(Read::Event(InputEvent {
                source,
                body,
                utf8: true,
            })),
            // Not UTF-8: refused as ingest refuses such a body (`not_utf8`).
            (false, _) => each(Read::Event(InputEvent {
                source,
                body: record.text,
                utf8: false,
            })),
            (true, Err(error)) => each(Read::Refused(
                RejectedEvent {
                    source,
                    event_id: None,
                    kind: "malformed_row",
                    field: "row",
                    error: error.to_string(),
                },
                record.text,
            )),
        }
    }
    Ok(())
}

fn is_csv(path: &Path) -> bool {
    inputs::extension(path) == "csv"
}

fn is_backfill_file(path: &Path) -> bool {
    inputs::is_webhook_file(path) || is_csv(path)
}

/// Names a run by its inputs (path, size, modification time) and table, so that a rerun of
/// the same inputs resumes it and other inputs start their own.
fn run_key(files: &[PathBuf], table: &str) -> Result<String, BackfillError> {
    let mut hash = Sha256::new();
    hash.update(table.as_bytes());
    for file in files {
        let metadata = fs::metadata(file).map_err(|source| InputError::Read {
            path: file.clone(),
            source,
        })?;
        let modified = metadata
            .modified()
            .ok()
            .and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |at| at.as_nanos());
        let path = fs::canonicalize(file).unwrap_or_else(|_| file.clone());
        hash.update(path.to_string_lossy().as_bytes());
        hash.update(metadata.len().to_le_bytes());
        hash.update(modified.to_le_bytes());
    }
    Ok(hex(&hash.finalize()[..8]))
}

/// A customer in the checkpoint: a hash, so the file holds no e-mail address.
fn customer_hash(customer: &str) -> String {
    hex(&Sha256::digest(customer.as_bytes())[..12])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn partition_path(state: &Path, partition: u64) -> PathBuf {
    state.join(format!("part-{partition:04}.jsonl"))
}

fn finished_customers(path: &Path) -> Result<HashSet<String>, BackfillError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(HashSet::new()),
        Err(error) => Err(state_error(path)(error)),
    }
}

fn state_error(path: &Path) -> impl Fn(std::io::Error) -> BackfillError + '_ {
    move |source| BackfillError::State {
        path: path.to_owned(),
        source,
    }
}

/// A bar with events/s and an ETA for a person watching; nothing for pipes and logs.
fn progress_bar(events: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(events), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} events {per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}

fn summary_line(report: &Report) -> String {
    let mut line = format!(
        "backfill: {} events ({} applied, {} duplicates, {} rejected, {} ignored), {} customers \
         ({} finished before), {} item writes + {} archive writes = {} write units \
         ({:.3} per event), {} refused writes, {:.1} s",
        report.events,
        report.applied,
        report.duplicates,
        report.rejected,
        report.ignored,
        report.customers,
        report.customers_skipped,
        report.writes.item_writes,
        report.writes.archive_writes,
        report.writes.write_units(),
        report.write_units_per_event,
        report.writes.refused_writes,
        report.elapsed_seconds
    );
    if report.rejected > 0 {
        line.push_str(&format!("; rejects in {}", report.rejects.display()));
    }
    if !report.failed.is_empty() {
        line.push_str(&format!(
            "; {} customers unfinished (run again): {}",
            report.failed.len(),
            report.failed.join(", ")
        ));
    }
    if report.writes.unrecorded > 0 {
        line.push_str(&format!(
            "; {} changes without a recorded outcome",
            report.writes.unrecorded
        ));
    }
    line
}
