//! The queue the handler tests give ingest: the embedded queue (SQS's rules), which fails
//! every send when told to, as SQS does when it throttles or refuses.
// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::sync::Mutex;
use std::time::Duration;

use referral_domain::ports::{AdapterError, OutgoingMessage, QueueMessage, WorkQueue};
use referral_local::embedded::EmbeddedQueue;

/// How a [`TestQueue`] fails its sends, when told to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Transient,
    Permanent,
}

#[derive(Debug, Default)]
pub struct TestQueue {
    queue: EmbeddedQueue,
    failure: Mutex<Option<Failure>>,
}

impl TestQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// A queue whose every send fails with `failure` (and holds nothing).
    pub fn failing(failure: Failure) -> Self {
        let queue = Self::default();
        *queue.failure.lock().unwrap() = Some(failure);
        queue
    }

    /// Every message the queue holds, oldest first, without receiving any.
    pub fn sent(&self) -> Vec<QueueMessage> {
        self.queue.peek_all()
    }
}

impl WorkQueue for TestQueue {
    async fn send(&self, messages: Vec<OutgoingMessage>) -> Result<(), AdapterError> {
        const OPERATION: &str = "test queue send";
        let failure = *self.failure.lock().unwrap();
        match failure {
            Some(Failure::Transient) => Err(AdapterError::Transient {
                operation: OPERATION,
                source: "simulated throttling".into(),
            }),
            Some(Failure::Permanent) => Err(AdapterError::Permanent {
                operation: OPERATION,
                source: "simulated access denied".into(),
            }),
            None => self.queue.send(messages).await,
        }
    }

    async fn receive(&self, max: usize) -> Result<Vec<QueueMessage>, AdapterError> {
        self.queue.receive(max).await
    }

    async fn delete(&self, receipts: &[String]) -> Result<(), AdapterError> {
        self.queue.delete(receipts).await
    }

    async fn retry_later(&self, receipts: &[String], after: Duration) -> Result<(), AdapterError> {
        self.queue.retry_later(receipts, after).await
    }
}
