//! What a recording cost: per table and in total, and per applied event.

use std::collections::BTreeMap;

use thiserror::Error;

use super::recording::RecordingError;
use super::{SizeError, USD_PER_MILLION_READ_UNITS, USD_PER_MILLION_WRITE_UNITS};

#[derive(Debug, Error)]
pub enum CapacityError {
    #[error(transparent)]
    Recording(#[from] RecordingError),
    #[error("request {request} ({operation}) has a body that is not JSON: {source}")]
    Body {
        request: u64,
        operation: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("request {request} ({operation}) has no usable `{field}`")]
    Missing {
        request: u64,
        operation: String,
        field: &'static str,
    },
    #[error("request {request} ({operation}) on table {table}: {source}")]
    Size {
        request: u64,
        operation: String,
        table: String,
        #[source]
        source: SizeError,
    },
}

/// What one table cost.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableUsage {
    pub requests: u64,
    pub ops: BTreeMap<String, u64>,
    pub write_units: u64,
    pub read_units: f64,
    pub largest_item_bytes: u64,
    /// Writes made before the table's key was known: their old item counted as absent.
    pub unkeyed_writes: u64,
    /// Query, Scan and PartiQL requests, counted but not priced.
    pub unpriced_requests: u64,
}

/// The accounting of a whole recording.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacityReport {
    /// Events the run applied: the denominator of every per-event figure.
    pub applied_events: u64,
    /// DynamoDB requests (other services' are left out).
    pub requests: u64,
    pub ops: BTreeMap<String, u64>,
    pub write_units: u64,
    pub read_units: f64,
    pub largest_item_bytes: u64,
    pub by_table: BTreeMap<String, TableUsage>,
}

impl CapacityReport {
    pub fn table(&self, name: &str) -> Option<&TableUsage> {
        self.by_table.get(name)
    }

    /// `None` when no event was applied.
    pub fn requests_per_event(&self) -> Option<f64> {
        self.per_event(self.requests as f64)
    }

    pub fn write_units_per_event(&self) -> Option<f64> {
        self.per_event(self.write_units as f64)
    }

    pub fn read_units_per_event(&self) -> Option<f64> {
        self.per_event(self.read_units)
    }

    /// USD per million applied events at on-demand prices: units per event times the price
    /// per million units.
    pub fn usd_per_million_events(&self) -> Option<f64> {
        self.per_event(
            self.write_units as f64 * USD_PER_MILLION_WRITE_UNITS
                + self.read_units * USD_PER_MILLION_READ_UNITS,
        )
    }

    fn per_event(&self, total: f64) -> Option<f64> {
        (self.applied_events > 0).then(|| total / self.applied_events as f64)
    }
}
