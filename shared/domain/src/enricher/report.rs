//! What the enricher says of each message and of each batch.

use std::sync::Arc;

use serde::Serialize;

use crate::event::Rejection;
use crate::ports::AdapterError;

#[derive(Debug, Clone)]
pub enum Outcome {
    Applied,
    /// Applied before. `conflicting`: the same id with other content, refused (the original
    /// stays applied) and dead-lettered so the sender's bug is seen.
    Duplicate {
        conflicting: bool,
    },
    /// Dated at or before the seal of an item the previous release let forget, and found
    /// nowhere: it may have been applied, so it is not. Dead-lettered, never dropped.
    Unprovable,
    Ignored {
        event_type: String,
    },
    /// Occurred at or before its customer was erased (`referral customers forget`): the
    /// erased data must not come back, so it is acknowledged and dropped.
    Erased,
    /// Permanently invalid: retrying cannot help.
    Rejected(Rejection),
    /// Not applied because the customer's stored item or archive bucket does not decode
    /// (corrupted, or written by a newer release): retrying cannot help, so the message is
    /// dead-lettered with the reason instead of holding up its batch and being redriven,
    /// and is replayed once the item is repaired.
    Quarantined(Failure),
    /// Not processed; the same message may succeed when delivered again.
    Failed(Failure),
}

/// Why a message is refused for good: it goes to the dead-letter queue saying so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// A stable word for metrics and the dead letter's `error_kind`.
    pub kind: &'static str,
    /// The dotted path of the field at fault.
    pub field: &'static str,
    pub message: String,
}

/// `error_kind` of an event a sealed item cannot prove new or duplicate.
pub const UNPROVABLE_KIND: &str = "unprovable";
/// `error_kind` of an event whose id was applied with other content.
pub const CONFLICTING_DUPLICATE_KIND: &str = "conflicting_duplicate";
/// `error_kind` of an event whose customer's stored item does not decode.
pub const UNDECODABLE_ITEM_KIND: &str = "undecodable_item";

impl Outcome {
    /// The reason to dead-letter the message, when it is refused for good.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            Outcome::Rejected(rejection) => Some(Refusal {
                kind: rejection.error.kind(),
                field: rejection.error.field(),
                message: rejection.error.to_string(),
            }),
            Outcome::Unprovable => Some(Refusal {
                kind: UNPROVABLE_KIND,
                field: "occurred_at",
                message: "`occurred_at` is at or before the seal of a customer item written by \
                          the release that forgot old event ids: the event may have been \
                          applied already, so it was not (README: Migration)"
                    .to_owned(),
            }),
            Outcome::Duplicate { conflicting: true } => Some(Refusal {
                kind: CONFLICTING_DUPLICATE_KIND,
                field: "event_id",
                message: "`event_id` was applied before with other content: the original \
                          stays applied and this one is refused; the sender must not reuse ids"
                    .to_owned(),
            }),
            Outcome::Quarantined(failure) => Some(Refusal {
                kind: UNDECODABLE_ITEM_KIND,
                field: "customer.email",
                message: format!(
                    "the stored data of this customer does not decode ({}: corrupted, or \
                     written by a newer release); the event was not applied. Repair or restore \
                     the item, then replay this letter (README: Runbook)",
                    failure.kind()
                ),
            }),
            _ => None,
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Duplicate { conflicting: false } => "duplicate",
            Outcome::Duplicate { conflicting: true } => "conflicting_duplicate",
            Outcome::Unprovable => "unprovable",
            Outcome::Ignored { .. } => "ignored",
            Outcome::Erased => "erased",
            Outcome::Rejected(_) => "rejected",
            Outcome::Quarantined(_) => "quarantined",
            Outcome::Failed(_) => "failed",
        }
    }
}

/// Why a message was not processed. Every report starts as [`Failure::NotReached`] and is
/// overwritten only by a decision: a message the code forgot to decide is retried, never
/// acknowledged by accident.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Failure {
    #[error("the message was not processed")]
    NotReached,
    #[error("the feature store failed")]
    Store(#[source] Arc<AdapterError>),
    #[error("the event archive failed")]
    Archive(#[source] Arc<AdapterError>),
    /// An event's archive bucket was not read before the fold (a bug; retried).
    #[error("an event below the floor was folded without its archive bucket")]
    ArchiveUnread,
    #[error("gave up after {attempts} conflicting writes")]
    ConflictRetriesExhausted { attempts: u32 },
    /// A refused message that could not be moved to the dead-letter queue: it is left to
    /// the queue's redrive instead of being dropped.
    #[error("the dead-letter queue refused the message")]
    DeadLetterUnavailable(#[source] Arc<AdapterError>),
}

impl Failure {
    /// Whether stored data failed to decode: a person must look, delivering again cannot help.
    pub fn is_undecodable(&self) -> bool {
        match self {
            Failure::Store(error) | Failure::Archive(error) => {
                matches!(error.as_ref(), AdapterError::Corrupt { .. })
            }
            _ => false,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Failure::NotReached => "not_reached",
            Failure::Store(error) => match error.as_ref() {
                AdapterError::Transient { .. } => "store_transient",
                AdapterError::Corrupt { .. } => "store_corrupt",
                AdapterError::Permanent { .. } => "store_refused",
            },
            Failure::Archive(error) => match error.as_ref() {
                AdapterError::Transient { .. } => "archive_transient",
                AdapterError::Corrupt { .. } => "archive_corrupt",
                AdapterError::Permanent { .. } => "archive_refused",
            },
            Failure::ArchiveUnread => "archive_unread",
            Failure::ConflictRetriesExhausted { .. } => "conflict_retries_exhausted",
            Failure::DeadLetterUnavailable(_) => "dead_letter_unavailable",
        }
    }
}

#[derive(Debug, Clone)]
pub struct MessageReport {
    pub message_id: String,
    pub event_id: Option<String>,
    /// Normalised e-mail, when the body got that far. Hash it before logging.
    pub customer_email: Option<String>,
    /// The trace the message came with (its `traceparent` attribute).
    pub trace: Option<crate::trace::TraceContext>,
    pub outcome: Outcome,
}

/// Counts of one batch, for the batch log line and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EnrichCounters {
    pub messages: u64,
    pub customers: u64,
    pub applied: u64,
    pub duplicate: u64,
    pub conflicting_duplicate: u64,
    /// Applied below the item's floor (older than what it keeps): the late path.
    pub applied_late: u64,
    pub unprovable: u64,
    pub ignored: u64,
    /// Dropped: they occurred at or before their customer was erased.
    pub erased: u64,
    pub rejected: u64,
    /// Dead-lettered because the customer's stored item does not decode.
    pub quarantined: u64,
    pub failed: u64,
    /// Writes refused because the item had changed since this process knew it.
    pub conflicts: u64,
    /// Customers this process held no item of (a cold cache).
    pub cache_misses: u64,
    pub store_reads: u64,
    pub store_writes: u64,
    /// Archive buckets read (events below the floor, splits).
    pub archive_reads: u64,
    /// Archive bucket updates (pending entries leaving items, split copies and clean-ups).
    pub archive_writes: u64,
    pub archive_splits: u64,
    /// Erasure markers looked for (no item held, and the filter could not rule it out).
    pub erasure_reads: u64,
    /// Reads of the erasure filter's generation, and of the filter when it moved.
    pub erasure_filter_reads: u64,
}

impl EnrichCounters {
    pub fn add(&mut self, other: &EnrichCounters) {
        self.messages += other.messages;
        self.customers += other.customers;
        self.applied += other.applied;
        self.duplicate += other.duplicate;
        self.conflicting_duplicate += other.conflicting_duplicate;
        self.applied_late += other.applied_late;
        self.unprovable += other.unprovable;
        self.ignored += other.ignored;
        self.erased += other.erased;
        self.rejected += other.rejected;
        self.quarantined += other.quarantined;
        self.failed += other.failed;
        self.conflicts += other.conflicts;
        self.cache_misses += other.cache_misses;
        self.store_reads += other.store_reads;
        self.store_writes += other.store_writes;
        self.archive_reads += other.archive_reads;
        self.archive_writes += other.archive_writes;
        self.archive_splits += other.archive_splits;
        self.erasure_reads += other.erasure_reads;
        self.erasure_filter_reads += other.erasure_filter_reads;
    }

    pub(super) fn count(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Applied => self.applied += 1,
            Outcome::Duplicate { conflicting } => {
                self.duplicate += 1;
                self.conflicting_duplicate += u64::from(*conflicting);
            }
            Outcome::Unprovable => self.unprovable += 1,
            Outcome::Ignored { .. } => self.ignored += 1,
            Outcome::Erased => self.erased += 1,
            Outcome::Rejected(_) => self.rejected += 1,
            Outcome::Quarantined(_) => self.quarantined += 1,
            Outcome::Failed(_) => self.failed += 1,
        }
    }
}

#[derive(Debug, Clone)]
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
