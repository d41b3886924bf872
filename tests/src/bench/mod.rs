//! The enricher's capacity-and-CPU benchmark: a seeded corpus delivered as SQS batches to
//! the enricher's release binary under a loopback Lambda Runtime API, against moto with its
//! request recorder on. It reports, per applied event, DynamoDB requests by operation and
//! read and write units (from the recorded items, by DynamoDB's sizing rules), the largest
//! item, the bytes each stream record carries, and the function's CPU per delivered event.

mod events;
mod table;

use std::path::PathBuf;
use std::time::Duration;

use referral_aws_local::provision::{QueuePair, TableNames};
use referral_lambda_emulator::{
    FunctionSpec, InvocationOutcome, InvokeError, RunStats, run_function,
};
use serde::Serialize;

use crate::capacity::{CapacityError, CapacityReport, account_recording};
use crate::corpus::Corpus;
use crate::emulator::{fresh_queues, fresh_tables, sdk_config};
use crate::recorder::{Recorder, RecorderError};
use crate::stream_bytes::{StreamFetchError, StreamSummary, fetch_table_records, summarize};

pub use table::render;

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchSpec {
    /// The enricher binary (the release `enricher`, or a `bootstrap`).
    pub enricher: PathBuf,
    pub corpus: Corpus,
    /// Enricher processes at once, each given every `instances`-th batch, as a concurrent
    /// event-source mapping would spread them: each process has its own item cache.
    pub instances: usize,
}

/// The figures, per applied event unless named otherwise.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub deliveries: usize,
    pub applied_events: u64,
    pub batches: usize,
    pub instances: usize,
    pub requests_by_operation: std::collections::BTreeMap<String, f64>,
    pub requests: f64,
    pub write_units: f64,
    pub read_units: f64,
    pub usd_per_million_events: f64,
    /// The feature table's share: the hot path (one conditional write per customer and
    /// batch).
    pub features_write_units: f64,
    pub features_read_units: f64,
    /// The archive's share: the late path (events older than an item keeps, and what
    /// leaves items).
    pub archive_write_units: f64,
    pub archive_read_units: f64,
    pub largest_item_bytes: u64,
    pub largest_archive_item_bytes: u64,
    pub stream_records: u64,
    pub stream_record_bytes_mean: f64,
    pub stream_record_bytes_max: u64,
    /// Whole-process CPU (start-up included) over every delivered event, in milliseconds.
    pub cpu_ms_per_delivered_event: f64,
    pub peak_rss_mb: Option<f64>,
    pub spawn_to_first_poll_ms: Option<f64>,
    pub median_invoke_ms: Option<f64>,
    /// Messages the function reported failed (`batchItemFailures`); 0 for a sound run.
    pub item_failures: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("the moto recorder: {0}")]
    Recorder(#[from] RecorderError),
    #[error("the capacity accounting: {0}")]
    Capacity(#[from] CapacityError),
    #[error("reading the table's stream: {0}")]
    Stream(#[from] StreamFetchError),
    #[error("running the enricher: {0}")]
    Invoke(#[from] InvokeError),
    #[error("the enricher failed to start: {0}")]
    Init(String),
    #[error("invocation {request_id} did not answer: {outcome}")]
    Invocation { request_id: String, outcome: String },
    #[error("a stream record is not sizeable: {0}")]
    Size(#[from] crate::capacity::SizeError),
    #[error(
        "the enricher dead-lettered {count} deliveries of a corpus that holds only valid events: \
         the figures would not be the corpus's (see target/bench-enricher.log)"
    )]
    DeadLettered { count: u64 },
}

/// Runs the benchmark against the emulator at `REFERRAL_TEST_ENDPOINT`.
pub async fn run(spec: &BenchSpec) -> Result<BenchReport, BenchError> {
    let config = sdk_config().await;
    let (tables, _) = fresh_tables(&config).await;
    let queues = fresh_queues(&config, 5).await;
    let recorder = Recorder::new(&crate::emulator::endpoint())?;
    recorder.reset().await?;
    recorder.start().await?;
    let batches: Vec<Vec<u8>> = events::sqs_batches(&spec.corpus, &queues.arn);
    let instances = spec.instances.max(1);
    let function = function_spec(spec, &tables, &queues);
    let runs = (0..instances).map(|instance| {
        let share: Vec<Vec<u8>> = batches
            .iter()
            .skip(instance)
            .step_by(instances)
            .cloned()
            .collect();
        run_function(&function, share)
    });
    let stats: Vec<RunStats> = futures_util::future::try_join_all(runs).await?;
    recorder.stop().await?;
    let (dead_lettered, _) =
        crate::emulator::queue_depth(&aws_sdk_sqs::Client::new(&config), &queues.dlq_url).await;
    if dead_lettered > 0 {
        return Err(BenchError::DeadLettered {
            count: dead_lettered,
        });
    }
    let recording = recorder.download().await?;
    let applied = spec.corpus.stats().distinct as u64;
    let capacity = account_recording(&recording, applied)?;
    let stream = summarize(
        &fetch_table_records(
            &aws_sdk_dynamodb::Client::new(&config),
            &aws_sdk_dynamodbstreams::Client::new(&config),
            &tables.features,
        )
        .await?,
    )?;
    report(spec, batches.len(), &stats, &capacity, &stream, &tables)
}

fn function_spec(spec: &BenchSpec, tables: &TableNames, queues: &QueuePair) -> FunctionSpec {
    let mut function = FunctionSpec::new(&spec.enricher, "enricher-bench");
    function.timeout = Duration::from_secs(60);
    function.memory_mb = 256;
    function.env.extend(
        [
            ("FEATURES_TABLE", tables.features.clone()),
            ("ARCHIVE_TABLE", tables.archive.clone()),
            ("DEAD_LETTER_QUEUE_URL", queues.dlq_url.clone()),
            ("AWS_ENDPOINT_URL", crate::emulator::endpoint()),
            // As deployed: JSON lines at INFO, one per message.
            ("AWS_LAMBDA_LOG_FORMAT", "JSON".to_owned()),
            ("AWS_LAMBDA_LOG_LEVEL", "INFO".to_owned()),
        ]
        .map(|(name, value)| (name.to_owned(), value)),
    );
    function
}

fn report(
    spec: &BenchSpec,
    batches: usize,
    stats: &[RunStats],
    capacity: &CapacityReport,
    stream: &StreamSummary,
    tables: &TableNames,
) -> Result<BenchReport, BenchError> {
    let mut item_failures = 0;
    let mut durations = Vec::new();
    for run in stats {
        if let Some(failure) = &run.init_error {
            return Err(BenchError::Init(format!("{failure:?}")));
        }
        for invocation in &run.invocations {
            match &invocation.outcome {
                InvocationOutcome::Response(payload) => {
                    item_failures += events::item_failures(payload);
                }
                other => {
                    return Err(BenchError::Invocation {
                        request_id: invocation.request_id.clone(),
                        outcome: format!("{other:?}"),
                    });
                }
            }
            durations.push(invocation.duration);
        }
    }
    durations.sort_unstable();
    let applied = capacity.applied_events.max(1) as f64;
    let cpu: Duration = stats.iter().map(|run| run.cpu_user + run.cpu_system).sum();
    let deliveries = spec.corpus.deliveries.len();
    let features = capacity.table(&tables.features);
    let archive = capacity.table(&tables.archive);
    let share = |table: Option<&crate::capacity::TableUsage>| {
        table.map_or((0.0, 0.0), |t| {
            (t.write_units as f64 / applied, t.read_units / applied)
        })
    };
    let (features_write_units, features_read_units) = share(features);
    let (archive_write_units, archive_read_units) = share(archive);
    Ok(BenchReport {
        deliveries,
        applied_events: capacity.applied_events,
        batches,
        instances: spec.instances.max(1),
        requests_by_operation: capacity
            .ops
            .iter()
            .map(|(operation, count)| (operation.clone(), *count as f64 / applied))
            .collect(),
        requests: capacity.requests as f64 / applied,
        write_units: capacity.write_units as f64 / applied,
        read_units: capacity.read_units / applied,
        usd_per_million_events: capacity.usd_per_million_events().unwrap_or_default(),
        features_write_units,
        features_read_units,
        archive_write_units,
        archive_read_units,
        largest_item_bytes: features.map_or(0, |table| table.largest_item_bytes),
        largest_archive_item_bytes: archive.map_or(0, |table| table.largest_item_bytes),
        stream_records: stream.records,
        stream_record_bytes_mean: stream.mean_bytes,
        stream_record_bytes_max: stream.max_bytes,
        cpu_ms_per_delivered_event: cpu.as_secs_f64() * 1000.0 / deliveries.max(1) as f64,
        peak_rss_mb: stats
            .iter()
            .filter_map(|run| run.peak_rss_kb)
            .max()
            .map(|kb| kb as f64 / 1024.0),
        spawn_to_first_poll_ms: stats
            .iter()
            .filter_map(|run| run.spawn_to_first_poll)
            .max()
            .map(|spawn| spawn.as_secs_f64() * 1000.0),
        median_invoke_ms: durations
            .get(durations.len() / 2)
            .map(|median| median.as_secs_f64() * 1000.0),
        item_failures,
    })
}
