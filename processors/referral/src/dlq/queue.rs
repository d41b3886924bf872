//! One queue as the DLQ commands see it (resolved by name or URL; depth; receive under a
//! lease; release; delete; send), and the scan that holds every message it has seen.

use std::collections::{BTreeMap, HashMap, HashSet};

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
};
use chrono::{DateTime, TimeZone, Utc};
use referral_shared::aws::error::{adapter_error, corrupt};
use referral_shared::aws::sqs::{queue_arn, queue_url, receive_count_of};
use referral_shared::ports::AdapterError;

use super::DlqError;

/// SQS takes at most ten messages per receive and ten entries per batch call.
pub const BATCH_LIMIT: usize = 10;
/// Long-poll wait of a receive: an empty answer then means the queue had nothing visible
/// for this long, not that a short poll happened to sample empty servers.
const RECEIVE_WAIT_SECONDS: i32 = 1;
/// Empty-handed receives (only messages seen before) after which a scan is over.
const IDLE_RECEIVES: u32 = 3;

/// A queue, resolved to its URL.
#[derive(Debug, Clone)]
pub struct Queue {
    client: Client,
    url: String,
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

/// A message to send.
#[derive(Debug, Clone, Default)]
pub struct Outgoing {
    pub body: String,
    pub attributes: HashMap<String, MessageAttributeValue>,
    /// FIFO queues only.
    pub group_id: Option<String>,
    /// FIFO queues only.
    pub deduplication_id: Option<String>,
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
            client: client.clone(),
            url,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The queue's name: the last segment of its URL.
    pub fn name(&self) -> &str {
        self.url.rsplit('/').next().unwrap_or(&self.url)
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
        queue_arn(&self.client, &self.url)
            .await
            .map_err(|source| self.error(source))
    }

    pub async fn depth(&self) -> Result<Depth, DlqError> {
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
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
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
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
                .client
                .list_dead_letter_source_queues()
                .queue_url(&self.url)
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
        let output = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(i32::try_from(max.clamp(1, BATCH_LIMIT)).unwrap_or(10))
            .visibility_timeout(lease_seconds)
            .wait_time_seconds(RECEIVE_WAIT_SECONDS)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|error| self.error(adapter_error("ReceiveMessage", error)))?;
        Ok(output
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(DlqMessage::from_sdk)
            .collect())
    }

    /// Makes held messages visible again at once. Returns how many could not be released:
    /// their lease had run out already, so they are visible anyway.
    pub async fn release(&self, receipts: &[String]) -> Result<usize, DlqError> {
        let mut refused = 0;
        for chunk in receipts.chunks(BATCH_LIMIT) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(index, receipt)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(index.to_string())
                        .receipt_handle(receipt)
                        .visibility_timeout(0)
                        .build()
                        .map_err(|error| self.error(corrupt("ChangeMessageVisibilityBatch", error)))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let output = self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|error| {
                    self.error(adapter_error("ChangeMessageVisibilityBatch", error))
                })?;
            refused += output.failed.len();
        }
        Ok(refused)
    }

    pub async fn delete(&self, receipt: &str) -> Result<(), AdapterError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|error| adapter_error("DeleteMessage", error))?;
        Ok(())
    }

    /// Deletes messages ten at a time. Returns how many deletes were refused.
    pub async fn delete_many(&self, receipts: &[String]) -> Result<usize, DlqError> {
        let mut refused = 0;
        for chunk in receipts.chunks(BATCH_LIMIT) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(index, receipt)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(index.to_string())
                        .receipt_handle(receipt)
                        .build()
                        .map_err(|error| self.error(corrupt("DeleteMessageBatch", error)))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let output = self
                .client
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|error| self.error(adapter_error("DeleteMessageBatch", error)))?;
            refused += output.failed.len();
        }
        Ok(refused)
    }

    /// Sends one message; the error is the caller's to count, not fatal.
    pub async fn send(&self, message: Outgoing) -> Result<String, AdapterError> {
        let output = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(message.body)
            .set_message_attributes((!message.attributes.is_empty()).then_some(message.attributes))
            .set_message_group_id(message.group_id)
            .set_message_deduplication_id(message.deduplication_id)
            .send()
            .await
            .map_err(|error| adapter_error("SendMessage", error))?;
        Ok(output.message_id.unwrap_or_default())
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
            let mut fresh = Vec::with_capacity(batch.len());
            for message in batch {
                self.held
                    .insert(message.message_id.clone(), message.receipt.clone());
                if self.seen.insert(message.message_id.clone()) {
                    fresh.push(message);
                }
            }
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
