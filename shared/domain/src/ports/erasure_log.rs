//! The erasure log: what is left of a customer after `referral customers forget`. A marker
//! holds no personal data (a keyed hash of the address, a version, a time), and is all the
//! enricher needs to keep an erased customer erased: events of before the erasure are
//! dropped, and a fresh customer's versions start after the erased ones, so that its first
//! change gets a message id of its own.

use std::future::Future;

use chrono::{DateTime, Utc};

use super::AdapterError;

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
    /// version it knows (see `referral customers forget`).
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
}
