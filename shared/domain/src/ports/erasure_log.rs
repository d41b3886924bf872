//! The erasure log: what is left of a customer after `referral customers forget`. A marker
//! holds no personal data (a keyed hash of the address, a version, a time), and is all the
//! enricher needs to keep an erased customer erased: events of before the erasure are
//! dropped, and a fresh customer's versions start after the erased ones, so that its first
//! change gets a message id of its own.
//!
//! Beside the markers the log keeps an [`ErasureFilter`] of every hash and a generation that
//! moves with it, so that the enricher reads a marker only for a customer the filter says
//! may have been erased.
//!
//! An erasure records every marker first, waits [`ERASURE_SETTLE`], and only then deletes:
//! the enricher may go on with a generation read up to [`ERASURE_GENERATION_TTL`] ago, for
//! the length of an invocation, so a blind create from a filter older than the marker lands
//! before the delete (which then removes it), never after.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::AdapterError;
use crate::erasure_filter::ErasureFilter;

/// How long the enricher trusts a filter generation it read: a batch within it reads none,
/// which keeps the erasure check off live traffic's bill (one read unit per batch otherwise).
pub const ERASURE_GENERATION_TTL: Duration = Duration::from_secs(10);

/// The longest an enricher invocation can run: the template's `Timeout` of the function
/// (checked against it).
pub const ENRICHER_MAX_INVOCATION: Duration = Duration::from_secs(30);

/// How long an erasure waits between recording its markers and deleting: past any
/// invocation that may still act on a generation read before the markers, with a margin
/// for a request already on the wire.
pub const ERASURE_SETTLE: Duration =
    Duration::from_secs(ERASURE_GENERATION_TTL.as_secs() + ENRICHER_MAX_INVOCATION.as_secs() + 20);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureMarker {
    /// [`crate::redact::erasure_hash`] of the canonical address.
    pub hash: String,
    /// The highest version the erased customer had; a fresh item starts after it.
    pub last_version: u64,
    /// Events that occurred at or before it are the erased customer's and are dropped.
    pub erased_at: DateTime<Utc>,
}

impl ErasureMarker {
    /// Whether an event that occurred at `occurred_at` belongs to what was erased.
    pub fn covers(&self, occurred_at: DateTime<Utc>) -> bool {
        occurred_at <= self.erased_at
    }
}

pub trait ErasureLog: Send + Sync {
    /// Stores the marker, replacing any of the same hash: the caller gives the highest
    /// version it knows (see `referral customers forget`). Before it returns, the filter
    /// holds the hash and the generation has moved past every one read before (unless the
    /// filter held the hash already).
    fn record(
        &self,
        marker: &ErasureMarker,
    ) -> impl Future<Output = Result<(), AdapterError>> + Send;

    /// The marker of a hash, read strongly consistent: one recorded just before must be seen,
    /// or an erased customer's redelivered event could bring them back.
    fn find(
        &self,
        hash: &str,
    ) -> impl Future<Output = Result<Option<ErasureMarker>, AdapterError>> + Send;

    /// The filter's generation, read strongly consistent (a few bytes): 0 for an empty log.
    fn filter_generation(&self) -> impl Future<Output = Result<u64, AdapterError>> + Send;

    /// The filter of every recorded hash, with its generation (at least any read before),
    /// read strongly consistent.
    fn filter(&self) -> impl Future<Output = Result<(u64, ErasureFilter), AdapterError>> + Send;
}
