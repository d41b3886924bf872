//! The stores a backfill's enricher writes through: the live path's fold, dedupe and
//! conditional writes, with three differences for history.
//!
//! - A version written from history carries no trigger, so the orchestrator makes no
//!   message of it (`message_worthy`, as for a recompute's band moves), and its one outcome
//!   is recorded here right after the write: suppressed, reason `backfill`. Recording it
//!   before the write could not work: a live write may take that version first.
//! - Every write, item or archive bucket, books its units on the shared pace first.
//! - What was written is counted, refused conditional writes included (they are billed).

use std::sync::{Arc, Mutex, PoisonError};

use referral_domain::features::{ArchivedEvent, CustomerFeatures};
use referral_domain::orchestrator::policy::SuppressionReason;
use referral_domain::ports::{
    AdapterError, ErasureFilter, ErasureLog, ErasureMarker, EventArchive, FeatureStore,
    FeatureWrite, MessageStore, WriteOutcome,
};
use serde::Serialize;

use super::pace::{WritePace, record_suppressed, write_units};

/// Who records a backfill's suppressions in the messages table.
const HOLDER: &str = "backfill";

/// What the writes cost.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WriteTally {
    /// Item writes that applied.
    pub item_writes: u64,
    /// Item writes the table refused (a concurrent writer; folded again and retried).
    pub refused_writes: u64,
    /// Write units of the item writes, refused ones included.
    pub item_write_units: u64,
    /// Archive bucket updates (each under 1 KB: one unit).
    pub archive_writes: u64,
    /// Changes written whose `backfill` suppression could not be recorded.
    pub unrecorded: u64,
}

impl WriteTally {
    pub fn write_units(&self) -> u64 {
        self.item_write_units + self.archive_writes
    }
}

/// The feature store as a backfill writes it.
#[derive(Debug)]
pub struct HistoryStore<S, M> {
    store: S,
    messages: M,
    pace: Option<Arc<WritePace>>,
    tally: Arc<Mutex<WriteTally>>,
}

impl<S, M> HistoryStore<S, M> {
    pub fn new(
        store: S,
        messages: M,
        pace: Option<Arc<WritePace>>,
        tally: Arc<Mutex<WriteTally>>,
    ) -> Self {
        HistoryStore {
            store,
            messages,
            pace,
            tally,
        }
    }

    pub fn messages(&self) -> &M {
        &self.messages
    }

    fn count(&self, update: impl FnOnce(&mut WriteTally)) {
        update(&mut self.tally.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

impl<S: FeatureStore, M: MessageStore> HistoryStore<S, M> {
    /// Records the suppression of a version written from history (again: a version that
    /// has one already is left as it is).
    pub async fn record(&self, written: &CustomerFeatures) {
        if !record_suppressed(&self.messages, written, SuppressionReason::Backfill, HOLDER).await {
            self.count(|tally| tally.unrecorded += 1);
        }
    }
}

impl<S: FeatureStore, M: MessageStore> FeatureStore for HistoryStore<S, M> {
    async fn load(&self, customer_email: &str) -> Result<Option<CustomerFeatures>, AdapterError> {
        self.store.load(customer_email).await
    }

    async fn save(&self, write: FeatureWrite) -> Result<WriteOutcome, AdapterError> {
        let mut item = Arc::unwrap_or_clone(write.item);
        item.trigger_event_id = None;
        item.trigger = None;
        item.trace = None;
        let units = write_units(&item);
        if let Some(pace) = &self.pace {
            pace.take(units).await;
        }
        let item = Arc::new(item);
        let outcome = self
            .store
            .save(FeatureWrite {
                item: Arc::clone(&item),
                ..write
            })
            .await?;
        let applied = outcome == WriteOutcome::Applied;
        self.count(|tally| {
            tally.item_write_units += units;
            match applied {
                true => tally.item_writes += 1,
                false => tally.refused_writes += 1,
            }
        });
        if applied {
            self.record(&item).await;
        }
        Ok(outcome)
    }
}

/// The event archive, paced and counted.
#[derive(Debug)]
pub struct PacedArchive<A> {
    archive: A,
    pace: Option<Arc<WritePace>>,
    tally: Arc<Mutex<WriteTally>>,
}

impl<A> PacedArchive<A> {
    pub fn new(archive: A, pace: Option<Arc<WritePace>>, tally: Arc<Mutex<WriteTally>>) -> Self {
        PacedArchive {
            archive,
            pace,
            tally,
        }
    }

    async fn booked(&self) {
        if let Some(pace) = &self.pace {
            pace.take(1).await;
        }
        self.tally
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .archive_writes += 1;
    }
}

impl<A: EventArchive> EventArchive for PacedArchive<A> {
    async fn bucket(
        &self,
        customer_email: &str,
        bucket: u32,
    ) -> Result<Vec<ArchivedEvent>, AdapterError> {
        self.archive.bucket(customer_email, bucket).await
    }

    async fn add(
        &self,
        customer_email: &str,
        bucket: u32,
        events: &[ArchivedEvent],
    ) -> Result<(), AdapterError> {
        self.booked().await;
        self.archive.add(customer_email, bucket, events).await
    }

    async fn remove(
        &self,
        customer_email: &str,
        bucket: u32,
        events: &[ArchivedEvent],
    ) -> Result<(), AdapterError> {
        self.booked().await;
        self.archive.remove(customer_email, bucket, events).await
    }

    async fn buckets(
        &self,
        customer_email: &str,
    ) -> Result<Vec<(u32, Vec<ArchivedEvent>)>, AdapterError> {
        self.archive.buckets(customer_email).await
    }
}

impl<A: ErasureLog> ErasureLog for PacedArchive<A> {
    async fn record(&self, marker: &ErasureMarker) -> Result<(), AdapterError> {
        self.archive.record(marker).await
    }

    async fn find(&self, hash: &str) -> Result<Option<ErasureMarker>, AdapterError> {
        self.archive.find(hash).await
    }

    async fn filter_generation(&self) -> Result<u64, AdapterError> {
        self.archive.filter_generation().await
    }

    async fn filter(&self) -> Result<(u64, ErasureFilter), AdapterError> {
        self.archive.filter().await
    }
}
