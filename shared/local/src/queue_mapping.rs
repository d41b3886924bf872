//! Lambda's SQS event-source mapping, the one simulation of it: a poller receives a batch
//! (the messages stay hidden for the queue's visibility timeout), invokes the function with
//! it and deletes the messages the response does not report failed. A crashed invocation
//! deletes nothing: its messages come back after the visibility timeout with their receive
//! count raised. A reported failure comes back after the visibility timeout too, or sooner
//! where the settings ask for it ([`Retry`]). A queue with a redrive policy moves a message
//! past its `maxReceiveCount` to its dead-letter queue itself; over a queue without one the
//! mapping gives up on a failure past `max_receives` ([`QueueMappingSettings`]). Several
//! pollers may race on one queue, each a mapping of its own.
//!
//! Generic over the queue (any [`WorkQueue`]: the embedded one or SQS) and what a delivery
//! calls ([`QueueFunction`]: the enricher in this process, or its Lambda handler fed the
//! event Lambda sends).

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use referral_domain::ports::{AdapterError, QueueMessage, WorkQueue};

/// When the mapping deletes what it received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMode {
    /// After the function answered, every message not reported failed: Lambda's way.
    AfterResponse,
    /// On receipt, before the function runs: a deliberately broken mapping, for showing that
    /// the invariants catch lost events.
    OnReceipt,
}

/// How a message the function reported failed comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// When its visibility timeout runs out: Lambda's way.
    AfterVisibilityTimeout,
    /// Visible again after this delay (zero: at once).
    After(Duration),
    /// After `first` doubled once per receive so far, at most `max_doublings` times: a
    /// redelivery after the visibility timeout would come, only sooner.
    Doubling { first: Duration, max_doublings: u32 },
}

impl Retry {
    fn delay(self, receive_count: u32) -> Option<Duration> {
        match self {
            Retry::AfterVisibilityTimeout => None,
            Retry::After(delay) => Some(delay),
            Retry::Doubling {
                first,
                max_doublings,
            } => Some(first.saturating_mul(2_u32.saturating_pow(receive_count.min(max_doublings)))),
        }
    }
}

/// The mapping's settings (the template's `EnricherBatchSize`; the queue's
/// `maxReceiveCount` where the queue does not redrive itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueMappingSettings {
    /// Messages per invocation.
    pub batch_size: usize,
    /// Receive again until the batch is full or nothing is visible, as a batching window
    /// fills a batch larger than one receive; otherwise one receive is one batch.
    pub fill_batch: bool,
    /// Deliveries of a reported failure before the mapping gives up on it and deletes it.
    /// `None` where the queue's redrive policy moves it to a dead-letter queue itself.
    pub max_receives: Option<u32>,
    pub retry: Retry,
    pub ack: AckMode,
}

impl Default for QueueMappingSettings {
    fn default() -> Self {
        QueueMappingSettings {
            batch_size: 10,
            fill_batch: false,
            max_receives: None,
            retry: Retry::AfterVisibilityTimeout,
            ack: AckMode::AfterResponse,
        }
    }
}

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Invoked<O> {
    /// The function answered; `failed` holds the indices (into the batch) of the messages
    /// its response reports failed.
    Responded { failed: BTreeSet<usize>, output: O },
    /// A function error: the invocation died or timed out, or its response was lost.
    Crashed,
}

/// What a delivery calls.
pub trait QueueFunction: Sync {
    /// What the function answers besides its failures (its counters, its per-message results).
    type Output: Send;

    fn invoke(&self, batch: &[QueueMessage]) -> impl Future<Output = Invoked<Self::Output>> + Send;
}

/// One batch delivered.
#[derive(Debug)]
pub struct Polled<O> {
    pub messages: Vec<QueueMessage>,
    /// The function's answer; `None` when it crashed.
    pub output: Option<O>,
    /// Indices of the reported failures the mapping gave up on (deleted, past `max_receives`).
    pub given_up: BTreeSet<usize>,
    /// Messages deleted after the response (or on receipt).
    pub deleted: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueMappingError {
    #[error("receiving a batch")]
    Receive(#[source] AdapterError),
    /// The batch was delivered; deleting or releasing its messages failed, so they come
    /// back after the visibility timeout (as duplicates, where they were handled).
    #[error("settling a batch of {received} messages")]
    Settle {
        received: usize,
        #[source]
        source: AdapterError,
    },
}

impl QueueMappingError {
    /// The adapter's error, for callers that stop at the first one.
    pub fn into_adapter(self) -> AdapterError {
        match self {
            QueueMappingError::Receive(source) | QueueMappingError::Settle { source, .. } => source,
        }
    }
}

/// A queue and the function behind it, as Lambda's SQS mapping puts them together.
#[derive(Debug)]
pub struct QueueMapping<Q, F> {
    queue: Q,
    function: F,
    settings: QueueMappingSettings,
}

impl<Q: WorkQueue, F: QueueFunction> QueueMapping<Q, F> {
    pub fn assemble(queue: Q, function: F, settings: QueueMappingSettings) -> Self {
        QueueMapping {
            queue,
            function,
            settings,
        }
    }

    pub fn queue(&self) -> &Q {
        &self.queue
    }

    pub fn function(&self) -> &F {
        &self.function
    }

    /// Receives one batch and delivers it; `None` when nothing was visible.
    pub async fn poll_once(&self) -> Result<Option<Polled<F::Output>>, QueueMappingError> {
        let messages = self
            .receive_batch()
            .await
            .map_err(QueueMappingError::Receive)?;
        if messages.is_empty() {
            return Ok(None);
        }
        let settle_error = |source| QueueMappingError::Settle {
            received: messages.len(),
            source,
        };
        let mut polled = Polled {
            output: None,
            given_up: BTreeSet::new(),
            deleted: 0,
            messages: Vec::new(),
        };
        if self.settings.ack == AckMode::OnReceipt {
            let all: Vec<String> = messages.iter().map(|m| m.receipt.clone()).collect();
            self.delete(&all).await.map_err(settle_error)?;
            polled.deleted = all.len();
        }
        let (failed, output) = match self.function.invoke(&messages).await {
            Invoked::Crashed => {
                polled.messages = messages;
                return Ok(Some(polled));
            }
            Invoked::Responded { failed, output } => (failed, output),
        };
        polled.output = Some(output);
        if self.settings.ack == AckMode::AfterResponse {
            let mut done = Vec::with_capacity(messages.len());
            let mut again: Vec<(Duration, &str)> = Vec::new();
            for (index, message) in messages.iter().enumerate() {
                if !failed.contains(&index) {
                    done.push(message.receipt.clone());
                } else if self
                    .settings
                    .max_receives
                    .is_some_and(|max| message.receive_count >= max)
                {
                    polled.given_up.insert(index);
                    done.push(message.receipt.clone());
                } else if let Some(delay) = self.settings.retry.delay(message.receive_count) {
                    again.push((delay, &message.receipt));
                }
            }
            self.delete(&done).await.map_err(settle_error)?;
            polled.deleted = done.len();
            // One call per delay: a fixed delay releases the whole batch's failures at once.
            again.sort_by_key(|(delay, _)| *delay);
            for group in again.chunk_by(|a, b| a.0 == b.0) {
                let receipts: Vec<String> = group.iter().map(|(_, r)| (*r).to_owned()).collect();
                self.queue
                    .retry_later(&receipts, group[0].0)
                    .await
                    .map_err(settle_error)?;
            }
        }
        polled.messages = messages;
        Ok(Some(polled))
    }

    /// Up to `batch_size` messages: one receive, or as many as fill the batch.
    async fn receive_batch(&self) -> Result<Vec<QueueMessage>, AdapterError> {
        let size = self.settings.batch_size.max(1);
        let mut batch = self.queue.receive(size).await?;
        while self.settings.fill_batch && !batch.is_empty() && batch.len() < size {
            let received = self.queue.receive(size - batch.len()).await?;
            if received.is_empty() {
                break;
            }
            batch.extend(received);
        }
        Ok(batch)
    }

    async fn delete(&self, receipts: &[String]) -> Result<(), AdapterError> {
        if receipts.is_empty() {
            return Ok(());
        }
        self.queue.delete(receipts).await
    }
}
