//! The enricher core: a batch of raw queue messages in, one outcome per message out.
//!
//! Messages are grouped by customer, and each customer's new events are folded into the
//! item this process holds and written once, conditioned on the version it knows (or on
//! the item not existing yet). No read comes first: when the item changed meanwhile (another
//! process wrote, or this one never saw it), the refused write hands back the current item,
//! which is folded again. An all-duplicate batch costs nothing. A bad message is refused
//! alone and never fails its neighbours.
//!
//! An event older than what the item keeps costs one archive read, and what leaves the item
//! goes to the archive before the write that lets it go (see `features::AppliedMemory` for
//! the order that keeps this exact through any crash).
//!
//! A customer erased by `referral customers forget` stays erased: before it writes a customer
//! it holds no item of, the enricher asks the erasure log's filter (its generation is one
//! small read at most every [`ERASURE_GENERATION_TTL`]; the filter is read again only when
//! that moved) and reads the customer's marker only when the filter says "maybe". With a
//! marker, it drops the events of before the erasure and starts the fresh item after the
//! erased versions. An erasure deletes only after the TTL and an invocation have passed
//! (see `ports::ERASURE_SETTLE`), so a filter that is a little old is never a way back.

mod cache;
mod report;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use futures_util::stream;

pub use cache::ItemCache;
pub use report::{
    BatchReport, CONFLICTING_DUPLICATE_KIND, EnrichCounters, Failure, MessageReport, Outcome,
    Refusal, UNPROVABLE_KIND,
};

use crate::erasure_filter::ErasureFilter;
use crate::event::{EventError, Rejection, ServiceEvent, Webhook, parse_webhook};
use crate::features::{
    ArchiveAnswers, ArchiveView, ArchivedEvent, ArchivedKnowledge, CustomerFeatures, Disposition,
    LifetimeValueRule, MemoryLimits, SplitPlan, archive_questions, fold_events_with, has_new,
};
use crate::ports::{
    AdapterError, ERASURE_GENERATION_TTL, ErasureLog, ErasureMarker, EventArchive, FeatureStore,
    FeatureWrite, WriteOutcome,
};
use crate::redact::erasure_hash;
use crate::trace::TraceContext;

/// How far ahead of this process's clock an event may be dated. Further, it is refused:
/// a date in the future would hold the customer's latest values and move the memory's
/// watermark until that date.
pub const MAX_FUTURE_SKEW: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// A message as the enricher receives it, borrowed from the envelope it came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuedWebhook<'a> {
    pub message_id: &'a str,
    pub body: &'a str,
    /// Its `traceparent` attribute, read by the adapter ([`QueuedWebhook::trace_of`]).
    pub trace: Option<TraceContext>,
}

impl QueuedWebhook<'_> {
    /// The trace of a message's `traceparent` attribute. One that does not read is dropped,
    /// never the message: the trace is for the operators, the event for the customer.
    pub fn trace_of(traceparent: Option<&str>) -> Option<TraceContext> {
        TraceContext::parse(traceparent?).ok()
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
    /// What an item keeps of its applied events, and when the rest goes to the archive.
    pub memory: MemoryLimits,
    /// A customer's events folded into one write at most: a burst is written in chunks, so
    /// that no write moves more into the item's pending list than it can hold.
    pub max_events_per_write: usize,
    /// Bytes of items the process keeps to write without reading first.
    pub cache_bytes: usize,
    /// The bands every write gives; `referral features recompute` moves the items written
    /// under an earlier rule.
    pub lifetime_value: LifetimeValueRule,
    /// How long a filter generation read is trusted; an erasure's settle must exceed it.
    pub erasure_generation_ttl: Duration,
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
            memory: MemoryLimits::default(),
            max_events_per_write: 32,
            cache_bytes: Self::DEFAULT_CACHE_BYTES,
            lifetime_value: LifetimeValueRule::default(),
            erasure_generation_ttl: ERASURE_GENERATION_TTL,
        }
    }
}

#[derive(Debug)]
pub struct Enricher<S, A> {
    store: S,
    archive: A,
    config: EnricherConfig,
    cache: Mutex<ItemCache>,
    /// The erasure filter last read, with its generation.
    erasures: Mutex<Option<HeldFilter>>,
}

/// The erasure filter as last read, and when its generation was last read: the batch's
/// clock, which is no later than the read itself, so the TTL errs on the safe side.
#[derive(Debug)]
struct HeldFilter {
    generation: u64,
    filter: Arc<ErasureFilter>,
    checked_at: DateTime<Utc>,
}

impl<S: FeatureStore, A: EventArchive + ErasureLog> Enricher<S, A> {
    pub fn new(store: S, archive: A, config: EnricherConfig) -> Self {
        Enricher {
            store,
            archive,
            cache: Mutex::new(ItemCache::new(config.cache_bytes)),
            erasures: Mutex::new(None),
            config,
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn archive(&self) -> &A {
        &self.archive
    }

    /// Keeps an item read from the store, so the next batch of its customer folds onto it
    /// instead of writing blind: a batch of events it holds already then costs that read
    /// rather than a refused conditional write (which DynamoDB bills as a write).
    pub fn remember(&self, item: CustomerFeatures) {
        self.cache().put(Arc::new(item));
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
        let cold: Vec<bool> = groups
            .iter()
            .map(|(email, _)| self.cache().get(email).is_none())
            .collect();
        let known_erasures = if cold.contains(&true) {
            self.known_erasures(&mut counters, now).await
        } else {
            None
        };
        // Collected before streaming: a lazy `map` closure here makes the future's
        // lifetimes higher-ranked, and then it is not `Send` for callers that need it.
        // Boxed: a customer's future holds its item and write inline (kilobytes), and
        // `buffer_unordered` would otherwise copy each one twice on its way to being polled.
        let work: Vec<_> = groups
            .iter()
            .zip(&cold)
            .map(|((email, indices), &cold)| {
                let customer_events: Vec<(&ServiceEvent, Option<TraceContext>)> = indices
                    .iter()
                    .filter_map(|&i| Some((events[i].as_deref()?, batch[i].trace)))
                    .collect();
                let never_erased = cold
                    && known_erasures
                        .as_ref()
                        .is_some_and(|filter| !filter.may_contain(&erasure_hash(email)));
                Box::pin(self.enrich_customer(email, customer_events, indices, never_erased))
            })
            .collect();
        let results: Vec<CustomerResult> = stream::iter(work)
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;

        for result in results {
            result.io.add_to(&mut counters);
            counters.applied_late += result.applied_late;
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

    /// The erasure filter as of now: the one held while its generation was read less than the
    /// TTL ago (a clock gone backwards counts as expired); else its generation read, and the
    /// filter itself only when that moved. `None` when the log cannot say: every customer
    /// without an item then has its marker read instead.
    async fn known_erasures(
        &self,
        counters: &mut EnrichCounters,
        now: DateTime<Utc>,
    ) -> Option<Arc<ErasureFilter>> {
        let ttl = chrono::TimeDelta::from_std(self.config.erasure_generation_ttl).ok()?;
        if let Some(held) = &*self.erasures_held() {
            let age = now.signed_duration_since(held.checked_at);
            if age >= chrono::TimeDelta::zero() && age < ttl {
                return Some(Arc::clone(&held.filter));
            }
        }
        counters.erasure_filter_reads += 1;
        let generation = self.archive.filter_generation().await.ok()?;
        if let Some(held) = self.erasures_held().as_mut()
            && held.generation >= generation
        {
            held.checked_at = now;
            return Some(Arc::clone(&held.filter));
        }
        let (generation, filter) = if generation == 0 {
            (0, ErasureFilter::default())
        } else {
            counters.erasure_filter_reads += 1;
            self.archive.filter().await.ok()?
        };
        let filter = Arc::new(filter);
        *self.erasures_held() = Some(HeldFilter {
            generation,
            filter: Arc::clone(&filter),
            checked_at: now,
        });
        Some(filter)
    }

    fn erasures_held(&self) -> std::sync::MutexGuard<'_, Option<HeldFilter>> {
        self.erasures.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `never_erased`: the erasure filter, read in this batch, has no place for the customer.
    async fn enrich_customer(
        &self,
        email: &str,
        traced_events: Vec<(&ServiceEvent, Option<TraceContext>)>,
        indices: &[usize],
        never_erased: bool,
    ) -> CustomerResult {
        let mut result = CustomerResult::default();
        let (events, traces): (Vec<&ServiceEvent>, Vec<Option<TraceContext>>) =
            traced_events.into_iter().unzip();
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(events.len());
        let chunk_size = self.config.max_events_per_write.max(1);
        for (chunk, chunk_traces) in events.chunks(chunk_size).zip(traces.chunks(chunk_size)) {
            match self
                .write_chunk(email, chunk, chunk_traces, never_erased, &mut result)
                .await
            {
                Ok(chunk_outcomes) => outcomes.extend(chunk_outcomes),
                // What earlier chunks applied stays applied; the rest comes back from SQS,
                // unless the customer's stored data does not decode: then every delivery
                // would fail alike, so the rest is quarantined to the dead letters at once.
                Err(failure) => {
                    let rest = if failure.is_undecodable() {
                        Outcome::Quarantined(failure)
                    } else {
                        Outcome::Failed(failure)
                    };
                    outcomes.resize(events.len(), rest);
                    break;
                }
            }
        }
        result.outcomes = indices.iter().copied().zip(outcomes).collect();
        result
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, ItemCache> {
        // Every critical section is one map update: a panic elsewhere cannot leave it torn.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Folds one chunk of a customer's events into their item and writes it, with the
    /// archive reads and writes the fold needs; retried on conflicts.
    async fn write_chunk(
        &self,
        email: &str,
        events: &[&ServiceEvent],
        traces: &[Option<TraceContext>],
        never_erased: bool,
        result: &mut CustomerResult,
    ) -> Result<Vec<Outcome>, Failure> {
        let limits = self.config.memory;
        let cached = self.cache().get(email);
        result.io.cache_misses |= cached.is_none();
        let mut current: Option<CustomerFeatures> = cached.map(Arc::unwrap_or_clone);
        // Outlives a conflict: what was added to the archive stays there (see
        // `ArchivedKnowledge`); answers and splits are redone against each new version.
        let mut archived = ArchivedKnowledge::default();
        // Whether `current` came straight from the store: a refusal then means a concurrent
        // writer, worth backing off from; a refusal of what the cache held does not.
        let mut fresh = false;
        // Looked for once, the first time this writer knows no item of the customer, unless
        // the filter rules an erasure out; again whenever the store shows the item gone
        // (an erasure may have just happened).
        let mut marker: Option<Option<ErasureMarker>> =
            (never_erased && current.is_none()).then_some(None);
        for attempt in 0..self.config.max_write_attempts {
            if current.is_none() && marker.is_none() {
                result.io.erasure_reads += 1;
                let found = self
                    .archive
                    .find(&erasure_hash(email))
                    .await
                    .map_err(archive_failure)?;
                marker = Some(found);
            }
            let fresh_after = match &current {
                Some(_) => None,
                None => marker.clone().flatten(),
            };
            let erased_through = match &current {
                Some(item) => item.erased_through,
                None => fresh_after.as_ref().map(|marker| marker.erased_at),
            };
            let live: Vec<&ServiceEvent> = events
                .iter()
                .copied()
                .filter(|event| !is_erased(erased_through, event))
                .collect();
            if live.is_empty() {
                return Ok(vec![Outcome::Erased; events.len()]);
            }
            let answers = self
                .ask_archive(email, current.as_ref(), &live, result)
                .await?;
            let mut split = None;
            if has_new(current.as_ref(), &live, &answers)
                && let Some(item) = &current
            {
                self.archive_pending(email, item, live.len(), &mut archived, result)
                    .await?;
                split = self.prepare_split(email, item, &archived, result).await?;
            }
            let expected_version = current.as_ref().map(|item| item.version);
            let view = ArchiveView {
                answers: Some(&answers),
                archived: Some(&archived),
                split: split.as_ref().map(|(plan, _)| *plan),
            };
            let fold = fold_events_with(
                current.take(),
                &live,
                limits,
                view,
                &self.config.lifetime_value,
            );
            let applied_late = fold.applied_late as u64;
            let dispositions = with_erased(events, erased_through, fold.dispositions);
            let Some(mut next) = fold.item.filter(|_| !fold.applied_ids.is_empty()) else {
                return Ok(dispositions);
            };
            if let Some(marker) = &fresh_after {
                // After the erased versions: the fresh customer's first change must not reuse
                // a message id the erased one had.
                next.version += marker.last_version;
                next.erased_through = Some(marker.erased_at);
            }
            next.trace = trigger_trace(events, traces, next.trigger_event_id.as_deref());
            let next = Arc::new(next);
            let write = FeatureWrite {
                expected_version,
                item: Arc::clone(&next),
                applied_ids: fold.applied_ids,
            };
            result.io.store_writes += 1;
            let seen = match self.store.save(write).await {
                Ok(WriteOutcome::Applied) => {
                    self.cache().put(next);
                    result.applied_late += applied_late;
                    if let Some((plan, moved)) = split {
                        self.clean_up_split(email, plan, &moved, result).await;
                    }
                    return Ok(dispositions);
                }
                // Someone applied these very events: the next fold finds them all applied.
                Ok(WriteOutcome::Duplicate { current: seen }) => Some(seen),
                Ok(WriteOutcome::Conflict { current: seen }) => {
                    result.io.conflicts += 1;
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
                    result.io.store_reads += 1;
                    self.store
                        .load(email)
                        .await
                        .map_err(|error| Failure::Store(Arc::new(error)))?
                }
            };
            match &current {
                Some(item) => self.cache().put(Arc::new(item.clone())),
                None => {
                    self.cache().remove(email);
                    marker = None;
                }
            }
            fresh = true;
        }
        Err(Failure::ConflictRetriesExhausted {
            attempts: self.config.max_write_attempts,
        })
    }

    /// Reads the archive buckets of the events at or before the item's floor: one read per
    /// bucket, whatever the number of events in it.
    async fn ask_archive(
        &self,
        email: &str,
        current: Option<&CustomerFeatures>,
        events: &[&ServiceEvent],
        result: &mut CustomerResult,
    ) -> Result<ArchiveAnswers, Failure> {
        let mut answers = ArchiveAnswers::default();
        for (bucket, ids) in archive_questions(current, events, &answers) {
            result.io.archive_reads += 1;
            let held = self
                .archive
                .bucket(email, bucket)
                .await
                .map_err(archive_failure)?;
            answers.record(&held, ids);
        }
        Ok(answers)
    }

    /// Adds the item's pending entries to the archive when they are due to leave it, and
    /// records them as archived under the item's layout.
    async fn archive_pending(
        &self,
        email: &str,
        item: &CustomerFeatures,
        incoming: usize,
        archived: &mut ArchivedKnowledge,
        result: &mut CustomerResult,
    ) -> Result<(), Failure> {
        let memory = &item.memory;
        if !memory.archive_due(self.config.memory, incoming) {
            return Ok(());
        }
        let layout = memory.layout();
        if archived.layout != layout {
            *archived = ArchivedKnowledge {
                layout,
                ..ArchivedKnowledge::default()
            };
        }
        let mut by_bucket: BTreeMap<u32, Vec<ArchivedEvent>> = BTreeMap::new();
        for event in memory.pending() {
            if !archived.events.contains(event) {
                by_bucket
                    .entry(layout.bucket_of(event.id))
                    .or_default()
                    .push(*event);
            }
        }
        for (bucket, events) in by_bucket {
            result.io.archive_writes += 1;
            self.archive
                .add(email, bucket, &events)
                .await
                .map_err(archive_failure)?;
            archived.events.extend(events);
        }
        Ok(())
    }

    /// Copies the ids the next split moves into their new bucket, when the archive is due to
    /// grow. The split takes effect with the write that commits the advanced layout; until
    /// then the source bucket still holds every id, so readers of either layout find them.
    async fn prepare_split(
        &self,
        email: &str,
        item: &CustomerFeatures,
        archived: &ArchivedKnowledge,
        result: &mut CustomerResult,
    ) -> Result<Option<(SplitPlan, Vec<ArchivedEvent>)>, Failure> {
        let memory = &item.memory;
        let arriving = match archived.layout == memory.layout() {
            true => memory
                .pending()
                .iter()
                .filter(|event| archived.events.contains(event))
                .count(),
            false => 0,
        };
        let Some(plan) = memory.split_due(self.config.memory, arriving) else {
            return Ok(None);
        };
        // Read after this writer's own additions, so the copies include them.
        result.io.archive_reads += 1;
        let held = self
            .archive
            .bucket(email, plan.source)
            .await
            .map_err(archive_failure)?;
        let moved: Vec<ArchivedEvent> = held.into_iter().filter(|e| plan.moves(e.id)).collect();
        if !moved.is_empty() {
            result.io.archive_writes += 1;
            self.archive
                .add(email, plan.target, &moved)
                .await
                .map_err(archive_failure)?;
        }
        result.io.archive_splits += 1;
        Ok(Some((plan, moved)))
    }

    /// Takes the moved copies out of a split's source bucket once the split is committed.
    /// Only tidiness: copies left behind are never read (the layout sends those ids to the
    /// new bucket), so a failure here costs bytes, not correctness.
    async fn clean_up_split(
        &self,
        email: &str,
        plan: SplitPlan,
        moved: &[ArchivedEvent],
        result: &mut CustomerResult,
    ) {
        if moved.is_empty() {
            return;
        }
        result.io.archive_writes += 1;
        if let Err(error) = self.archive.remove(email, plan.source, moved).await {
            tracing::warn!(
                bucket = plan.source,
                error_kind = error.kind(),
                "the archive kept a split's moved copies"
            );
        }
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

/// The trace of the write's trigger event: its first delivery in the chunk (a later one
/// with the same id is a duplicate of it, and its trace not the one applied).
fn trigger_trace(
    events: &[&ServiceEvent],
    traces: &[Option<TraceContext>],
    trigger_event_id: Option<&str>,
) -> Option<TraceContext> {
    let trigger = trigger_event_id?;
    events
        .iter()
        .zip(traces)
        .find(|(event, _)| &*event.event_id == trigger)
        .and_then(|(_, trace)| *trace)
}

/// Whether an event belongs to an erased predecessor of its customer.
fn is_erased(erased_through: Option<DateTime<Utc>>, event: &ServiceEvent) -> bool {
    erased_through.is_some_and(|through| event.occurred_at <= through)
}

/// The outcomes of a chunk: its erased events' and, in order between them, the fold's
/// dispositions of the live ones.
fn with_erased(
    events: &[&ServiceEvent],
    erased_through: Option<DateTime<Utc>>,
    dispositions: Vec<Disposition>,
) -> Vec<Outcome> {
    let mut live = dispositions.into_iter();
    events
        .iter()
        .map(|event| match is_erased(erased_through, event) {
            true => Outcome::Erased,
            false => live
                .next()
                .map_or(Outcome::Failed(Failure::NotReached), Outcome::from),
        })
        .collect()
}

fn archive_failure(error: AdapterError) -> Failure {
    Failure::Archive(Arc::new(error))
}

/// The I/O one customer's writes cost, added to the batch's counters.
#[derive(Debug, Default)]
struct CustomerIo {
    conflicts: u64,
    cache_misses: bool,
    store_reads: u64,
    store_writes: u64,
    archive_reads: u64,
    archive_writes: u64,
    archive_splits: u64,
    erasure_reads: u64,
}

impl CustomerIo {
    fn add_to(&self, counters: &mut EnrichCounters) {
        counters.conflicts += self.conflicts;
        counters.cache_misses += u64::from(self.cache_misses);
        counters.store_reads += self.store_reads;
        counters.store_writes += self.store_writes;
        counters.archive_reads += self.archive_reads;
        counters.archive_writes += self.archive_writes;
        counters.archive_splits += self.archive_splits;
        counters.erasure_reads += self.erasure_reads;
    }
}

#[derive(Debug, Default)]
struct CustomerResult {
    outcomes: Vec<(usize, Outcome)>,
    io: CustomerIo,
    /// Events applied below the floor by the writes that committed.
    applied_late: u64,
}

impl From<Disposition> for Outcome {
    fn from(disposition: Disposition) -> Self {
        match disposition {
            Disposition::Applied => Outcome::Applied,
            Disposition::Duplicate { conflicting } => Outcome::Duplicate { conflicting },
            Disposition::Unprovable => Outcome::Unprovable,
            Disposition::Unresolved => Outcome::Failed(Failure::ArchiveUnread),
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
        trace: message.trace,
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
