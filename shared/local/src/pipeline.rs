//! The local runner: pushes webhook bodies through queue → enricher → feature store →
//! change feed → orchestrator, the way the Lambda event-source mappings would, over any
//! adapters that implement the ports (embedded in memory, or AWS APIs).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;

use crate::embedded::{EmbeddedArchive, EmbeddedFeatureStore, EmbeddedMessageStore, EmbeddedQueue};
use referral_domain::enricher::{
    BatchReport, EnrichCounters, Enricher, EnricherConfig, Outcome, QueuedWebhook,
};
use referral_domain::features::{CustomerFeatures, LifetimeValueRule};
use referral_domain::orchestrator::{
    MessagePolicy, Orchestrator, OrchestratorConfig, StreamCounters,
};

pub use crate::mapping::StreamConsumer;
use crate::mapping::StreamMapping;
use crate::queue_mapping::{
    AckMode, Invoked, QueueFunction, QueueMapping, QueueMappingError, QueueMappingSettings, Retry,
};
use referral_domain::ports::{
    AdapterError, BATCH_LIMIT, Decision, ErasureLog, EventArchive, FeatureStore, MAX_QUEUED_BYTES,
    MessageRetention, MessageStore, OutgoingMessage, QueueMessage, ReferralMessage, Suppression,
    WorkQueue,
};
use referral_domain::template::TemplateGenerator;
use referral_domain::trace::{TRACEPARENT, TraceContext};

/// Whatever handles a batch of queue messages: the enricher core itself, or the enricher
/// Lambda's handler wrapped around it (which also dead-letters poison messages).
pub trait BatchHandler: Send + Sync {
    fn handle_batch(&self, batch: &[QueueMessage]) -> impl Future<Output = BatchReport> + Send;
}

impl<S: FeatureStore, A: EventArchive + ErasureLog> BatchHandler for Enricher<S, A> {
    async fn handle_batch(&self, batch: &[QueueMessage]) -> BatchReport {
        let webhooks: Vec<QueuedWebhook> = batch
            .iter()
            .map(|message| QueuedWebhook {
                message_id: &message.message_id,
                body: &message.body,
                trace: QueuedWebhook::trace_of(
                    message.attributes.get(TRACEPARENT).map(String::as_str),
                ),
            })
            .collect();
        self.process(&webhooks, Utc::now()).await
    }
}

/// A [`BatchHandler`] behind the SQS mapping: the messages whose outcome is a transient
/// failure are reported failed; refused ones are done with (dead-lettered or counted).
#[derive(Debug)]
pub struct Enriching<'h, H>(pub &'h H);

impl<H: BatchHandler> QueueFunction for Enriching<'_, H> {
    type Output = BatchReport;

    async fn invoke(&self, batch: &[QueueMessage]) -> Invoked<BatchReport> {
        let output = self.0.handle_batch(batch).await;
        let failed = output
            .messages
            .iter()
            .enumerate()
            .filter(|(_, result)| matches!(result.outcome, Outcome::Failed(_)))
            .map(|(index, _)| index)
            .collect();
        Invoked::Responded { failed, output }
    }
}

/// Message attribute carrying where an event came from (`file:line`), for reports.
pub const SOURCE_ATTRIBUTE: &str = "source";

/// One webhook body and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputEvent {
    pub source: String,
    pub body: String,
    /// Whether the bytes read were UTF-8: `body` is then exact, else a lossy rendering that
    /// is refused as ingest refuses such a request (400 `not_utf8`), never applied.
    pub utf8: bool,
}

impl InputEvent {
    /// The message to queue, or why ingest would refuse the event before the queue: not
    /// UTF-8, or too large for the queue with room for a dead letter's reason (413).
    pub fn to_queue(&self) -> Result<OutgoingMessage, RejectedEvent> {
        let refused = |kind, error| RejectedEvent {
            source: self.source.clone(),
            event_id: None,
            kind,
            field: "body",
            error,
        };
        if !self.utf8 {
            return Err(refused("not_utf8", "`body` is not UTF-8 text".to_owned()));
        }
        let mut attributes = BTreeMap::from([(SOURCE_ATTRIBUTE.to_owned(), self.source.clone())]);
        // The trace ingest would start, from the event's source and body rather than at
        // random, so that a run's output is the same every time.
        let seed = format!("{}\n{}", self.source, self.body);
        if let Some(trace) = TraceContext::derived(seed.as_bytes()) {
            attributes.insert(TRACEPARENT.to_owned(), trace.to_string());
        }
        let message = OutgoingMessage {
            body: self.body.clone(),
            attributes,
        };
        if message.size() > MAX_QUEUED_BYTES {
            return Err(refused(
                "too_large",
                format!("`body` is over the {MAX_QUEUED_BYTES} bytes a queued webhook may have"),
            ));
        }
        Ok(message)
    }
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
    /// Empty polls in a row that end the final drain of the feed, `settle_pause` apart. One
    /// is enough where a write's record is in the feed when the write returns (in memory,
    /// moto); DynamoDB Streams publish with a delay and may answer empty pages first.
    pub settle_polls: u32,
    pub settle_pause: Duration,
    /// The orchestrator's message policy (default: every change gets a message).
    pub policy: MessagePolicy,
    /// The enricher's lifetime-value bands (default: DESIGN.md's).
    pub lifetime_value: LifetimeValueRule,
    /// How long the message store keeps decisions (default: a year, as deployed).
    pub retention: MessageRetention,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            batch_size: 10,
            max_receives: 5,
            stream_batch_size: 100,
            settle_polls: 1,
            settle_pause: Duration::ZERO,
            policy: MessagePolicy::default(),
            lifetime_value: LifetimeValueRule::default(),
            retention: MessageRetention::default(),
        }
    }
}

/// An event the enricher refused for good (deployed, it would be in the dead-letter queue).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectedEvent {
    pub source: String,
    pub event_id: Option<String>,
    /// What is wrong with the event (`missing_field`, `invalid_value`, `conflicting_duplicate`, ...).
    pub kind: &'static str,
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
pub async fn run_pipeline<Q, H, S>(
    inputs: &[InputEvent],
    queue: &Q,
    enricher: &H,
    stream: &S,
    config: RunConfig,
) -> Result<RunReport, AdapterError>
where
    Q: WorkQueue,
    H: BatchHandler,
    S: StreamConsumer,
{
    let mut report = RunReport {
        events: inputs.len() as u64,
        ..RunReport::default()
    };
    // Webhooks arrive over time, not all at once: the queue is topped up to a couple of
    // batches ahead of the enricher. A queue of thousands makes every call of an emulator's
    // SQS slow (each scans the whole queue), and holds no lesson the small one lacks.
    let window = config.batch_size.max(1).saturating_mul(2).max(BATCH_LIMIT);
    let mapping = QueueMapping::assemble(
        queue,
        Enriching(enricher),
        QueueMappingSettings {
            batch_size: config.batch_size.max(1),
            fill_batch: true,
            max_receives: Some(config.max_receives),
            retry: Retry::After(Duration::ZERO),
            ack: AckMode::AfterResponse,
        },
    );
    let mut unsent = inputs.iter();
    let mut outstanding = 0usize;
    loop {
        let mut top_up: Vec<OutgoingMessage> = Vec::new();
        // Refused alone, as ingest would: the others are applied and the report printed.
        for input in unsent.by_ref().take(window.saturating_sub(outstanding)) {
            match input.to_queue() {
                Ok(message) => top_up.push(message),
                Err(refused) => {
                    report.enrich.messages += 1;
                    report.enrich.rejected += 1;
                    report.rejected.push(refused);
                }
            }
        }
        outstanding += top_up.len();
        if !top_up.is_empty() {
            queue.send(top_up).await?;
        }
        let Some(polled) = mapping
            .poll_once()
            .await
            .map_err(QueueMappingError::into_adapter)?
        else {
            if unsent.len() == 0 {
                break;
            }
            // Nothing visible is left of what was sent (a queue's own redrive may have moved
            // some away): the whole window is free again, so the loop always progresses.
            outstanding = 0;
            continue;
        };
        report.batches += 1;
        outstanding -= polled.deleted;
        // The enricher in this process answers every batch: nothing crashes here.
        if let Some(outcome) = polled.output {
            report.enrich.add(&outcome.counters);
            add_results(&mut report, polled.messages, outcome, &polled.given_up);
        }
        drain(stream, config, 1, &mut report.stream).await?;
    }
    drain(stream, config, config.settle_polls, &mut report.stream).await?;
    report
        .rejected
        .sort_by(|a, b| natural_source_order(&a.source, &b.source));
    Ok(report)
}

/// A batch's results in the report: customers, refusals, failures given up on.
fn add_results(
    report: &mut RunReport,
    messages: Vec<QueueMessage>,
    outcome: BatchReport,
    given_up: &BTreeSet<usize>,
) {
    // Both are owned and done with: their strings move into the report, not copied.
    for (index, (message, result)) in messages.into_iter().zip(outcome.messages).enumerate() {
        // Only a refused event's report needs its source.
        let source = || {
            message
                .attributes
                .get(SOURCE_ATTRIBUTE)
                .cloned()
                .unwrap_or_else(|| message.message_id.clone())
        };
        if let Some(email) = result.customer_email {
            report.customers.insert(email);
        }
        if let Some(refusal) = result.outcome.refusal() {
            report.rejected.push(RejectedEvent {
                source: source(),
                event_id: result.event_id,
                kind: refusal.kind,
                field: refusal.field,
                error: refusal.message,
            });
        } else if let Outcome::Failed(failure) = result.outcome {
            if given_up.contains(&index) {
                report.unprocessed.push(UnprocessedEvent {
                    source: source(),
                    event_id: result.event_id,
                    error: failure.to_string(),
                });
            }
        }
    }
}

/// Consumes the feed until `quiet_polls` polls in a row found nothing.
async fn drain<S: StreamConsumer>(
    stream: &S,
    config: RunConfig,
    quiet_polls: u32,
    counters: &mut StreamCounters,
) -> Result<(), AdapterError> {
    let mut quiet = 0;
    while quiet < quiet_polls.max(1) {
        if stream
            .consume(config.stream_batch_size.max(1), counters)
            .await?
            == 0
        {
            quiet += 1;
            if quiet < quiet_polls && !config.settle_pause.is_zero() {
                tokio::time::sleep(config.settle_pause).await;
            }
        } else {
            quiet = 0;
        }
    }
    Ok(())
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
    /// Changes that got no message on purpose.
    pub suppressed: Vec<Suppression>,
}

impl RunResults {
    fn add(&mut self, decisions: Vec<Decision>) {
        for decision in decisions {
            match decision {
                Decision::Message(message) => self.messages.push(message),
                Decision::Suppressed(suppression) => self.suppressed.push(suppression),
            }
        }
    }
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
        results.add(messages.decisions(email).await?);
    }
    Ok(results)
}

/// The whole pipeline in this process, on the embedded adapters with the template
/// generator: `referral run` without an endpoint. No AWS client is built.
pub async fn run_in_memory(
    inputs: &[InputEvent],
    config: RunConfig,
) -> Result<(RunReport, RunResults), AdapterError> {
    let queue = EmbeddedQueue::new();
    let store = EmbeddedFeatureStore::new();
    let messages = EmbeddedMessageStore::with_retention(config.retention);
    let archive = EmbeddedArchive::new();
    let enricher = Enricher::new(
        &store,
        &archive,
        EnricherConfig {
            lifetime_value: config.lifetime_value,
            ..EnricherConfig::default()
        },
    );
    let orchestrator = Orchestrator::new(
        TemplateGenerator,
        &messages,
        OrchestratorConfig {
            policy: config.policy,
            ..OrchestratorConfig::default()
        },
    );
    let stream = StreamMapping::new(&store, &orchestrator);
    let report = run_pipeline(inputs, &queue, &enricher, &stream, config).await?;
    // The stores end with this run, so the read-back moves their items and messages out
    // instead of copying them through the ports ([`read_results`]); same results, same order.
    let mut results = RunResults::default();
    for email in &report.customers {
        results.features.extend(store.take(email));
        results.add(messages.take_decisions(email));
    }
    Ok((report, results))
}
