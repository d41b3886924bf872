//! Ports: the narrow interfaces the domain needs from the outside world. Adapters (the
//! embedded in-memory ones here, the AWS ones beside them) implement them; nothing in
//! these signatures is an AWS type.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::features::CustomerFeatures;
use crate::prompt::Prompt;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Failure of an adapter call, classified for the retry decision at the boundary.
#[derive(Debug, Error)]
pub enum AdapterError {
    /// Throttling, timeouts, 5xx, connection trouble: the same call may succeed later.
    #[error("{operation} failed transiently, retry later: {source}")]
    Transient {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
    /// The stored data cannot be decoded: retrying will not help, a person must look.
    #[error("{operation} found data it cannot decode: {source}")]
    Corrupt {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
    /// Refused for a reason retrying cannot fix (access denied, missing table, bad request).
    #[error("{operation} was refused: {source}")]
    Permanent {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
}

impl AdapterError {
    pub fn is_transient(&self) -> bool {
        matches!(self, AdapterError::Transient { .. })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            AdapterError::Transient { .. } => "transient",
            AdapterError::Corrupt { .. } => "corrupt",
            AdapterError::Permanent { .. } => "permanent",
        }
    }
}

// ---------------------------------------------------------------------------------------
// Feature store

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

// ---------------------------------------------------------------------------------------
// Change feed (the table's stream)

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
    pub old_image: Option<Arc<CustomerFeatures>>,
    pub new_image: Option<Arc<CustomerFeatures>>,
}

pub trait ChangeFeed: Send + Sync {
    /// Up to `max` records not yet handed out, oldest first.
    fn poll(
        &self,
        max: usize,
    ) -> impl Future<Output = Result<Vec<ChangeRecord>, AdapterError>> + Send;
}

// ---------------------------------------------------------------------------------------
// Messages

/// Identifies the one message a change may produce.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageKey {
    pub customer_email: String,
    pub message_id: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    pub input_tokens: u32,
    pub output_tokens: u32,
}

/// A completed referral message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferralMessage {
    #[serde(rename = "customerEmail")]
    pub customer_email: String,
    pub message_id: String,
    pub trigger_event_id: Option<String>,
    pub features_version: u64,
    pub recommended_service: String,
    pub body: String,
    pub prompt: String,
    pub prompt_hash: String,
    pub generator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<TokenUsage>,
    #[serde(with = "crate::features::rfc3339")]
    pub created_at: DateTime<Utc>,
}

impl ReferralMessage {
    pub fn key(&self) -> MessageKey {
        MessageKey {
            customer_email: self.customer_email.clone(),
            message_id: self.message_id.clone(),
        }
    }
}

/// The answer to a claim: whether this caller may generate the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The caller holds the claim until the lease runs out: generate, then complete.
    Acquired,
    /// The message exists: a redelivery, nothing to do.
    Completed,
    /// Another invocation holds a live claim; retry after `expires_at`.
    InProgress { expires_at: DateTime<Utc> },
}

/// Put-if-absent storage for messages, in two steps so the model is called at most once
/// per change: claim (conditional put of an `in_progress` marker that expires), then
/// complete. An expired claim — its holder crashed — can be taken over.
pub trait MessageStore: Send + Sync {
    fn claim(
        &self,
        key: &MessageKey,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> impl Future<Output = Result<Claim, AdapterError>> + Send;

    fn complete(
        &self,
        message: ReferralMessage,
    ) -> impl Future<Output = Result<(), AdapterError>> + Send;

    /// Completed messages of one customer, oldest first.
    fn list(
        &self,
        customer_email: &str,
    ) -> impl Future<Output = Result<Vec<ReferralMessage>, AdapterError>> + Send;
}

// ---------------------------------------------------------------------------------------
// Message generation

#[derive(Debug, Clone, Copy)]
pub struct GenerationRequest<'a> {
    pub features: Option<&'a CustomerFeatures>,
    pub prompt: &'a Prompt,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub recommended_service: String,
    pub body: String,
    /// `template`, `bedrock`, ...: which generator wrote the message.
    pub generator: &'static str,
    pub model_id: Option<String>,
    pub usage: Option<TokenUsage>,
}

#[derive(Debug, Error)]
pub enum GenerationError {
    #[error("the model is throttling requests")]
    Throttled,
    #[error("the model did not answer in time")]
    Timeout,
    #[error("access to the model was denied")]
    AccessDenied,
    #[error("the model refused the request: {0}")]
    Rejected(String),
    #[error("the model's answer is unusable")]
    Unusable(#[source] crate::answer::AnswerError),
    #[error("the model could not be reached: {0}")]
    Unavailable(#[source] BoxError),
}

impl GenerationError {
    pub fn kind(&self) -> &'static str {
        match self {
            GenerationError::Throttled => "throttled",
            GenerationError::Timeout => "timeout",
            GenerationError::AccessDenied => "access_denied",
            GenerationError::Rejected(_) => "rejected",
            GenerationError::Unusable(_) => "unusable_answer",
            GenerationError::Unavailable(_) => "unavailable",
        }
    }
}

pub trait MessageGenerator: Send + Sync {
    fn generate(
        &self,
        request: GenerationRequest<'_>,
    ) -> impl Future<Output = Result<Generated, GenerationError>> + Send;
}

// ---------------------------------------------------------------------------------------
// Work queue (the webhook queue)

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub body: String,
    pub attributes: BTreeMap<String, String>,
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

    /// Makes messages visible again at once, for another attempt.
    fn retry_later(
        &self,
        receipts: &[String],
    ) -> impl Future<Output = Result<(), AdapterError>> + Send;
}

// Ports are used through shared references and `Arc`s as well as by value.
macro_rules! forward_ports {
    ($($wrapper:ty),*) => {$(
        impl<T: FeatureStore + ?Sized> FeatureStore for $wrapper {
            fn load(&self, customer_email: &str)
                -> impl Future<Output = Result<Option<CustomerFeatures>, AdapterError>> + Send {
                (**self).load(customer_email)
            }
            fn save(&self, write: FeatureWrite)
                -> impl Future<Output = Result<WriteOutcome, AdapterError>> + Send {
                (**self).save(write)
            }
        }
        impl<T: MessageStore + ?Sized> MessageStore for $wrapper {
            fn claim(&self, key: &MessageKey, now: DateTime<Utc>, lease: Duration)
                -> impl Future<Output = Result<Claim, AdapterError>> + Send {
                (**self).claim(key, now, lease)
            }
            fn complete(&self, message: ReferralMessage)
                -> impl Future<Output = Result<(), AdapterError>> + Send {
                (**self).complete(message)
            }
            fn list(&self, customer_email: &str)
                -> impl Future<Output = Result<Vec<ReferralMessage>, AdapterError>> + Send {
                (**self).list(customer_email)
            }
        }
        impl<T: MessageGenerator + ?Sized> MessageGenerator for $wrapper {
            fn generate(&self, request: GenerationRequest<'_>)
                -> impl Future<Output = Result<Generated, GenerationError>> + Send {
                (**self).generate(request)
            }
        }
        impl<T: WorkQueue + ?Sized> WorkQueue for $wrapper {
            fn send(&self, messages: Vec<OutgoingMessage>)
                -> impl Future<Output = Result<(), AdapterError>> + Send {
                (**self).send(messages)
            }
            fn receive(&self, max: usize)
                -> impl Future<Output = Result<Vec<QueueMessage>, AdapterError>> + Send {
                (**self).receive(max)
            }
            fn delete(&self, receipts: &[String])
                -> impl Future<Output = Result<(), AdapterError>> + Send {
                (**self).delete(receipts)
            }
            fn retry_later(&self, receipts: &[String])
                -> impl Future<Output = Result<(), AdapterError>> + Send {
                (**self).retry_later(receipts)
            }
        }
        impl<T: ChangeFeed + ?Sized> ChangeFeed for $wrapper {
            fn poll(&self, max: usize)
                -> impl Future<Output = Result<Vec<ChangeRecord>, AdapterError>> + Send {
                (**self).poll(max)
            }
        }
    )*};
}

forward_ports!(&T, Arc<T>);
