//! One queue as the DLQ commands see it (resolved by name or URL; depth; receive under a
//! lease; release; delete; send), and the scan that holds every message it has seen.

use std::collections::{BTreeMap, HashMap, HashSet};

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    Message, MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
};
use chrono::{DateTime, TimeZone, Utc};
use referral_aws::error::adapter_error;
/// A message to send: body, typed attributes and, on FIFO queues, group and deduplication
/// ids.
pub use referral_aws::sqs::RawMessage as Outgoing;
use referral_aws::sqs::{SQS_BATCH_LIMIT, SqsQueue, receive_count_of};
use referral_domain::ports::AdapterError;

use super::DlqError;
use referral_aws_local::provision::{queue_arn, queue_url};

/// SQS takes at most ten messages per receive and ten entries per batch call.
pub const BATCH_LIMIT: usize = SQS_BATCH_LIMIT;
/// Long-poll wait of a receive: an empty answer then means the queue had nothing visible
/// for this long, not that a short poll happened to sample empty servers.
const RECEIVE_WAIT_SECONDS: i32 = 1;
/// Empty-handed receives (only messages seen before) after which a scan is over.
const IDLE_RECEIVES: u32 = 3;

/// A queue, resolved to its URL. Receives, releases, deletes and sends go through the
/// shared SQS adapter; this adds what only the DLQ commands read (depth, redrive policy,
/// source queues).
#[derive(Debug, Clone)]
pub struct Queue {
    sqs: SqsQueue,
}

/// How many messages a queue holds, by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Depth {
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
}

impl Depth {
    pub fn total(&self) -> u64 {
        self.visible + self.in_flight + self.delayed
    }
}

impl Queue {
    pub async fn resolve(client: &Client, name_or_url: &str) -> Result<Self, DlqError> {
        let url = queue_url(client, name_or_url)
            .await
            .map_err(|source| DlqError::Queue {
                queue: name_or_url.to_owned(),
                source,
            })?;
        Ok(Queue {
            sqs: SqsQueue::new(client.clone(), url),
        })
    }

    pub fn url(&self) -> &str {
        self.sqs.url()
    }

    fn client(&self) -> &Client {
        self.sqs.client()
    }

    /// The queue's name: the last segment of its URL.
    pub fn name(&self) -> &str {
        let url = self.url();
        url.rsplit('/').next().unwrap_or(url)
    }

    pub fn is_fifo(&self) -> bool {
        self.name().ends_with(".fifo")
    }

    pub fn error(&self, source: AdapterError) -> DlqError {
        DlqError::Queue {
            queue: self.name().to_owned(),
            source,
        }
    }

    pub async fn arn(&self) -> Result<String, DlqError> {
        queue_arn(self.client(), self.url())
            .await
            .map_err(|source| self.error(source))
    }

    pub async fn depth(&self) -> Result<Depth, DlqError> {
        let output = self
            .client()
            .get_queue_attributes()
            .queue_url(self.url())
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|error| self.error(adapter_error("GetQueueAttributes", error)))?;
        let attributes = output.attributes.unwrap_or_default();
        let number = |name: QueueAttributeName| {
            attributes
                .get(&name)
                .and_then(|value| value.parse().ok())
                .unwrap_or(0)
        };
        Ok(Depth {
            visible: number(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: number(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            delayed: number(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        })
    }

    /// The `maxReceiveCount` of the queue's redrive policy, if it has one.
    pub async fn max_receive_count(&self) -> Result<Option<u64>, DlqError> {
        let output = self
            .client()
            .get_queue_attributes()
            .queue_url(self.url())
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .map_err(|error| self.error(adapter_error("GetQueueAttributes", error)))?;
        let policy = output
            .attributes
            .and_then(|mut attributes| attributes.remove(&QueueAttributeName::RedrivePolicy))
            .and_then(|policy| serde_json::from_str::<serde_json::Value>(&policy).ok());
        Ok(
            policy.and_then(|policy| match policy.get("maxReceiveCount") {
                Some(serde_json::Value::String(count)) => count.parse().ok(),
                Some(count) => count.as_u64(),
                None => None,
            }),
        )
    }

    /// URLs of the queues whose redrive policy names this queue as their DLQ.
    pub async fn dead_letter_sources(&self) -> Result<Vec<String>, DlqError> {
        let mut urls = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let output = self
                .client()
                .list_dead_letter_source_queues()
                .queue_url(self.url())
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|error| self.error(adapter_error("ListDeadLetterSourceQueues", error)))?;
            urls.extend(output.queue_urls);
            match output.next_token {
                Some(next) if !next.is_empty() => token = Some(next),
                _ => return Ok(urls),
            }
        }
    }

    /// Receives up to `max` messages, hidden from other consumers for `lease_seconds`.
    pub async fn receive(
        &self,
        max: usize,
        lease_seconds: i32,
    ) -> Result<Vec<DlqMessage>, DlqError> {
        let messages = self
            .sqs
            .receive_raw(max, RECEIVE_WAIT_SECONDS, Some(lease_seconds))
            .await
            .map_err(|source| self.error(source))?;
        Ok(messages.into_iter().map(DlqMessage::from_sdk).collect())
    }

    /// Makes held messages visible again at once. Returns how many could not be released:
    /// their lease had run out already, so they are visible anyway.
    pub async fn release(&self, receipts: &[String]) -> Result<usize, DlqError> {
        self.sqs
            .release_batch(receipts)
            .await
            .map_err(|source| self.error(source))
    }

    pub async fn delete(&self, receipt: &str) -> Result<(), AdapterError> {
        self.sqs.delete_one(receipt).await
    }

    /// Deletes messages ten at a time. Returns how many deletes were refused.
    pub async fn delete_many(&self, receipts: &[String]) -> Result<usize, DlqError> {
        self.sqs
            .delete_batch(receipts)
            .await
            .map_err(|source| self.error(source))
    }

    /// Sends one message; the error is the caller's to count, not fatal.
    pub async fn send(&self, message: Outgoing) -> Result<String, AdapterError> {
        self.sqs.send_raw(message).await
    }
}

/// A received message with what the DLQ commands read from it.
#[derive(Debug, Clone)]
pub struct DlqMessage {
    pub message_id: String,
    pub receipt: String,
    pub body: String,
    /// As received, data types included, so a replay sends them back unchanged.
    pub attributes: HashMap<String, MessageAttributeValue>,
    pub receive_count: u32,
    pub sent_at: Option<DateTime<Utc>>,
    /// FIFO queues only.
    pub group_id: Option<String>,
}

impl DlqMessage {
    pub fn from_sdk(message: Message) -> Self {
        let receive_count = receive_count_of(&message);
        let system = message.attributes.unwrap_or_default();
        let sent_at = system
            .get(&MessageSystemAttributeName::SentTimestamp)
            .and_then(|millis| millis.parse::<i64>().ok())
            .and_then(|millis| Utc.timestamp_millis_opt(millis).single());
        DlqMessage {
            message_id: message.message_id.unwrap_or_default(),
            receipt: message.receipt_handle.unwrap_or_default(),
            body: message.body.unwrap_or_default(),
            attributes: message.message_attributes.unwrap_or_default(),
            receive_count,
            sent_at,
            group_id: system
                .get(&MessageSystemAttributeName::MessageGroupId)
                .cloned(),
        }
    }

    /// The attributes that have a text form (`String` and `Number` types), sorted.
    pub fn strings(&self) -> BTreeMap<String, String> {
        self.attributes
            .iter()
            .filter_map(|(name, value)| Some((name.clone(), value.string_value.clone()?)))
            .collect()
    }

    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .get(name)
            .and_then(|value| value.string_value.as_deref())
    }

    /// Attributes without a text form (binary), which a JSON export cannot carry.
    pub fn binary_attributes(&self) -> usize {
        self.attributes
            .values()
            .filter(|value| value.string_value.is_none())
            .count()
    }
}

/// Receives a queue's messages once each and holds every message it has seen (hidden for
/// the lease) until the caller deletes it or the scan releases it. Holding is what makes a
/// scan finish: a message released at once would be received again by the next call, and
/// a queue whose head does not match a filter would never be got past.
#[derive(Debug)]
pub struct Scan<'q> {
    queue: &'q Queue,
    lease_seconds: i32,
    /// Message id → its latest receipt handle.
    held: HashMap<String, String>,
    seen: HashSet<String>,
    exhausted: bool,
}

impl<'q> Scan<'q> {
    pub fn new(queue: &'q Queue, lease_seconds: u32) -> Self {
        Scan {
            queue,
            lease_seconds: i32::try_from(lease_seconds).unwrap_or(i32::MAX),
            held: HashMap::new(),
            seen: HashSet::new(),
            exhausted: false,
        }
    }

    /// Up to `max` messages not seen before; empty once the queue has none left.
    pub async fn next(&mut self, max: usize) -> Result<Vec<DlqMessage>, DlqError> {
        let mut idle = 0;
        while !self.exhausted {
            let batch = self.queue.receive(max, self.lease_seconds).await?;
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
    fn hold(&mut self, batch: Vec<DlqMessage>) -> Vec<DlqMessage> {
        let mut fresh = Vec::with_capacity(batch.len());
        for message in batch {
            self.held
                .insert(message.message_id.clone(), message.receipt.clone());
            if self.seen.insert(message.message_id.clone()) {
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
    pub async fn release_all(&mut self) -> Result<(), DlqError> {
        let receipts: Vec<String> = self.held.drain().map(|(_, receipt)| receipt).collect();
        self.queue.release(&receipts).await?;
        Ok(())
    }

    pub fn clear(&mut self) {
        self.held.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> Queue {
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new("us-east-1"))
            .build();
        Queue {
            sqs: SqsQueue::new(
                Client::from_conf(config),
                "http://127.0.0.1:1/000000000000/dead-letters",
            ),
        }
    }

    fn received(message_id: &str, receipt: &str) -> DlqMessage {
        DlqMessage::from_sdk(
            Message::builder()
                .message_id(message_id)
                .receipt_handle(receipt)
                .body("{}")
                .build(),
        )
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
        let ids: Vec<&str> = fresh.iter().map(|m| m.message_id.as_str()).collect();
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
