//! A scan of a queue under a lease: each message received once and held (hidden) until the
//! caller deletes it or the scan releases it. The DLQ tools and the erasure both search
//! queues this way.

use std::collections::{HashMap, HashSet};

use aws_sdk_sqs::types::Message;
use referral_domain::ports::AdapterError;

use super::SqsQueue;

/// Long-poll wait of a scan's receive: an empty answer then means the queue had nothing
/// visible for this long, not that a short poll happened to sample empty servers.
pub const RECEIVE_WAIT_SECONDS: i32 = 1;
/// Empty-handed receives (only messages seen before) after which a scan is over.
const IDLE_RECEIVES: u32 = 3;

/// Holding is what makes a scan finish: a message released at once would be received again
/// by the next call, and a queue whose head does not match a filter would never be got past.
#[derive(Debug)]
pub struct Scan<'q> {
    queue: &'q SqsQueue,
    lease_seconds: i32,
    /// Message id → its latest receipt handle.
    held: HashMap<String, String>,
    seen: HashSet<String>,
    exhausted: bool,
}

impl<'q> Scan<'q> {
    pub fn new(queue: &'q SqsQueue, lease_seconds: u32) -> Self {
        Scan {
            queue,
            lease_seconds: i32::try_from(lease_seconds).unwrap_or(i32::MAX),
            held: HashMap::new(),
            seen: HashSet::new(),
            exhausted: false,
        }
    }

    pub fn queue(&self) -> &'q SqsQueue {
        self.queue
    }

    /// Up to `max` messages not seen before; empty once the queue has none left.
    pub async fn next(&mut self, max: usize) -> Result<Vec<Message>, AdapterError> {
        let mut idle = 0;
        while !self.exhausted {
            let batch = self
                .queue
                .receive_raw(max, RECEIVE_WAIT_SECONDS, Some(self.lease_seconds))
                .await?;
            if batch.is_empty() {
                self.exhausted = true;
                break;
            }
            let fresh = self.hold(batch);
            if !fresh.is_empty() {
                return Ok(fresh);
            }
            // Only messages seen before: their lease ran out while the scan went on (they
            // are held again now). A few such answers in a row mean nothing new is left.
            idle += 1;
            if idle >= IDLE_RECEIVES {
                self.exhausted = true;
            }
        }
        Ok(Vec::new())
    }

    /// Holds a received batch, each message under the receipt of this receive: a message
    /// received again (its lease ran out) has a new receipt, and SQS may refuse or ignore
    /// the older one. Returns the messages not seen before.
    fn hold(&mut self, batch: Vec<Message>) -> Vec<Message> {
        let mut fresh = Vec::with_capacity(batch.len());
        for message in batch {
            let id = message.message_id().unwrap_or_default().to_owned();
            let receipt = message.receipt_handle().unwrap_or_default().to_owned();
            self.held.insert(id.clone(), receipt);
            if self.seen.insert(id) {
                fresh.push(message);
            }
        }
        fresh
    }

    /// The message is gone from the queue (deleted): nothing to release.
    pub fn forget(&mut self, message_id: &str) {
        self.held.remove(message_id);
    }

    /// Receipts of every held message, e.g. to delete them all.
    pub fn held_receipts(&self) -> Vec<String> {
        self.held.values().cloned().collect()
    }

    /// Makes every held message visible again at once.
    pub async fn release_all(&mut self) -> Result<(), AdapterError> {
        let receipts: Vec<String> = self.held.drain().map(|(_, receipt)| receipt).collect();
        self.queue.release_batch(&receipts).await?;
        Ok(())
    }

    pub fn clear(&mut self) {
        self.held.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> SqsQueue {
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new("us-east-1"))
            .build();
        SqsQueue::new(
            aws_sdk_sqs::Client::from_conf(config),
            "http://127.0.0.1:1/000000000000/dead-letters",
        )
    }

    fn received(message_id: &str, receipt: &str) -> Message {
        Message::builder()
            .message_id(message_id)
            .receipt_handle(receipt)
            .body("{}")
            .build()
    }

    #[test]
    fn a_message_received_again_is_held_under_its_newest_receipt() {
        let queue = queue();
        assert_eq!(queue.name(), "dead-letters");
        let mut scan = Scan::new(&queue, 30);
        let fresh = scan.hold(vec![received("m1", "r1-first"), received("m2", "r2")]);
        assert_eq!(fresh.len(), 2);
        // m1's lease ran out and the next receive got it again, with another receipt.
        let fresh = scan.hold(vec![received("m1", "r1-second"), received("m3", "r3")]);
        let ids: Vec<&str> = fresh.iter().filter_map(Message::message_id).collect();
        assert_eq!(ids, ["m3"], "a message seen before is not handed out twice");
        let mut receipts = scan.held_receipts();
        receipts.sort();
        assert_eq!(receipts, ["r1-second", "r2", "r3"]);

        scan.forget("m2");
        let mut receipts = scan.held_receipts();
        receipts.sort();
        assert_eq!(receipts, ["r1-second", "r3"]);
    }
}
