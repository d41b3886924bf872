//! Where a dead letter came from, which is what tells a stream-failure record from a
//! webhook: never the body, which a webhook's sender writes. A webhook that carries a
//! top-level `DDBStreamBatchInfo` would otherwise be reconciled and deleted instead of
//! replayed.
//!
//! - The queue: the webhook DLQ is named by the webhook queue's redrive policy; the
//!   stream mapping's on-failure destination is nobody's dead-letter queue.
//! - The message: every webhook that went through ingest carries `event_id` (and the ones
//!   the enricher dead-letters `error_kind`, ...), and SQS keeps attributes on redrive;
//!   Lambda's on-failure records carry no message attributes at all.

use super::DlqError;
use super::queue::{DlqMessage, Queue};

/// What a queue holds, by where its messages come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueRole {
    /// Some queue redrives into it: its messages are webhooks, whatever their bodies say.
    WebhookDeadLetters,
    /// Nobody's dead-letter queue: the stream mapping's on-failure destination (or a queue
    /// used by hand), where Lambda's failure records arrive.
    FailureDestination,
}

impl Queue {
    /// The queue's role, from the queues whose redrive policy names it.
    pub async fn role(&self) -> Result<QueueRole, DlqError> {
        Ok(if self.dead_letter_sources().await?.is_empty() {
            QueueRole::FailureDestination
        } else {
            QueueRole::WebhookDeadLetters
        })
    }
}

/// Whether `message` can be a record Lambda sent the on-failure destination: it sits in
/// such a queue and carries no message attribute.
pub fn from_a_stream_mapping(message: &DlqMessage, role: QueueRole) -> bool {
    role == QueueRole::FailureDestination && message.attributes.is_empty()
}
