//! Ports: the narrow interfaces the domain needs from the outside world, one per file.
//! Adapters implement them (`referral-aws` for AWS APIs, `referral-local` in memory) and the
//! contract suites in `tests/` hold every adapter of a port to the same behaviour. Nothing
//! in these signatures is an AWS type.

mod change_feed;
mod erasure_log;
mod event_archive;
mod feature_store;
mod generator;
mod message_store;
mod retention;
mod work_queue;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use thiserror::Error;

pub use crate::erasure_filter::ErasureFilter;
pub use change_feed::{ChangeFeed, ChangeKind, ChangeRecord};
pub use erasure_log::{
    ENRICHER_MAX_INVOCATION, ERASURE_GENERATION_TTL, ERASURE_SETTLE, ErasureLog, ErasureMarker,
};
pub use event_archive::EventArchive;
pub use feature_store::{FeatureStore, FeatureWrite, WriteOutcome};
pub use generator::{
    Generated, GenerationError, GenerationRequest, MessageGenerator, OnThrottle, TokenUsage,
};
pub use message_store::{
    Claim, Decision, Holder, MessageKey, MessageSlot, MessageStore, Recorded, ReferralMessage,
    SlotTaken, Suppression,
};
pub use retention::{ENV_MESSAGE_RETENTION_DAYS, MAX_RETENTION_DAYS, MessageRetention};
pub use work_queue::{
    BATCH_LIMIT, DEAD_LETTER_REASON_MAX_BYTES, MAX_MESSAGE_BYTES, MAX_QUEUED_BYTES,
    OutgoingMessage, QueueMessage, STRING_TYPE, WorkQueue,
};

use crate::features::{ArchivedEvent, CustomerFeatures};

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Failure of an adapter call, classified for the retry decision at the boundary. Its text
/// names the operation only; the cause is its `source()` (print both with
/// [`crate::error_chain`]).
#[derive(Debug, Error)]
pub enum AdapterError {
    /// Throttling, timeouts, 5xx, connection trouble: the same call may succeed later.
    #[error("{operation} failed transiently, retry later")]
    Transient {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
    /// The stored data cannot be decoded: retrying will not help, a person must look.
    #[error("{operation} found data it cannot decode")]
    Corrupt {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
    /// Refused for a reason retrying cannot fix (access denied, missing table, bad request).
    #[error("{operation} was refused")]
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
        impl<T: EventArchive + ?Sized> EventArchive for $wrapper {
            fn bucket(&self, customer_email: &str, bucket: u32)
                -> impl Future<Output = Result<Vec<ArchivedEvent>, AdapterError>> + Send {
                (**self).bucket(customer_email, bucket)
            }
            fn add(&self, customer_email: &str, bucket: u32, events: &[ArchivedEvent])
                -> impl Future<Output = Result<(), AdapterError>> + Send {
                (**self).add(customer_email, bucket, events)
            }
            fn remove(&self, customer_email: &str, bucket: u32, events: &[ArchivedEvent])
                -> impl Future<Output = Result<(), AdapterError>> + Send {
                (**self).remove(customer_email, bucket, events)
            }
            fn buckets(&self, customer_email: &str)
                -> impl Future<Output = Result<Vec<(u32, Vec<ArchivedEvent>)>, AdapterError>> + Send {
                (**self).buckets(customer_email)
            }
        }
        impl<T: ErasureLog + ?Sized> ErasureLog for $wrapper {
            fn record(&self, marker: &ErasureMarker)
                -> impl Future<Output = Result<(), AdapterError>> + Send {
                (**self).record(marker)
            }
            fn find(&self, hash: &str)
                -> impl Future<Output = Result<Option<ErasureMarker>, AdapterError>> + Send {
                (**self).find(hash)
            }
            fn filter_generation(&self)
                -> impl Future<Output = Result<u64, AdapterError>> + Send {
                (**self).filter_generation()
            }
            fn filter(&self)
                -> impl Future<Output = Result<(u64, ErasureFilter), AdapterError>> + Send {
                (**self).filter()
            }
        }
        impl<T: MessageStore + ?Sized> MessageStore for $wrapper {
            fn claim(&self, key: &MessageKey, holder: &Holder, now: DateTime<Utc>, lease: Duration)
                -> impl Future<Output = Result<Claim, AdapterError>> + Send {
                (**self).claim(key, holder, now, lease)
            }
            fn keep_draft(&self, holder: &Holder, draft: &ReferralMessage)
                -> impl Future<Output = Result<bool, AdapterError>> + Send {
                (**self).keep_draft(holder, draft)
            }
            fn record(&self, decision: Decision, holder: &Holder, now: DateTime<Utc>)
                -> impl Future<Output = Result<Recorded, AdapterError>> + Send {
                (**self).record(decision, holder, now)
            }
            fn release(&self, key: &MessageKey, holder: &Holder, now: DateTime<Utc>)
                -> impl Future<Output = Result<(), AdapterError>> + Send {
                (**self).release(key, holder, now)
            }
            fn decisions(&self, customer_email: &str)
                -> impl Future<Output = Result<Vec<Decision>, AdapterError>> + Send {
                (**self).decisions(customer_email)
            }
            fn take_message_slot(&self, customer_email: &str, wanted: MessageSlot, cooldown: Duration)
                -> impl Future<Output = Result<SlotTaken, AdapterError>> + Send {
                (**self).take_message_slot(customer_email, wanted, cooldown)
            }
            fn message_slot(&self, customer_email: &str)
                -> impl Future<Output = Result<Option<MessageSlot>, AdapterError>> + Send {
                (**self).message_slot(customer_email)
            }
            fn spend_model_call(&self, day: NaiveDate, limit: u64)
                -> impl Future<Output = Result<bool, AdapterError>> + Send {
                (**self).spend_model_call(day, limit)
            }
            fn model_calls(&self, day: NaiveDate)
                -> impl Future<Output = Result<u64, AdapterError>> + Send {
                (**self).model_calls(day)
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
            fn retry_later(&self, receipts: &[String], after: Duration)
                -> impl Future<Output = Result<(), AdapterError>> + Send {
                (**self).retry_later(receipts, after)
            }
        }
        impl<T: ChangeFeed + ?Sized> ChangeFeed for $wrapper {
            fn poll(&self, max: usize)
                -> impl Future<Output = Result<Vec<ChangeRecord>, AdapterError>> + Send {
                (**self).poll(max)
            }
            fn resume_from(&self, sequence_number: &str)
                -> impl Future<Output = Result<(), AdapterError>> + Send {
                (**self).resume_from(sequence_number)
            }
        }
    )*};
}

forward_ports!(&T, Arc<T>);
