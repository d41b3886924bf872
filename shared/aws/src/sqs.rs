//! SQS adapter of the work-queue port, and the raw calls the operators' DLQ tools need.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    BatchResultErrorEntry, ChangeMessageVisibilityBatchRequestEntry,
    DeleteMessageBatchRequestEntry, Message, MessageAttributeValue, MessageSystemAttributeName,
    SendMessageBatchRequestEntry,
};

use crate::error::{adapter_error, corrupt};
use referral_domain::ports::{AdapterError, OutgoingMessage, QueueMessage, WorkQueue};

pub use referral_domain::ports::{BATCH_LIMIT as SQS_BATCH_LIMIT, MAX_MESSAGE_BYTES};

pub mod scan;
/// SQS's longest visibility timeout: 12 hours.
const MAX_VISIBILITY_SECONDS: u64 = 43_200;
/// The most message attributes SQS accepts on one message.
pub const MAX_MESSAGE_ATTRIBUTES: usize = 10;

/// One SQS queue, by URL.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
    /// Long-poll wait of `receive`, in seconds (0..=20).
    wait_seconds: i32,
}

impl SqsQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        SqsQueue {
            client,
            url: url.into(),
            wait_seconds: 1,
        }
    }

    /// Sets the long-poll wait of `receive`: 0 answers at once, up to 20 waits for messages.
    pub fn with_wait_seconds(mut self, seconds: i32) -> Self {
        self.wait_seconds = seconds.clamp(0, 20);
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The queue's name: the last segment of its URL.
    pub fn name(&self) -> &str {
        self.url.rsplit('/').next().unwrap_or(&self.url)
    }

    /// Receives up to `max` raw SDK messages with every attribute, for callers that need
    /// more than the port shows (the local event-source mapping, DLQ tools). With
    /// `visibility_timeout`, the messages stay hidden that many seconds instead of the
    /// queue's default.
    pub async fn receive_raw(
        &self,
        max: usize,
        wait_seconds: i32,
        visibility_timeout: Option<i32>,
    ) -> Result<Vec<Message>, AdapterError> {
        // A long poll answers after up to `wait_seconds`: its bounds get that on top of the
        // client's.
        let wait = Duration::from_secs(u64::try_from(wait_seconds.max(0)).unwrap_or(0));
        let configured = self.client.config().timeout_config();
        let attempt = configured
            .and_then(|timeouts| timeouts.operation_attempt_timeout())
            .unwrap_or(crate::config::ATTEMPT_TIMEOUT);
        let operation = configured
            .and_then(|timeouts| timeouts.operation_timeout())
            .unwrap_or(crate::config::OPERATION_TIMEOUT);
        let timeouts = aws_sdk_sqs::config::timeout::TimeoutConfig::builder()
            .operation_attempt_timeout(attempt + wait)
            .operation_timeout(operation + wait)
            .build();
        let output = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(i32::try_from(max.clamp(1, SQS_BATCH_LIMIT)).unwrap_or(10))
            .set_visibility_timeout(visibility_timeout)
            .wait_time_seconds(wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .customize()
            .config_override(aws_sdk_sqs::config::Builder::default().timeout_config(timeouts))
            .send()
            .await
            .map_err(|error| adapter_error("ReceiveMessage", error))?;
        Ok(output.messages.unwrap_or_default())
    }

    /// Sends one message with attributes as SQS types them, and the FIFO fields. Returns
    /// the message id.
    pub async fn send_raw(&self, message: RawMessage) -> Result<String, AdapterError> {
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

    /// Deletes one message.
    pub async fn delete_one(&self, receipt: &str) -> Result<(), AdapterError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|error| adapter_error("DeleteMessage", error))?;
        Ok(())
    }

    /// Deletes messages ten at a time. Returns how many deletes SQS refused (e.g. a receipt
    /// whose lease ran out); an error only when a whole call failed.
    pub async fn delete_batch(&self, receipts: &[String]) -> Result<usize, AdapterError> {
        Ok(self.delete_entries(receipts).await?.len())
    }

    /// Makes held messages visible again at once (visibility timeout 0), ten at a time.
    /// Returns how many SQS refused (e.g. a receipt whose lease ran out: that message is
    /// visible anyway); an error only when a whole call failed.
    pub async fn release_batch(&self, receipts: &[String]) -> Result<usize, AdapterError> {
        Ok(self
            .change_visibility(receipts, Duration::ZERO)
            .await?
            .len())
    }

    /// DeleteMessageBatch over every chunk; the refused entries.
    async fn delete_entries(
        &self,
        receipts: &[String],
    ) -> Result<Vec<BatchResultErrorEntry>, AdapterError> {
        const OPERATION: &str = "DeleteMessageBatch";
        in_batches(
            OPERATION,
            receipts,
            |id, receipt| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(id)
                    .receipt_handle(receipt)
                    .build()
            },
            |entries| async move {
                self.client
                    .delete_message_batch()
                    .queue_url(&self.url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map(|output| output.failed)
                    .map_err(|error| adapter_error(OPERATION, error))
            },
        )
        .await
    }

    /// Sets the visibility of held messages to `after` from now (SQS's range: whole
    /// seconds up to 12 hours), ten at a time; the entries SQS refused.
    async fn change_visibility(
        &self,
        receipts: &[String],
        after: Duration,
    ) -> Result<Vec<BatchResultErrorEntry>, AdapterError> {
        let seconds = i32::try_from(after.as_secs().min(MAX_VISIBILITY_SECONDS)).unwrap_or(0);
        const OPERATION: &str = "ChangeMessageVisibilityBatch";
        in_batches(
            OPERATION,
            receipts,
            |id, receipt| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(id)
                    .receipt_handle(receipt)
                    .visibility_timeout(seconds)
                    .build()
            },
            |entries| async move {
                self.client
                    .change_message_visibility_batch()
                    .queue_url(&self.url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map(|output| output.failed)
                    .map_err(|error| adapter_error(OPERATION, error))
            },
        )
        .await
    }
}

/// One message to send with [`SqsQueue::send_raw`].
#[derive(Debug, Clone, Default)]
pub struct RawMessage {
    pub body: String,
    /// As SQS types them (`String`, `Number`, `Binary`); none is sent when empty.
    pub attributes: HashMap<String, MessageAttributeValue>,
    /// FIFO queues only.
    pub group_id: Option<String>,
    /// FIFO queues only.
    pub deduplication_id: Option<String>,
}

/// Makes one batch call per ten receipts, each receipt an entry built by `entry` with its
/// index in the chunk as id, and collects the entries SQS refused. Stops at the first call
/// that fails as a whole.
async fn in_batches<E, B, F>(
    operation: &'static str,
    receipts: &[String],
    entry: impl Fn(String, &str) -> Result<E, B>,
    call: impl Fn(Vec<E>) -> F,
) -> Result<Vec<BatchResultErrorEntry>, AdapterError>
where
    B: Into<referral_domain::ports::BoxError>,
    F: Future<Output = Result<Vec<BatchResultErrorEntry>, AdapterError>>,
{
    let mut failed = Vec::new();
    for chunk in receipts.chunks(SQS_BATCH_LIMIT) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(index, receipt)| {
                entry(index.to_string(), receipt).map_err(|error| corrupt(operation, error))
            })
            .collect::<Result<Vec<_>, _>>()?;
        failed.extend(call(entries).await?);
    }
    Ok(failed)
}

/// The error for a batch call of `total` entries that SQS refused in part: permanent when
/// the first refusal is the sender's fault, transient otherwise.
fn refused(
    operation: &'static str,
    failed: &[BatchResultErrorEntry],
    total: usize,
    what: &str,
) -> Option<AdapterError> {
    let failure = failed.first()?;
    let detail = format!(
        "{} of {total} {what} refused, first: {} {}",
        failed.len(),
        failure.code,
        failure.message.as_deref().unwrap_or_default()
    );
    Some(if failure.sender_fault {
        AdapterError::Permanent {
            operation,
            source: detail.into(),
        }
    } else {
        AdapterError::Transient {
            operation,
            source: detail.into(),
        }
    })
}

/// String message attributes in SQS's shape. Empty values are left out (SQS refuses them).
pub fn string_attributes(
    attributes: &BTreeMap<String, String>,
) -> Result<HashMap<String, MessageAttributeValue>, AdapterError> {
    attributes
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map(|attribute| (name.clone(), attribute))
                .map_err(|error| corrupt("SendMessage", error))
        })
        .collect()
}

/// A received message as the port hands it out.
pub fn queue_message(message: Message) -> QueueMessage {
    QueueMessage {
        receive_count: receive_count_of(&message),
        attributes: attributes_of(&message),
        message_id: message.message_id.unwrap_or_default(),
        receipt: message.receipt_handle.unwrap_or_default(),
        body: message.body.unwrap_or_default(),
    }
}

/// The string attributes of a received message.
pub fn attributes_of(message: &Message) -> BTreeMap<String, String> {
    message
        .message_attributes
        .iter()
        .flatten()
        .filter_map(|(name, value)| Some((name.clone(), value.string_value.clone()?)))
        .collect()
}

/// How many times a received message has been delivered.
pub fn receive_count_of(message: &Message) -> u32 {
    message
        .attributes
        .as_ref()
        .and_then(|attributes| attributes.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|count| count.parse().ok())
        .unwrap_or(1)
}

/// The messages cut into SendMessageBatch calls: at most ten each, and at most
/// [`MAX_MESSAGE_BYTES`] together.
fn batches(messages: &[OutgoingMessage]) -> Vec<&[OutgoingMessage]> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (index, message) in messages.iter().enumerate() {
        let size = message.size();
        if index > start && (index - start == SQS_BATCH_LIMIT || bytes + size > MAX_MESSAGE_BYTES) {
            chunks.push(&messages[start..index]);
            (start, bytes) = (index, 0);
        }
        bytes += size;
    }
    if start < messages.len() {
        chunks.push(&messages[start..]);
    }
    chunks
}

impl WorkQueue for SqsQueue {
    async fn send(&self, messages: Vec<OutgoingMessage>) -> Result<(), AdapterError> {
        for message in &messages {
            message.check_size("SendMessageBatch")?;
        }
        for chunk in batches(&messages) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(index, message)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(index.to_string())
                        .message_body(&message.body)
                        .set_message_attributes(Some(string_attributes(&message.attributes)?))
                        .build()
                        .map_err(|error| corrupt("SendMessageBatch", error))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let output = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|error| adapter_error("SendMessageBatch", error))?;
            if let Some(error) =
                refused("SendMessageBatch", &output.failed, chunk.len(), "messages")
            {
                return Err(error);
            }
        }
        Ok(())
    }

    async fn receive(&self, max: usize) -> Result<Vec<QueueMessage>, AdapterError> {
        let messages = self.receive_raw(max, self.wait_seconds, None).await?;
        Ok(messages.into_iter().map(queue_message).collect())
    }

    async fn delete(&self, receipts: &[String]) -> Result<(), AdapterError> {
        let failed = self.delete_batch(receipts).await?;
        if failed > 0 {
            // The undeleted messages come back after their visibility timeout and are
            // then acknowledged as duplicates: report, do not lose them.
            return Err(AdapterError::Transient {
                operation: "DeleteMessageBatch",
                source: format!("{failed} deletes failed").into(),
            });
        }
        Ok(())
    }

    async fn retry_later(&self, receipts: &[String], after: Duration) -> Result<(), AdapterError> {
        let failed = self.change_visibility(receipts, after).await?;
        match refused(
            "ChangeMessageVisibilityBatch",
            &failed,
            receipts.len(),
            "visibility changes",
        ) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}
