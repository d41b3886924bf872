//! The change feed: the feature table's stream, one record per successful write.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::AdapterError;
use crate::features::CustomerFeatures;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    Insert,
    Modify,
    Remove,
}

/// One successful write of a feature item, as a DynamoDB stream record shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeRecord {
    /// Position in the feed; failures are reported by it so delivery resumes there.
    pub sequence_number: String,
    pub kind: ChangeKind,
    pub customer_email: String,
    /// Absent on a stream that carries new images only (this table's) and on an insert.
    pub old_image: Option<Arc<CustomerFeatures>>,
    /// Absent on a removal, and on an emulator's key-only record.
    pub new_image: Option<Arc<CustomerFeatures>>,
    /// When the write happened, as the feed saw it (a stream record's
    /// `ApproximateCreationDateTime`): how old the change is, for policies bounded by age.
    /// `None` where unknown (a change rebuilt from the current item).
    pub written_at: Option<DateTime<Utc>>,
}

impl ChangeRecord {
    /// The trace of the event the change applied (its new image's), when it carried one.
    pub fn trace(&self) -> Option<&crate::trace::TraceContext> {
        self.new_image.as_ref()?.trace.as_ref()
    }
}

/// The table's stream, read as its event-source mapping reads it.
///
/// The contract (`tests/src/contract/change_feed.rs`): a customer's records come in the
/// order of their writes; each record is handed out once, unless the consumer resumes from
/// it; a consumer that cannot handle a record calls [`ChangeFeed::resume_from`] with its
/// sequence number and gets it, and every later record of the feed, again. Records a
/// consumer must tolerate (and skip): an emulator's key-only INSERT and no-op MODIFY.
pub trait ChangeFeed: Send + Sync {
    /// Up to `max` records not yet handed out, oldest first within each shard.
    fn poll(
        &self,
        max: usize,
    ) -> impl Future<Output = Result<Vec<ChangeRecord>, AdapterError>> + Send;

    /// Delivery starts again at `sequence_number` (a record handed out by `poll`): it and
    /// the records after it come out of the next polls.
    fn resume_from(
        &self,
        sequence_number: &str,
    ) -> impl Future<Output = Result<(), AdapterError>> + Send;
}
