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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use referral_domain::ports::OutgoingMessage;

    use super::*;
    use crate::embedded::{EmbeddedQueue, QueueRules};

    const LEASE: Duration = Duration::from_millis(30);

    /// Answers each delivery with the next scripted answer (`None`: a crash); reports failed
    /// the messages whose body starts with `fail`. Records every batch's bodies.
    #[derive(Debug, Default)]
    struct Scripted {
        crashes: Mutex<Vec<bool>>,
        deliveries: Mutex<Vec<Vec<String>>>,
    }

    impl Scripted {
        fn crashing_first(crashes: usize) -> Self {
            Scripted {
                crashes: Mutex::new(vec![true; crashes]),
                ..Scripted::default()
            }
        }

        fn deliveries(&self) -> Vec<Vec<String>> {
            self.deliveries
                .lock()
                .map(|d| d.clone())
                .unwrap_or_default()
        }
    }

    impl QueueFunction for Scripted {
        type Output = usize;

        async fn invoke(&self, batch: &[QueueMessage]) -> Invoked<usize> {
            if let Ok(mut deliveries) = self.deliveries.lock() {
                deliveries.push(batch.iter().map(|m| m.body.clone()).collect());
            }
            let crash = self
                .crashes
                .lock()
                .map(|mut crashes| crashes.pop().unwrap_or(false))
                .unwrap_or(false);
            if crash {
                return Invoked::Crashed;
            }
            let failed = batch
                .iter()
                .enumerate()
                .filter(|(_, message)| message.body.starts_with("fail"))
                .map(|(index, _)| index)
                .collect();
            Invoked::Responded {
                failed,
                output: batch.len(),
            }
        }
    }

    async fn queue_of(bodies: &[&str], rules: QueueRules) -> EmbeddedQueue {
        let queue = EmbeddedQueue::with_rules(rules);
        let messages = bodies
            .iter()
            .map(|body| OutgoingMessage {
                body: (*body).to_owned(),
                attributes: Default::default(),
            })
            .collect();
        queue.send(messages).await.unwrap_or_else(|e| panic!("{e}"));
        queue
    }

    fn short_lease() -> QueueRules {
        QueueRules {
            visibility_timeout: LEASE,
            ..QueueRules::default()
        }
    }

    async fn poll<F: QueueFunction>(
        mapping: &QueueMapping<&EmbeddedQueue, F>,
    ) -> Polled<F::Output> {
        match mapping.poll_once().await {
            Ok(Some(polled)) => polled,
            Ok(None) => panic!("nothing was delivered"),
            Err(error) => panic!("{error}"),
        }
    }

    /// Whether a poll found nothing visible (and did not fail).
    async fn nothing_delivered<F: QueueFunction>(
        mapping: &QueueMapping<&EmbeddedQueue, F>,
    ) -> bool {
        matches!(mapping.poll_once().await, Ok(None))
    }

    #[tokio::test]
    async fn deletes_what_the_response_does_not_report_failed() {
        let queue = queue_of(&["ok 1", "fail 2", "ok 3"], short_lease()).await;
        let mapping =
            QueueMapping::assemble(&queue, Scripted::default(), QueueMappingSettings::default());
        let polled = poll(&mapping).await;
        assert_eq!(polled.output, Some(3));
        assert_eq!(polled.deleted, 2);
        assert!(polled.given_up.is_empty());
        // The failure is in flight until its lease runs out, then comes back alone.
        assert_eq!(queue.depth(), 1);
        assert!(nothing_delivered(&mapping).await);
        tokio::time::sleep(LEASE * 2).await;
        let again = poll(&mapping).await;
        assert_eq!(again.messages.len(), 1);
        assert_eq!(again.messages[0].body, "fail 2");
        assert_eq!(again.messages[0].receive_count, 2);
    }

    #[tokio::test]
    async fn a_crash_deletes_nothing_and_the_batch_comes_back() {
        let queue = queue_of(&["ok 1", "ok 2"], short_lease()).await;
        let mapping = QueueMapping::assemble(
            &queue,
            Scripted::crashing_first(1),
            QueueMappingSettings::default(),
        );
        let crashed = poll(&mapping).await;
        assert_eq!(crashed.output, None);
        assert_eq!(crashed.deleted, 0);
        assert_eq!(queue.depth(), 2);
        tokio::time::sleep(LEASE * 2).await;
        let again = poll(&mapping).await;
        assert_eq!(again.deleted, 2);
        assert!(again.messages.iter().all(|m| m.receive_count == 2));
        assert_eq!(queue.depth(), 0);
    }

    #[tokio::test]
    async fn acknowledging_on_receipt_loses_a_crashed_batch() {
        let queue = queue_of(&["ok 1", "ok 2"], short_lease()).await;
        let mapping = QueueMapping::assemble(
            &queue,
            Scripted::crashing_first(1),
            QueueMappingSettings {
                ack: AckMode::OnReceipt,
                ..QueueMappingSettings::default()
            },
        );
        let crashed = poll(&mapping).await;
        assert_eq!((crashed.output, crashed.deleted), (None, 2));
        assert_eq!(queue.depth(), 0);
    }

    #[tokio::test]
    async fn gives_up_on_a_failure_past_max_receives_where_the_queue_does_not() {
        let queue = queue_of(&["fail 1", "ok 2"], QueueRules::default()).await;
        let function = Scripted::default();
        let mapping = QueueMapping::assemble(
            &queue,
            function,
            QueueMappingSettings {
                max_receives: Some(3),
                retry: Retry::After(Duration::ZERO),
                ..QueueMappingSettings::default()
            },
        );
        for receive in 1..=3 {
            let polled = poll(&mapping).await;
            let given_up = polled.given_up.iter().copied().collect::<Vec<_>>();
            assert_eq!(given_up, if receive == 3 { vec![0] } else { vec![] });
        }
        assert_eq!(queue.depth(), 0);
        assert_eq!(
            mapping.function().deliveries(),
            vec![
                vec!["fail 1".to_owned(), "ok 2".to_owned()],
                vec!["fail 1".to_owned()],
                vec!["fail 1".to_owned()],
            ]
        );
    }

    #[tokio::test]
    async fn a_queue_with_a_redrive_policy_dead_letters_by_itself() {
        let dead_letters = Arc::new(EmbeddedQueue::new());
        let queue = queue_of(
            &["fail 1"],
            QueueRules {
                max_receive_count: Some(2),
                dead_letters: Some(Arc::clone(&dead_letters)),
                ..QueueRules::default()
            },
        )
        .await;
        let mapping = QueueMapping::assemble(
            &queue,
            Scripted::default(),
            QueueMappingSettings {
                retry: Retry::After(Duration::ZERO),
                ..QueueMappingSettings::default()
            },
        );
        poll(&mapping).await;
        poll(&mapping).await;
        assert!(nothing_delivered(&mapping).await);
        assert_eq!(dead_letters.depth(), 1);
        assert_eq!(queue.depth(), 0);
    }

    #[tokio::test]
    async fn fills_a_batch_larger_than_one_receive_only_when_asked() {
        let bodies: Vec<String> = (0..30).map(|n| format!("ok {n}")).collect();
        let bodies: Vec<&str> = bodies.iter().map(String::as_str).collect();
        let queue = queue_of(&bodies, QueueRules::default()).await;
        let settings = QueueMappingSettings {
            batch_size: 25,
            ..QueueMappingSettings::default()
        };
        let one_receive = QueueMapping::assemble(&queue, Scripted::default(), settings);
        assert_eq!(poll(&one_receive).await.messages.len(), 10);
        let filling = QueueMapping::assemble(
            &queue,
            Scripted::default(),
            QueueMappingSettings {
                fill_batch: true,
                ..settings
            },
        );
        assert_eq!(poll(&filling).await.messages.len(), 20);
    }

    #[test]
    fn a_doubling_retry_doubles_per_receive_up_to_its_cap() {
        let retry = Retry::Doubling {
            first: Duration::from_secs(1),
            max_doublings: 6,
        };
        let delays: Vec<u64> = [1, 2, 6, 7, 40]
            .into_iter()
            .filter_map(|count| retry.delay(count))
            .map(|delay| delay.as_secs())
            .collect();
        assert_eq!(delays, vec![2, 4, 64, 64, 64]);
        assert_eq!(Retry::AfterVisibilityTimeout.delay(3), None);
    }
}
