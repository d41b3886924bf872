//! The enricher core: a batch of raw queue messages in, one outcome per message out.
//!
//! Messages are grouped by customer; each customer costs one read, one fold and one
//! conditional write (more only when another writer wins a race). A bad message is
//! rejected alone and never fails its neighbours.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream;

use crate::event::{Rejection, ServiceEvent, Webhook, parse_webhook};
use crate::features::{CustomerFeatures, Disposition, Fold, FoldLimits, fold_events};
use crate::ports::{AdapterError, FeatureStore, FeatureWrite, WriteOutcome};

/// A message as the enricher receives it, borrowed from the envelope it came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawMessage<'a> {
    pub message_id: &'a str,
    pub body: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Duplicate {
        conflicting: bool,
    },
    /// Too old to tell whether it was applied before (see `FoldLimits`); not applied.
    Stale,
    Ignored {
        event_type: String,
    },
    /// Permanently invalid: retrying cannot help.
    Rejected(Rejection),
    /// Could not be processed now; the same message may succeed later.
    Failed(TransientFailure),
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Duplicate { conflicting: false } => "duplicate",
            Outcome::Duplicate { conflicting: true } => "conflicting_duplicate",
            Outcome::Stale => "stale",
            Outcome::Ignored { .. } => "ignored",
            Outcome::Rejected(_) => "rejected",
            Outcome::Failed(_) => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransientFailure {
    #[error("the feature store failed ({kind}): {detail}")]
    Store { kind: &'static str, detail: String },
    #[error("gave up after {attempts} conflicting writes")]
    ConflictRetriesExhausted { attempts: u32 },
    /// A rejected message that could not be moved to the dead-letter queue: it is left to
    /// the queue's redrive instead of being dropped.
    #[error("the dead-letter queue refused the rejected message")]
    DeadLetterUnavailable,
}

impl TransientFailure {
    pub fn kind(&self) -> &'static str {
        match self {
            TransientFailure::Store { kind, .. } => kind,
            TransientFailure::ConflictRetriesExhausted { .. } => "conflict_retries_exhausted",
            TransientFailure::DeadLetterUnavailable => "dead_letter_unavailable",
        }
    }
}

impl From<&AdapterError> for TransientFailure {
    fn from(error: &AdapterError) -> Self {
        TransientFailure::Store {
            kind: error.kind(),
            detail: error.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageReport {
    pub message_id: String,
    pub event_id: Option<String>,
    /// Normalised e-mail, when the body got that far. Hash it before logging.
    pub customer_email: Option<String>,
    pub outcome: Outcome,
}

/// Counts of one batch, for the batch log line and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct EnrichCounters {
    pub messages: u64,
    pub customers: u64,
    pub applied: u64,
    pub duplicate: u64,
    pub conflicting_duplicate: u64,
    pub stale: u64,
    pub ignored: u64,
    pub rejected: u64,
    pub failed: u64,
    /// Writes refused because another writer changed the item first.
    pub conflicts: u64,
    pub store_reads: u64,
    pub store_writes: u64,
}

impl EnrichCounters {
    pub fn add(&mut self, other: &EnrichCounters) {
        self.messages += other.messages;
        self.customers += other.customers;
        self.applied += other.applied;
        self.duplicate += other.duplicate;
        self.conflicting_duplicate += other.conflicting_duplicate;
        self.stale += other.stale;
        self.ignored += other.ignored;
        self.rejected += other.rejected;
        self.failed += other.failed;
        self.conflicts += other.conflicts;
        self.store_reads += other.store_reads;
        self.store_writes += other.store_writes;
    }

    fn count(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Applied => self.applied += 1,
            Outcome::Duplicate { conflicting } => {
                self.duplicate += 1;
                self.conflicting_duplicate += u64::from(*conflicting);
            }
            Outcome::Stale => self.stale += 1,
            Outcome::Ignored { .. } => self.ignored += 1,
            Outcome::Rejected(_) => self.rejected += 1,
            Outcome::Failed(_) => self.failed += 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchReport {
    /// One report per input message, in input order.
    pub messages: Vec<MessageReport>,
    pub counters: EnrichCounters,
}

impl BatchReport {
    pub fn failed(&self) -> impl Iterator<Item = &MessageReport> {
        self.messages
            .iter()
            .filter(|report| matches!(report.outcome, Outcome::Failed(_)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnricherConfig {
    /// Customers written at the same time.
    pub concurrency: usize,
    /// Writes tried per customer before the messages go back to the queue.
    pub max_write_attempts: u32,
    /// Upper bound of the first conflict backoff; doubles per attempt (full jitter).
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    pub fold: FoldLimits,
}

impl Default for EnricherConfig {
    fn default() -> Self {
        EnricherConfig {
            concurrency: 8,
            max_write_attempts: 8,
            backoff_base: Duration::from_millis(5),
            backoff_cap: Duration::from_millis(200),
            fold: FoldLimits::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Enricher<S> {
    store: S,
    config: EnricherConfig,
}

impl<S: FeatureStore> Enricher<S> {
    pub fn new(store: S, config: EnricherConfig) -> Self {
        Enricher { store, config }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub async fn process(&self, batch: &[RawMessage<'_>]) -> BatchReport {
        let mut reports: Vec<MessageReport> = Vec::with_capacity(batch.len());
        let mut events: Vec<Option<Box<ServiceEvent>>> = Vec::with_capacity(batch.len());
        for message in batch {
            let (report, event) = classify(message);
            reports.push(report);
            events.push(event);
        }

        // Customers in order of first appearance; each customer's events in message order.
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        let mut group_of: HashMap<&str, usize> = HashMap::new();
        for (index, event) in events.iter().enumerate() {
            let Some(event) = event else { continue };
            let email = event.customer.email.as_str();
            let group = *group_of.entry(email).or_insert_with(|| {
                groups.push((email.to_owned(), Vec::new()));
                groups.len() - 1
            });
            groups[group].1.push(index);
        }

        let mut counters = EnrichCounters {
            messages: batch.len() as u64,
            customers: groups.len() as u64,
            ..EnrichCounters::default()
        };
        // Collected before streaming: a lazy `map` closure here makes the future's
        // lifetimes higher-ranked, and then it is not `Send` for callers that need it.
        // Boxed: a customer's future holds its item and write inline (kilobytes), and
        // `buffer_unordered` would otherwise copy each one twice on its way to being polled.
        let work: Vec<_> = groups
            .iter()
            .map(|(email, indices)| {
                let customer_events: Vec<&ServiceEvent> = indices
                    .iter()
                    .filter_map(|&i| events[i].as_deref())
                    .collect();
                Box::pin(self.enrich_customer(email, customer_events, indices))
            })
            .collect();
        let results: Vec<CustomerResult> = stream::iter(work)
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;

        for result in results {
            counters.conflicts += result.conflicts;
            counters.store_reads += result.reads;
            counters.store_writes += result.writes;
            for (index, outcome) in result.outcomes {
                reports[index].outcome = outcome;
            }
        }
        for report in &reports {
            counters.count(&report.outcome);
        }
        BatchReport {
            messages: reports,
            counters,
        }
    }

    async fn enrich_customer(
        &self,
        email: &str,
        events: Vec<&ServiceEvent>,
        indices: &[usize],
    ) -> CustomerResult {
        let mut result = CustomerResult::default();
        let outcome = self.apply_with_retries(email, &events, &mut result).await;
        let outcomes: Vec<Outcome> = match outcome {
            Ok(dispositions) => dispositions.into_iter().map(Outcome::from).collect(),
            Err(failure) => vec![Outcome::Failed(failure); events.len()],
        };
        result.outcomes = indices.iter().copied().zip(outcomes).collect();
        result
    }

    async fn apply_with_retries(
        &self,
        email: &str,
        events: &[&ServiceEvent],
        result: &mut CustomerResult,
    ) -> Result<Vec<Disposition>, TransientFailure> {
        result.reads += 1;
        let mut current: Option<CustomerFeatures> = self
            .store
            .load(email)
            .await
            .map_err(|e| TransientFailure::from(&e))?;
        for attempt in 0..self.config.max_write_attempts {
            let expected_version = current.as_ref().map(|item| item.version);
            let Fold {
                item,
                dispositions,
                applied_ids,
            } = fold_events(current.take(), events, self.config.fold);
            let Some(next) = item.filter(|_| !applied_ids.is_empty()) else {
                return Ok(dispositions);
            };
            let write = FeatureWrite {
                expected_version,
                item: next,
                applied_ids,
            };
            result.writes += 1;
            match self.store.save(write).await {
                Ok(WriteOutcome::Applied) => return Ok(dispositions),
                Ok(WriteOutcome::Duplicate { current: seen }) => {
                    // Someone applied these very events: the next fold finds them all applied.
                    current = Some(seen);
                }
                Ok(WriteOutcome::Conflict { current: seen }) => {
                    result.conflicts += 1;
                    tokio::time::sleep(self.backoff(attempt)).await;
                    current = match seen {
                        Some(item) => Some(item),
                        None => {
                            result.reads += 1;
                            self.store
                                .load(email)
                                .await
                                .map_err(|e| TransientFailure::from(&e))?
                        }
                    };
                }
                Err(error) => return Err(TransientFailure::from(&error)),
            }
        }
        Err(TransientFailure::ConflictRetriesExhausted {
            attempts: self.config.max_write_attempts,
        })
    }

    /// Full jitter: uniformly random up to `base * 2^attempt`, capped, so racing writers
    /// spread out instead of colliding again in lockstep.
    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .config
            .backoff_base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.config.backoff_cap);
        let ceiling_micros = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(fastrand::u64(0..=ceiling_micros))
    }
}

#[derive(Debug, Default)]
struct CustomerResult {
    outcomes: Vec<(usize, Outcome)>,
    conflicts: u64,
    reads: u64,
    writes: u64,
}

impl From<Disposition> for Outcome {
    fn from(disposition: Disposition) -> Self {
        match disposition {
            Disposition::Applied => Outcome::Applied,
            Disposition::Duplicate { conflicting } => Outcome::Duplicate { conflicting },
            Disposition::Stale => Outcome::Stale,
        }
    }
}

/// Parses one message. Service events come back for folding; everything else is decided here.
fn classify(message: &RawMessage<'_>) -> (MessageReport, Option<Box<ServiceEvent>>) {
    let mut report = MessageReport {
        message_id: message.message_id.to_owned(),
        event_id: None,
        customer_email: None,
        // Overwritten once the customer's write is decided.
        outcome: Outcome::Applied,
    };
    match parse_webhook(message.body) {
        Ok(Webhook::ServiceCompleted(event)) => {
            report.event_id = Some(event.event_id.to_string());
            report.customer_email = Some(event.customer.email.clone());
            (report, Some(event))
        }
        Ok(Webhook::Other {
            event_id,
            event_type,
        }) => {
            report.event_id = Some(event_id);
            report.outcome = Outcome::Ignored { event_type };
            (report, None)
        }
        Err(rejection) => {
            report.event_id.clone_from(&rejection.event_id);
            report.outcome = Outcome::Rejected(rejection);
            (report, None)
        }
    }
}
