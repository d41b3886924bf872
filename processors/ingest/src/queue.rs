//! Handing an accepted webhook to the queue: the `Enqueue` port, its SQS adapter, and an
//! in-memory recorder for tests and local runs.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_sqs::config::timeout::TimeoutConfig;
use aws_sdk_sqs::types::MessageAttributeValue;
use referral_aws::error::adapter_error;
use referral_domain::ports::AdapterError;

/// SQS's message size limit; body and attributes (names, types and values) count.
pub const MAX_MESSAGE_BYTES: usize = 262_144;

pub const EVENT_ID_ATTRIBUTE: &str = "event_id";
pub const EVENT_TYPE_ATTRIBUTE: &str = "event_type";
/// The hashed customer key (`referral_domain::redact::customer_ref`), never the address.
pub const CUSTOMER_REF_ATTRIBUTE: &str = "customer_ref";

/// The SQS data type of every attribute this crate sets.
const STRING_TYPE: &str = "String";

/// One accepted webhook, as it goes onto the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedEvent {
    /// The webhook body exactly as signed (base64 already decoded).
    pub body: String,
    pub event_id: String,
    pub event_type: String,
    /// `None` for events of another type, which carry no validated customer.
    pub customer_ref: Option<String>,
}

impl QueuedEvent {
    /// The message attributes, name → string value.
    pub fn attributes(&self) -> Vec<(&'static str, &str)> {
        let mut attributes = vec![
            (EVENT_ID_ATTRIBUTE, self.event_id.as_str()),
            (EVENT_TYPE_ATTRIBUTE, self.event_type.as_str()),
        ];
        if let Some(customer_ref) = &self.customer_ref {
            attributes.push((CUSTOMER_REF_ATTRIBUTE, customer_ref.as_str()));
        }
        attributes
    }

    /// The size SQS charges against [`MAX_MESSAGE_BYTES`].
    pub fn size(&self) -> usize {
        self.body.len()
            + self
                .attributes()
                .iter()
                .map(|(name, value)| name.len() + STRING_TYPE.len() + value.len())
                .sum::<usize>()
    }
}

/// Whether SQS can carry `text`: it refuses U+FFFE, U+FFFF and the C0 control characters
/// other than tab, line feed and carriage return.
pub fn sqs_can_carry(text: &str) -> bool {
    !text.chars().any(|c| {
        matches!(c, '\u{FFFE}' | '\u{FFFF}') || (c < ' ' && !matches!(c, '\t' | '\n' | '\r'))
    })
}

/// The port: put one accepted webhook on the queue.
pub trait Enqueue: Send + Sync {
    fn enqueue(&self, event: QueuedEvent) -> impl Future<Output = Result<(), AdapterError>> + Send;
}

impl<T: Enqueue + ?Sized> Enqueue for &T {
    fn enqueue(&self, event: QueuedEvent) -> impl Future<Output = Result<(), AdapterError>> + Send {
        (**self).enqueue(event)
    }
}

impl<T: Enqueue + ?Sized> Enqueue for Arc<T> {
    fn enqueue(&self, event: QueuedEvent) -> impl Future<Output = Result<(), AdapterError>> + Send {
        (**self).enqueue(event)
    }
}

/// The SQS adapter: one `SendMessage` per event.
#[derive(Debug, Clone)]
pub struct SqsEnqueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

/// API Gateway gives up on an integration after 30 s; the SDK's retries must end well
/// before, so that the caller gets a 503 with `Retry-After` rather than a gateway timeout.
pub fn default_operation_timeout() -> Duration {
    Duration::from_secs(10)
}

impl SqsEnqueue {
    /// A client from the shared SDK configuration, with an overall operation timeout of
    /// [`default_operation_timeout`] (retries included).
    pub fn new(sdk_config: &SdkConfig, queue_url: impl Into<String>) -> Self {
        let config = aws_sdk_sqs::config::Builder::from(sdk_config)
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(default_operation_timeout())
                    .build(),
            )
            .build();
        Self::with_client(aws_sdk_sqs::Client::from_conf(config), queue_url)
    }

    /// Uses a client built elsewhere (tests with mocked clients).
    pub fn with_client(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        SqsEnqueue {
            client,
            queue_url: queue_url.into(),
        }
    }
}

impl Enqueue for SqsEnqueue {
    async fn enqueue(&self, event: QueuedEvent) -> Result<(), AdapterError> {
        const OPERATION: &str = "SQS SendMessage";
        let mut request = self.client.send_message().queue_url(&self.queue_url);
        for (name, value) in event.attributes() {
            let value = MessageAttributeValue::builder()
                .data_type(STRING_TYPE)
                .string_value(value)
                .build()
                .map_err(|err| AdapterError::Permanent {
                    operation: OPERATION,
                    source: err.into(),
                })?;
            request = request.message_attributes(name, value);
        }
        request
            .message_body(event.body)
            .send()
            .await
            .map(|_| ())
            .map_err(|err| adapter_error(OPERATION, err))
    }
}

/// How a [`MemoryQueue`] fails, when told to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Transient,
    Permanent,
}

/// An in-memory queue that records what is sent, or fails every send when told to.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    sent: Mutex<Vec<QueuedEvent>>,
    failure: Mutex<Option<Failure>>,
}

impl MemoryQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// A queue whose every send fails with `failure` (and records nothing).
    pub fn failing(failure: Failure) -> Self {
        let queue = Self::default();
        queue.set_failure(Some(failure));
        queue
    }

    pub fn set_failure(&self, failure: Option<Failure>) {
        *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = failure;
    }

    /// Everything sent so far, oldest first.
    pub fn sent(&self) -> Vec<QueuedEvent> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Enqueue for MemoryQueue {
    async fn enqueue(&self, event: QueuedEvent) -> Result<(), AdapterError> {
        const OPERATION: &str = "in-memory enqueue";
        let failure = *self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        match failure {
            Some(Failure::Transient) => Err(AdapterError::Transient {
                operation: OPERATION,
                source: "simulated throttling".into(),
            }),
            Some(Failure::Permanent) => Err(AdapterError::Permanent {
                operation: OPERATION,
                source: "simulated access denied".into(),
            }),
            None => {
                self.sent
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(event);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(customer_ref: Option<&str>) -> QueuedEvent {
        QueuedEvent {
            body: "{}".to_owned(),
            event_id: "evt_1".to_owned(),
            event_type: "service.completed".to_owned(),
            customer_ref: customer_ref.map(str::to_owned),
        }
    }

    #[test]
    fn size_counts_body_and_attributes() {
        let with_ref = event(Some("abcdef123456"));
        let expected = 2
            + ("event_id".len() + 6 + 5)
            + ("event_type".len() + 6 + 17)
            + ("customer_ref".len() + 6 + 12);
        assert_eq!(with_ref.size(), expected);
        assert_eq!(event(None).attributes().len(), 2);
    }

    #[test]
    fn characters_sqs_refuses() {
        assert!(sqs_can_carry("plain \t\r\n text é 日本 🎉"));
        assert!(!sqs_can_carry("bell \u{7}"));
        assert!(!sqs_can_carry("\u{FFFF}"));
        assert!(!sqs_can_carry("nul \0"));
        assert!(sqs_can_carry("del \u{7f} and c1 \u{85}"));
    }

    #[tokio::test]
    async fn memory_queue_records_or_fails() {
        let queue = MemoryQueue::new();
        queue.enqueue(event(None)).await.unwrap();
        assert_eq!(queue.sent(), vec![event(None)]);

        queue.set_failure(Some(Failure::Transient));
        assert!(queue.enqueue(event(None)).await.unwrap_err().is_transient());
        queue.set_failure(Some(Failure::Permanent));
        assert!(!queue.enqueue(event(None)).await.unwrap_err().is_transient());
        assert_eq!(queue.sent().len(), 1);
    }
}
