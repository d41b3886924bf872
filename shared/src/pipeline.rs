//! The local runner: pushes webhook bodies through queue → enricher → feature store →
//! change feed → orchestrator, the way the Lambda event-source mappings would, over any
//! adapters that implement the ports (embedded in memory, or AWS APIs).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use chrono::Utc;
use serde::Serialize;

use crate::enricher::{BatchReport, EnrichCounters, Enricher, Outcome, RawMessage};
use crate::features::CustomerFeatures;
use crate::orchestrator::{Orchestrator, RecordOutcome};
use crate::ports::{
    AdapterError, ChangeFeed, FeatureStore, MessageGenerator, MessageStore, OutgoingMessage,
    QueueMessage, ReferralMessage, WorkQueue,
};

/// Whatever handles a batch of queue messages: the enricher core itself, or the enricher
/// Lambda's handler wrapped around it (which also dead-letters poison messages).
pub trait BatchHandler: Send + Sync {
    fn handle_batch(&self, batch: &[QueueMessage]) -> impl Future<Output = BatchReport> + Send;
}

impl<S: FeatureStore> BatchHandler for Enricher<S> {
    async fn handle_batch(&self, batch: &[QueueMessage]) -> BatchReport {
        let raw: Vec<RawMessage> = batch
            .iter()
            .map(|message| RawMessage {
                message_id: &message.message_id,
                body: &message.body,
            })
            .collect();
        self.process(&raw).await
    }
}

/// Message attribute carrying where an event came from (`file:line`), for reports.
pub const SOURCE_ATTRIBUTE: &str = "source";

/// One webhook body and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputEvent {
    pub source: String,
    pub body: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunConfig {
    /// Messages per enricher invocation (the event-source mapping's batch size).
    pub batch_size: usize,
    /// Deliveries of a transiently failing message before the run gives up on it
    /// (the queue's maxReceiveCount).
    pub max_receives: u32,
    /// Change records per orchestrator invocation.
    pub stream_batch_size: usize,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            batch_size: 10,
            max_receives: 5,
            stream_batch_size: 100,
        }
    }
}

/// An event the enricher refused for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectedEvent {
    pub source: String,
    pub event_id: Option<String>,
    pub field: &'static str,
    pub error: String,
}

/// A message the run could not process after `max_receives` deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnprocessedEvent {
    pub source: String,
    pub event_id: Option<String>,
    pub error: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StreamCounters {
    pub records: u64,
    pub messages_created: u64,
    pub already_created: u64,
    pub skipped: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    pub events: u64,
    pub batches: u64,
    pub enrich: EnrichCounters,
    pub stream: StreamCounters,
    pub rejected: Vec<RejectedEvent>,
    pub unprocessed: Vec<UnprocessedEvent>,
    /// Normalised e-mails of every customer an event named, sorted.
    pub customers: BTreeSet<String>,
}

/// Runs `inputs` through the pipeline until the queue and the feed are drained.
pub async fn run_pipeline<Q, H, F, G, M>(
    inputs: &[InputEvent],
    queue: &Q,
    enricher: &H,
    feed: &F,
    orchestrator: &Orchestrator<G, M>,
    config: RunConfig,
) -> Result<RunReport, AdapterError>
where
    Q: WorkQueue,
    H: BatchHandler,
    F: ChangeFeed,
    G: MessageGenerator,
    M: MessageStore,
{
    let outgoing: Vec<OutgoingMessage> = inputs
        .iter()
        .map(|input| OutgoingMessage {
            body: input.body.clone(),
            attributes: BTreeMap::from([(SOURCE_ATTRIBUTE.to_owned(), input.source.clone())]),
        })
        .collect();
    queue.send(outgoing).await?;

    let mut report = RunReport {
        events: inputs.len() as u64,
        ..RunReport::default()
    };
    loop {
        let received = queue.receive(config.batch_size.max(1)).await?;
        if received.is_empty() {
            break;
        }
        report.batches += 1;
        let outcome = enricher.handle_batch(&received).await;
        report.enrich.add(&outcome.counters);

        let mut done = Vec::with_capacity(received.len());
        let mut again = Vec::new();
        for (message, result) in received.iter().zip(&outcome.messages) {
            let source = message
                .attributes
                .get(SOURCE_ATTRIBUTE)
                .cloned()
                .unwrap_or_else(|| message.message_id.clone());
            if let Some(email) = &result.customer_email {
                report.customers.insert(email.clone());
            }
            match &result.outcome {
                Outcome::Rejected(rejection) => report.rejected.push(RejectedEvent {
                    source,
                    event_id: rejection.event_id.clone(),
                    field: rejection.error.field(),
                    error: rejection.error.to_string(),
                }),
                Outcome::Failed(failure) if message.receive_count < config.max_receives => {
                    again.push(message.receipt.clone());
                    continue;
                }
                Outcome::Failed(failure) => report.unprocessed.push(UnprocessedEvent {
                    source,
                    event_id: result.event_id.clone(),
                    error: failure.to_string(),
                }),
                _ => {}
            }
            done.push(message.receipt.clone());
        }
        queue.delete(&done).await?;
        if !again.is_empty() {
            queue.retry_later(&again).await?;
        }
        drain_feed(feed, orchestrator, config, &mut report.stream).await?;
    }
    drain_feed(feed, orchestrator, config, &mut report.stream).await?;
    report
        .rejected
        .sort_by(|a, b| natural_source_order(&a.source, &b.source));
    Ok(report)
}

async fn drain_feed<F, G, M>(
    feed: &F,
    orchestrator: &Orchestrator<G, M>,
    config: RunConfig,
    counters: &mut StreamCounters,
) -> Result<(), AdapterError>
where
    F: ChangeFeed,
    G: MessageGenerator,
    M: MessageStore,
{
    loop {
        let records = feed.poll(config.stream_batch_size.max(1)).await?;
        if records.is_empty() {
            return Ok(());
        }
        for record in &records {
            counters.records += 1;
            match orchestrator.handle(record, Utc::now()).await {
                RecordOutcome::Created { .. } => counters.messages_created += 1,
                RecordOutcome::AlreadyCreated => counters.already_created += 1,
                RecordOutcome::Skipped(_) => counters.skipped += 1,
                RecordOutcome::ClaimedElsewhere { .. } | RecordOutcome::Failed { .. } => {
                    counters.failed += 1;
                }
            }
        }
    }
}

/// Orders `dir/file.json:9` before `dir/file.json:10`.
fn natural_source_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn split(source: &str) -> (&str, u64) {
        match source.rsplit_once(':') {
            Some((path, line)) => (path, line.parse().unwrap_or(0)),
            None => (source, 0),
        }
    }
    split(a).cmp(&split(b))
}

/// What a run leaves behind, read back from the stores.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunResults {
    pub features: Vec<CustomerFeatures>,
    pub messages: Vec<ReferralMessage>,
}

/// Reads the features and messages of `customers` back from the stores.
pub async fn read_results<S: FeatureStore, M: MessageStore>(
    customers: &BTreeSet<String>,
    store: &S,
    messages: &M,
) -> Result<RunResults, AdapterError> {
    let mut results = RunResults::default();
    for email in customers {
        if let Some(features) = store.load(email).await? {
            results.features.push(features);
        }
        results.messages.extend(messages.list(email).await?);
    }
    Ok(results)
}
