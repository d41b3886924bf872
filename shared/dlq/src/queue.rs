//! One queue as the DLQ commands see it (resolved by name or URL; depth; receive under a
//! lease; release; delete; send), and the scan that holds every message it has seen.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    Message, MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
};
use chrono::{DateTime, TimeZone, Utc};
use referral_aws::error::adapter_error;
/// A message to send: body, typed attributes and, on FIFO queues, group and deduplication
/// ids.
pub use referral_aws::sqs::RawMessage as Outgoing;
use referral_aws::sqs::scan as sqs_scan;
use referral_aws::sqs::{SQS_BATCH_LIMIT, SqsQueue, receive_count_of};
use referral_domain::ports::AdapterError;

use super::DlqError;
use referral_aws_local::provision::{queue_arn, queue_url};

/// SQS takes at most ten messages per receive and ten entries per batch call.
pub const BATCH_LIMIT: usize = SQS_BATCH_LIMIT;

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
        self.sqs.name()
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

/// Receives a queue's messages once each and holds every message it has seen until the
/// caller deletes it or the scan releases it (`referral_aws::sqs::scan`), as DLQ messages.
#[derive(Debug)]
pub struct Scan<'q> {
    queue: &'q Queue,
    inner: sqs_scan::Scan<'q>,
}

impl<'q> Scan<'q> {
    pub fn new(queue: &'q Queue, lease_seconds: u32) -> Self {
        Scan {
            queue,
            inner: sqs_scan::Scan::new(&queue.sqs, lease_seconds),
        }
    }

    /// Up to `max` messages not seen before; empty once the queue has none left.
    pub async fn next(&mut self, max: usize) -> Result<Vec<DlqMessage>, DlqError> {
        let batch = self
            .inner
            .next(max)
            .await
            .map_err(|source| self.queue.error(source))?;
        Ok(batch.into_iter().map(DlqMessage::from_sdk).collect())
    }

    /// The message is gone from the queue (deleted): nothing to release.
    pub fn forget(&mut self, message_id: &str) {
        self.inner.forget(message_id);
    }

    /// Receipts of every held message, e.g. to delete them all.
    pub fn held_receipts(&self) -> Vec<String> {
        self.inner.held_receipts()
    }

    /// Makes every held message visible again at once.
    pub async fn release_all(&mut self) -> Result<(), DlqError> {
        self.inner
            .release_all()
            .await
            .map_err(|source| self.queue.error(source))
    }

    pub fn clear(&mut self) {
        self.inner.clear();
    }
}
