//! The stream's event-source mapping, played by a local process over any [`ChangeFeed`]:
//! batches of records to the orchestrator in order; after a batch whose record failed,
//! delivery starts again at that record (with backoff), up to a retry budget; a record still
//! failing then is passed over and counted, where Lambda would send its position to the
//! on-failure destination.

use std::future::{Future, ready};
use std::ops::Range;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::Utc;
use referral_domain::orchestrator::{Orchestrator, StreamCounters};
use referral_domain::ports::{
    AdapterError, ChangeFeed, ChangeRecord, MessageGenerator, MessageStore,
};

use crate::embedded::{lock, not_handed_out};

/// How often a failing record is delivered again before it is passed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Deliveries after the first (the mapping's `MaximumRetryAttempts`).
    pub max_retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            backoff: Duration::from_millis(200),
        }
    }
}

/// Whatever turns the change feed into messages: the stream mapping over a feed
/// ([`StreamMapping`]), embedded or read from DynamoDB Streams.
pub trait StreamConsumer: Send + Sync {
    /// Takes up to `max` records and has them handled, counting into `counters`; returns
    /// how many records it took (0: the feed had nothing new).
    fn consume(
        &self,
        max: usize,
        counters: &mut StreamCounters,
    ) -> impl Future<Output = Result<usize, AdapterError>> + Send;
}

/// A feed in front of the orchestrator, as Lambda's stream mapping puts them together.
#[derive(Debug)]
pub struct StreamMapping<'a, F, G, M> {
    feed: F,
    orchestrator: &'a Orchestrator<G, M>,
    policy: RetryPolicy,
}

impl<'a, F: ChangeFeed, G: MessageGenerator, M: MessageStore> StreamMapping<'a, F, G, M> {
    pub fn new(feed: F, orchestrator: &'a Orchestrator<G, M>) -> Self {
        StreamMapping {
            feed,
            orchestrator,
            policy: RetryPolicy::default(),
        }
    }

    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    pub fn feed(&self) -> &F {
        &self.feed
    }
}

impl<F: ChangeFeed, G: MessageGenerator, M: MessageStore> StreamConsumer
    for StreamMapping<'_, F, G, M>
{
    async fn consume(
        &self,
        max: usize,
        counters: &mut StreamCounters,
    ) -> Result<usize, AdapterError> {
        let mut records = self.feed.poll(max).await?;
        let taken = records.len();
        let mut retries = 0;
        while !records.is_empty() {
            let batch = self.orchestrator.handle_batch(&records, Utc::now()).await;
            let Some(failed) = batch.resume_from else {
                counters.add(&batch.counters);
                break;
            };
            let position = records
                .iter()
                .position(|record| record.sequence_number == failed)
                .unwrap_or(0);
            // What came before the failed record is done; count it once.
            let mut done = StreamCounters::default();
            for outcome in &batch.outcomes[..position] {
                done.count(outcome);
            }
            counters.add(&done);
            if retries < self.policy.max_retries {
                tokio::time::sleep(self.policy.backoff.saturating_mul(1 << retries.min(8))).await;
                retries += 1;
                self.feed.resume_from(&failed).await?;
                records = self.feed.poll(max).await?;
            } else {
                tracing::error!(
                    sequence_number = %failed,
                    attempts = retries + 1,
                    "stream record failed every delivery; passed over (Lambda would send its \
                     position to the on-failure destination)"
                );
                counters.records += 1;
                counters.failed += 1;
                records.drain(..=position);
                retries = 0;
            }
        }
        Ok(taken)
    }
}

/// A feed over records already read (a failed batch read back from the stream), so that
/// they are delivered by the mapping's own rules.
#[derive(Debug, Default)]
pub struct RecordsFeed {
    state: Mutex<RecordsState>,
}

#[derive(Debug, Default)]
struct RecordsState {
    records: Vec<ChangeRecord>,
    /// The first record the latest poll handed out, and the first it did not.
    handed_out: Range<usize>,
}

impl RecordsFeed {
    pub fn new(records: Vec<ChangeRecord>) -> Self {
        RecordsFeed {
            state: Mutex::new(RecordsState {
                records,
                handed_out: 0..0,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, RecordsState> {
        lock(&self.state)
    }
}

impl ChangeFeed for RecordsFeed {
    fn poll(
        &self,
        max: usize,
    ) -> impl Future<Output = Result<Vec<ChangeRecord>, AdapterError>> + Send {
        let mut state = self.state();
        let start = state.handed_out.end;
        let end = start.saturating_add(max).min(state.records.len());
        state.handed_out = start..end;
        ready(Ok(state.records[start..end].to_vec()))
    }

    fn resume_from(
        &self,
        sequence_number: &str,
    ) -> impl Future<Output = Result<(), AdapterError>> + Send {
        let mut state = self.state();
        let range = state.handed_out.clone();
        let found = state.records[range.clone()]
            .iter()
            .position(|record| record.sequence_number == sequence_number);
        ready(match found {
            Some(offset) => {
                state.handed_out = range.start + offset..range.start + offset;
                Ok(())
            }
            None => Err(not_handed_out(sequence_number)),
        })
    }
}
