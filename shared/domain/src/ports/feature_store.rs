//! The feature store: one item per customer, written only on the version the writer read.

use std::future::Future;
use std::sync::Arc;

use super::AdapterError;
use crate::features::CustomerFeatures;

/// One conditional write of a customer's item.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureWrite {
    /// `None`: the item must not exist yet; `Some(v)`: the stored version must be `v`.
    pub expected_version: Option<u64>,
    /// Shared, so the writer can keep the item it wrote without copying it.
    pub item: Arc<CustomerFeatures>,
    /// Event ids this write applies; none of them may be applied already.
    pub applied_ids: Vec<Arc<str>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WriteOutcome {
    Applied,
    /// Another writer got there first. `current` is the item as the store saw it when it
    /// refused, when the adapter could tell (saves a read); `None`: read it again.
    Conflict {
        current: Option<CustomerFeatures>,
    },
    /// Refused because every id of this write is applied already (a concurrent consumer
    /// applied the same events).
    Duplicate {
        current: CustomerFeatures,
    },
}

impl WriteOutcome {
    /// Classifies a refused conditional write from the item the store holds: a duplicate
    /// when a concurrent writer applied every id of this write, else a conflict.
    pub fn refused(current: Option<CustomerFeatures>, applied_ids: &[Arc<str>]) -> Self {
        match current {
            Some(item)
                if !applied_ids.is_empty()
                    && applied_ids.iter().all(|id| item.memory.remembers(id)) =>
            {
                WriteOutcome::Duplicate { current: item }
            }
            current => WriteOutcome::Conflict { current },
        }
    }
}

pub trait FeatureStore: Send + Sync {
    fn load(
        &self,
        customer_email: &str,
    ) -> impl Future<Output = Result<Option<CustomerFeatures>, AdapterError>> + Send;

    fn save(
        &self,
        write: FeatureWrite,
    ) -> impl Future<Output = Result<WriteOutcome, AdapterError>> + Send;
}
