//! The enricher core: a batch of raw queue messages in, one outcome per message out.
//!
//! Messages are grouped by customer, and each customer's new events are folded into the
//! item this process holds and written once, conditioned on the version it knows (or on
//! the item not existing yet). No read comes first: when the item changed meanwhile (another
//! process wrote, or this one never saw it), the refused write hands back the current item,
//! which is folded again. An all-duplicate batch costs nothing. A bad message is refused
//! alone and never fails its neighbours.

mod cache;
mod report;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use futures_util::stream;

pub use cache::ItemCache;
pub use report::{
    BatchReport, EnrichCounters, Failure, MessageReport, Outcome, Refusal, STALE_KIND,
};

use crate::event::{EventError, Rejection, ServiceEvent, Webhook, parse_webhook};
use crate::features::{CustomerFeatures, DedupeWindow, Disposition, Fold, fold_events_with};
use crate::ports::{FeatureStore, FeatureWrite, WriteOutcome};

/// How far ahead of this process's clock an event may be dated. Further, it is refused:
/// a date in the future would hold the customer's latest values and move the dedupe
/// window's watermark until that date.
pub const MAX_FUTURE_SKEW: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// The queue message attribute that marks an operator's replay of a stale event (value
/// `true`). Only the operator's tools set it; ingest never forwards a sender's attributes.
pub const APPLY_STALE_ATTRIBUTE: &str = "apply_stale";

/// A message as the enricher receives it, borrowed from the envelope it came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuedWebhook<'a> {
    pub message_id: &'a str,
    pub body: &'a str,
    /// An operator's replay of a stale event: apply it even though the item's memory
    /// cannot prove it new (never when it proves it a duplicate).
    pub apply_stale: bool,
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
    pub dedupe: DedupeWindow,
    /// Bytes of items the process keeps to write without reading first.
    pub cache_bytes: usize,
}

impl EnricherConfig {
    pub const DEFAULT_CACHE_BYTES: usize = 32 << 20;
}

impl Default for EnricherConfig {
    fn default() -> Self {
        EnricherConfig {
            concurrency: 8,
            max_write_attempts: 8,
            backoff_base: Duration::from_millis(5),
            backoff_cap: Duration::from_millis(200),
            dedupe: DedupeWindow::default(),
            cache_bytes: Self::DEFAULT_CACHE_BYTES,
        }
    }
}

#[derive(Debug)]
pub struct Enricher<S> {
    store: S,
    config: EnricherConfig,
    cache: Mutex<ItemCache>,
}

impl<S: FeatureStore> Enricher<S> {
    pub fn new(store: S, config: EnricherConfig) -> Self {
        Enricher {
            store,
            cache: Mutex::new(ItemCache::new(config.cache_bytes)),
            config,
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Processes one batch; `now` bounds how far in the future an event may be dated.
    pub async fn process(&self, batch: &[QueuedWebhook<'_>], now: DateTime<Utc>) -> BatchReport {
        let mut reports: Vec<MessageReport> = Vec::with_capacity(batch.len());
        let mut events: Vec<Option<Box<ServiceEvent>>> = Vec::with_capacity(batch.len());
        for message in batch {
            let (report, event) = classify(message, now);
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
                let apply_stale: Vec<bool> =
                    indices.iter().map(|&i| batch[i].apply_stale).collect();
                Box::pin(self.enrich_customer(email, customer_events, apply_stale, indices))
            })
            .collect();
        let results: Vec<CustomerResult> = stream::iter(work)
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;

        for result in results {
            counters.conflicts += result.conflicts;
            counters.cache_misses += u64::from(result.cache_miss);
            counters.store_reads += result.reads;
            counters.store_writes += result.writes;
            for (index, outcome) in result.outcomes {
                if matches!(outcome, Outcome::Applied) && batch[index].apply_stale {
                    counters.applied_stale += 1;
                }
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
        apply_stale: Vec<bool>,
        indices: &[usize],
    ) -> CustomerResult {
        let mut result = CustomerResult::default();
        let outcome = self
            .apply_with_retries(email, &events, &apply_stale, &mut result)
            .await;
        let outcomes: Vec<Outcome> = match outcome {
            Ok(dispositions) => dispositions.into_iter().map(Outcome::from).collect(),
            Err(failure) => vec![Outcome::Failed(failure); events.len()],
        };
        result.outcomes = indices.iter().copied().zip(outcomes).collect();
        result
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, ItemCache> {
        // Every critical section is one map update: a panic elsewhere cannot leave it torn.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn apply_with_retries(
        &self,
        email: &str,
        events: &[&ServiceEvent],
        apply_stale: &[bool],
        result: &mut CustomerResult,
    ) -> Result<Vec<Disposition>, Failure> {
        let cached = self.cache().get(email);
        result.cache_miss = cached.is_none();
        let mut current: Option<CustomerFeatures> = cached.map(Arc::unwrap_or_clone);
        // Whether `current` came straight from the store: a refusal then means a concurrent
        // writer, worth backing off from; a refusal of what the cache held does not.
        let mut fresh = false;
        for attempt in 0..self.config.max_write_attempts {
            let expected_version = current.as_ref().map(|item| item.version);
            let Fold {
                item,
                dispositions,
                applied_ids,
            } = fold_events_with(current.take(), events, self.config.dedupe, |i| {
                apply_stale[i]
            });
            let Some(next) = item.filter(|_| !applied_ids.is_empty()) else {
                return Ok(dispositions);
            };
            let next = Arc::new(next);
            let write = FeatureWrite {
                expected_version,
                item: Arc::clone(&next),
                applied_ids,
            };
            result.writes += 1;
            let seen = match self.store.save(write).await {
                Ok(WriteOutcome::Applied) => {
                    self.cache().put(next);
                    return Ok(dispositions);
                }
                // Someone applied these very events: the next fold finds them all applied.
                Ok(WriteOutcome::Duplicate { current: seen }) => Some(seen),
                Ok(WriteOutcome::Conflict { current: seen }) => {
                    result.conflicts += 1;
                    if fresh {
                        tokio::time::sleep(self.backoff(attempt)).await;
                    }
                    seen
                }
                Err(error) => return Err(Failure::Store(Arc::new(error))),
            };
            current = match seen {
                Some(item) => Some(item),
                // The store could not say what it holds: read it (off the hot path).
                None => {
                    result.reads += 1;
                    self.store
                        .load(email)
                        .await
                        .map_err(|error| Failure::Store(Arc::new(error)))?
                }
            };
            match &current {
                Some(item) => self.cache().put(Arc::new(item.clone())),
                None => self.cache().remove(email),
            }
            fresh = true;
        }
        Err(Failure::ConflictRetriesExhausted {
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
    cache_miss: bool,
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
fn classify(
    message: &QueuedWebhook<'_>,
    now: DateTime<Utc>,
) -> (MessageReport, Option<Box<ServiceEvent>>) {
    let mut report = MessageReport {
        message_id: message.message_id.to_owned(),
        event_id: None,
        customer_email: None,
        outcome: Outcome::Failed(Failure::NotReached),
    };
    match parse_webhook(message.body) {
        Ok(Webhook::ServiceCompleted(event)) => {
            report.event_id = Some(event.event_id.to_string());
            report.customer_email = Some(event.customer.email.clone());
            if now
                .checked_add_signed(MAX_FUTURE_SKEW)
                .is_some_and(|latest| event.occurred_at > latest)
            {
                report.outcome = Outcome::Rejected(Rejection {
                    event_id: report.event_id.clone(),
                    error: EventError::Invalid {
                        field: "occurred_at",
                        problem: "is more than a day in the future",
                    },
                });
                return (report, None);
            }
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
