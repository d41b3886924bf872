//! The work queue (the webhook queue, and its dead-letter queue).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use super::AdapterError;

/// SQS's limit on a message, and on the messages of one batch call together: body and
/// attributes (names, data types and values) count.
pub const MAX_MESSAGE_BYTES: usize = 262_144;
/// Room a dead letter's reason attributes (`error_kind`, `error_message`, …) may take beyond
/// the message they are added to. Ingest keeps it free, so that every message it queues can
/// also be dead-lettered with its reason; the enricher's tests hold its dead letters to it.
pub const DEAD_LETTER_REASON_MAX_BYTES: usize = 2_048;
/// The largest message ingest queues, body and attributes together.
pub const MAX_QUEUED_BYTES: usize = MAX_MESSAGE_BYTES - DEAD_LETTER_REASON_MAX_BYTES;
/// SQS's limit of messages per receive and per batch call.
pub const BATCH_LIMIT: usize = 10;
/// The data type every attribute here has; its name counts towards a message's size.
pub const STRING_TYPE: &str = "String";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub body: String,
    /// String attributes.
    pub attributes: BTreeMap<String, String>,
}

impl OutgoingMessage {
    /// The size SQS charges against [`MAX_MESSAGE_BYTES`].
    pub fn size(&self) -> usize {
        self.body.len()
            + self
                .attributes
                .iter()
                .map(|(name, value)| name.len() + STRING_TYPE.len() + value.len())
                .sum::<usize>()
    }

    /// The refusal of a message too large for the queue: the same for every adapter,
    /// before any call is made.
    pub fn check_size(&self, operation: &'static str) -> Result<(), AdapterError> {
        let size = self.size();
        if size > MAX_MESSAGE_BYTES {
            return Err(AdapterError::Permanent {
                operation,
                source: format!(
                    "a message of {size} bytes is over the queue's {MAX_MESSAGE_BYTES}"
                )
                .into(),
            });
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    pub message_id: String,
    /// Handle for delete / retry (SQS receipt handle).
    pub receipt: String,
    pub body: String,
    pub attributes: BTreeMap<String, String>,
    pub receive_count: u32,
}

/// A queue with SQS's rules. The contract (`tests/src/contract/work_queue.rs`): any number
/// of messages sent in one call (the adapter cuts the batches), each under
/// [`MAX_MESSAGE_BYTES`] or the whole call is refused for good before anything is sent; at
/// most [`BATCH_LIMIT`] per receive; a received message hidden for the visibility timeout
/// and back with its receive count raised unless deleted; back after the delay `retry_later`
/// gives (at once for zero);
/// moved to the dead-letter queue once received the maximum number of times.
pub trait WorkQueue: Send + Sync {
    fn send(
        &self,
        messages: Vec<OutgoingMessage>,
    ) -> impl Future<Output = Result<(), AdapterError>> + Send;

    /// Up to `max` messages; an empty answer means the queue looks empty right now.
    fn receive(
        &self,
        max: usize,
    ) -> impl Future<Output = Result<Vec<QueueMessage>, AdapterError>> + Send;

    /// Acknowledges handled messages.
    fn delete(&self, receipts: &[String]) -> impl Future<Output = Result<(), AdapterError>> + Send;

    /// Makes held messages visible again after `after` (zero: at once), for another attempt.
    fn retry_later(
        &self,
        receipts: &[String],
        after: Duration,
    ) -> impl Future<Output = Result<(), AdapterError>> + Send;
}
