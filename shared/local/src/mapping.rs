//! Lambda's DynamoDB-stream event-source mapping, the one simulation of it: batches of a
//! shard's records in order to a function; a partial batch response checkpoints before the
//! reported record and the rest is delivered again from it; a function error (a crash)
//! delivers the batch again, split in two halves when bisection is on; each retry waits a
//! backoff that doubles; after `max_retries` further deliveries of a piece the mapping gives
//! up on it, hands it to the on-failure destination and moves on. Nothing behind a piece is
//! delivered before the piece is settled, as in a shard.
//!
//! Generic over where records come from ([`RecordSource`]: any [`ChangeFeed`], or the
//! fault suite's Lambda events read from moto's stream), what a delivery calls
//! ([`MappedFunction`]: the orchestrator in this process, or a Lambda function fed events)
//! and where given-up pieces go ([`FailureDestination`]).

use std::collections::VecDeque;
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

/// The mapping's settings (the template's `OrchestratorBatchSize`,
/// `OrchestratorMaxRetryAttempts`, `BisectBatchOnFunctionError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappingSettings {
    /// Records per read of the source, when the mapping runs until drained.
    pub batch_size: usize,
    /// Deliveries of a piece after its first (the mapping's `MaximumRetryAttempts`).
    pub max_retries: u32,
    /// Wait before a piece's first retry; doubled for each further one.
    pub backoff: Duration,
    /// A function error delivers the piece again in two halves (`BisectBatchOnFunctionError`).
    pub bisect_on_function_error: bool,
    pub give_up: GiveUp,
}

/// What goes to the on-failure destination when a piece has used its retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// Lambda's: the whole piece, from the checkpoint on; the shard moves on behind it.
    Piece,
    /// The piece's first record alone; those behind it get deliveries of their own. How
    /// `referral run` has always passed over a record, so that one bad change costs its
    /// neighbours nothing.
    FirstRecord,
}

impl Default for MappingSettings {
    fn default() -> Self {
        MappingSettings {
            batch_size: 100,
            max_retries: 3,
            backoff: Duration::from_millis(200),
            bisect_on_function_error: true,
            give_up: GiveUp::FirstRecord,
        }
    }
}

/// Where the mapping reads records: one shard's, oldest first, each handed out once.
pub trait RecordSource {
    type Record: Clone;

    /// Up to `max` records not read yet; empty when there is nothing new.
    fn read(
        &self,
        max: usize,
    ) -> impl Future<Output = Result<Vec<Self::Record>, AdapterError>> + Send;
}

impl<F: ChangeFeed> RecordSource for F {
    type Record = ChangeRecord;

    fn read(
        &self,
        max: usize,
    ) -> impl Future<Output = Result<Vec<ChangeRecord>, AdapterError>> + Send {
        self.poll(max)
    }
}

/// One delivery to the function.
#[derive(Debug)]
pub struct Delivery<'a, R> {
    /// Counts every invocation of the mapping, from 1.
    pub number: u64,
    /// Deliveries of this piece before this one.
    pub attempt: u32,
    pub records: &'a [R],
}

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// The function answered: every record handled (`failed_from: None`), or those before
    /// `failed_from` (an index into the delivery's records) handled and the rest to be
    /// delivered again.
    Handled {
        failed_from: Option<usize>,
        counters: StreamCounters,
    },
    /// A function error: the invocation died or timed out.
    Crashed,
}

/// What a delivery calls.
pub trait MappedFunction<R> {
    fn invoke(&self, delivery: Delivery<'_, R>) -> impl Future<Output = Response>;
}

/// Where the records of a piece the mapping gave up on go.
pub trait FailureDestination<R> {
    /// `records` failed `attempts` deliveries.
    fn send(&self, records: &[R], attempts: u32) -> impl Future<Output = Result<(), AdapterError>>;
}

/// What the mapping did.
#[derive(Debug, Clone, PartialEq)]
pub struct MappingReport<R> {
    pub invocations: u64,
    pub records_read: u64,
    pub partial_failures: u64,
    pub crashes: u64,
    pub bisections: u64,
    /// Records of the pieces given up on (sent to the on-failure destination).
    pub given_up: Vec<R>,
    /// The counters of every response, summed as CloudWatch sums them.
    pub counters: StreamCounters,
}

impl<R> Default for MappingReport<R> {
    fn default() -> Self {
        MappingReport {
            invocations: 0,
            records_read: 0,
            partial_failures: 0,
            crashes: 0,
            bisections: 0,
            given_up: Vec::new(),
            counters: StreamCounters::default(),
        }
    }
}

/// A source, a function behind it and an on-failure destination, as Lambda's stream
/// mapping puts them together.
#[derive(Debug)]
pub struct Mapping<S, F, D> {
    source: S,
    function: F,
    destination: D,
    settings: MappingSettings,
}

impl<S: RecordSource, F: MappedFunction<S::Record>, D: FailureDestination<S::Record>>
    Mapping<S, F, D>
{
    pub fn assemble(source: S, function: F, destination: D, settings: MappingSettings) -> Self {
        Mapping {
            source,
            function,
            destination,
            settings,
        }
    }

    pub fn source(&self) -> &S {
        &self.source
    }

    /// Reads the source until `empty_polls` reads in a row (`idle_pause` apart) found
    /// nothing, delivering each batch until it is settled.
    pub async fn run_until_drained(
        &self,
        empty_polls: u32,
        idle_pause: Duration,
    ) -> Result<MappingReport<S::Record>, AdapterError> {
        let mut report = MappingReport::default();
        let mut empty = 0;
        while empty < empty_polls.max(1) {
            if self
                .settle_batch(self.settings.batch_size, &mut report)
                .await?
                == 0
            {
                empty += 1;
                if empty < empty_polls && !idle_pause.is_zero() {
                    tokio::time::sleep(idle_pause).await;
                }
            } else {
                empty = 0;
            }
        }
        Ok(report)
    }

    /// Reads up to `max` records and delivers them until every piece is handled or given
    /// up on; returns how many records it read (0: the source had nothing new).
    pub async fn settle_batch(
        &self,
        max: usize,
        report: &mut MappingReport<S::Record>,
    ) -> Result<usize, AdapterError> {
        let read = self.source.read(max).await?;
        let taken = read.len();
        report.records_read += taken as u64;
        let mut pieces: VecDeque<(Vec<S::Record>, u32)> = VecDeque::new();
        if !read.is_empty() {
            pieces.push_back((read, 0));
        }
        while let Some((records, attempt)) = pieces.pop_front() {
            if attempt > self.settings.max_retries {
                let mut records = records;
                let behind = match self.settings.give_up {
                    GiveUp::Piece => Vec::new(),
                    GiveUp::FirstRecord => records.split_off(1.min(records.len())),
                };
                self.destination.send(&records, attempt).await?;
                report.given_up.extend(records);
                if !behind.is_empty() {
                    pieces.push_front((behind, 0));
                }
                continue;
            }
            if attempt > 0 && !self.settings.backoff.is_zero() {
                let doublings = (attempt - 1).min(8);
                tokio::time::sleep(self.settings.backoff.saturating_mul(1 << doublings)).await;
            }
            report.invocations += 1;
            let delivery = Delivery {
                number: report.invocations,
                attempt,
                records: &records,
            };
            match self.function.invoke(delivery).await {
                Response::Crashed => {
                    report.crashes += 1;
                    if self.settings.bisect_on_function_error && records.len() > 1 {
                        report.bisections += 1;
                        let (first, second) = records.split_at(records.len() / 2);
                        pieces.push_front((second.to_vec(), attempt + 1));
                        pieces.push_front((first.to_vec(), attempt + 1));
                    } else {
                        pieces.push_front((records, attempt + 1));
                    }
                }
                Response::Handled {
                    failed_from,
                    counters,
                } => {
                    report.counters.add(&counters);
                    if let Some(position) = failed_from {
                        report.partial_failures += 1;
                        // A position past the batch names no record of it: all of it failed.
                        let position = if position < records.len() {
                            position
                        } else {
                            0
                        };
                        // Checkpointed before the failed record; delivered again from it.
                        let mut records = records;
                        records.drain(..position);
                        pieces.push_front((records, attempt + 1));
                    }
                }
            }
        }
        Ok(taken)
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

/// The orchestrator called in this process, as its Lambda handler would be: each record
/// counted once, when it is settled.
#[derive(Debug)]
pub struct InProcess<'a, G, M> {
    orchestrator: &'a Orchestrator<G, M>,
}

impl<G: MessageGenerator, M: MessageStore> MappedFunction<ChangeRecord> for InProcess<'_, G, M> {
    async fn invoke(&self, delivery: Delivery<'_, ChangeRecord>) -> Response {
        let batch = self
            .orchestrator
            .handle_batch(delivery.records, Utc::now())
            .await;
        batch.counters.log_batch(delivery.records);
        let Some(failed) = batch.resume_from else {
            return Response::Handled {
                failed_from: None,
                counters: batch.counters,
            };
        };
        let position = delivery
            .records
            .iter()
            .position(|record| record.sequence_number == failed)
            .unwrap_or(0);
        // What came before the failed record is done; the rest is counted when delivered
        // again.
        let mut done = StreamCounters::default();
        for outcome in &batch.outcomes[..position] {
            done.count(outcome);
        }
        Response::Handled {
            failed_from: Some(position),
            counters: done,
        }
    }
}

/// The on-failure destination of a run on one machine: the pieces given up on are logged
/// and counted as failed.
#[derive(Debug, Default, Clone, Copy)]
pub struct PassOver;

impl FailureDestination<ChangeRecord> for PassOver {
    fn send(
        &self,
        records: &[ChangeRecord],
        attempts: u32,
    ) -> impl Future<Output = Result<(), AdapterError>> {
        let first = records
            .first()
            .map(|record| record.sequence_number.as_str());
        let last = records.last().map(|record| record.sequence_number.as_str());
        tracing::error!(
            start_sequence_number = first.unwrap_or_default(),
            end_sequence_number = last.unwrap_or_default(),
            records = records.len(),
            attempts,
            "stream records failed every delivery; passed over (Lambda would send their \
             position to the on-failure destination)"
        );
        ready(Ok(()))
    }
}

/// A feed in front of the orchestrator in this process.
pub type StreamMapping<'a, F, G, M> = Mapping<F, InProcess<'a, G, M>, PassOver>;

impl<'a, F: ChangeFeed, G: MessageGenerator, M: MessageStore> StreamMapping<'a, F, G, M> {
    /// `feed` delivered to `orchestrator` with the default settings.
    pub fn new(feed: F, orchestrator: &'a Orchestrator<G, M>) -> Self {
        Mapping::assemble(
            feed,
            InProcess { orchestrator },
            PassOver,
            MappingSettings::default(),
        )
    }

    pub fn with_settings(mut self, settings: MappingSettings) -> Self {
        self.settings = settings;
        self
    }

    pub fn feed(&self) -> &F {
        &self.source
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
        let mut report = MappingReport::default();
        let taken = self.settle_batch(max, &mut report).await?;
        counters.add(&report.counters);
        let given_up = report.given_up.len() as u64;
        counters.records += given_up;
        counters.failed += given_up;
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

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::future::{Future, ready};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use referral_domain::orchestrator::StreamCounters;
    use referral_domain::ports::AdapterError;

    use super::{
        Delivery, FailureDestination, GiveUp, MappedFunction, Mapping, MappingSettings,
        RecordSource, Response,
    };

    /// A shard of numbered records, read in order.
    struct Shard(Mutex<VecDeque<u32>>);

    impl Shard {
        fn of(records: impl IntoIterator<Item = u32>) -> Self {
            Shard(Mutex::new(records.into_iter().collect()))
        }
    }

    impl RecordSource for Shard {
        type Record = u32;

        fn read(&self, max: usize) -> impl Future<Output = Result<Vec<u32>, AdapterError>> + Send {
            let mut left = self.0.lock().unwrap();
            let take = max.min(left.len());
            ready(Ok(left.drain(..take).collect()))
        }
    }

    /// How the function treats the record it cannot handle.
    #[derive(Clone, Copy)]
    enum Fault {
        /// Reports it in a partial batch response, `times` times.
        Reports { record: u32, times: u32 },
        /// Dies on any delivery holding it.
        Crashes { record: u32 },
    }

    /// Handles every record but the faulty one; remembers each delivery.
    struct Function {
        fault: Fault,
        deliveries: Mutex<Vec<(u32, Vec<u32>)>>,
    }

    impl Function {
        fn new(fault: Fault) -> Self {
            Function {
                fault,
                deliveries: Mutex::default(),
            }
        }

        fn deliveries(&self) -> Vec<(u32, Vec<u32>)> {
            self.deliveries.lock().unwrap().clone()
        }
    }

    impl MappedFunction<u32> for Function {
        fn invoke(&self, delivery: Delivery<'_, u32>) -> impl Future<Output = Response> {
            let mut deliveries = self.deliveries.lock().unwrap();
            deliveries.push((delivery.attempt, delivery.records.to_vec()));
            let seen = |record: u32| {
                deliveries
                    .iter()
                    .filter(|(_, records)| records.contains(&record))
                    .count() as u32
            };
            let handled = |count: usize| StreamCounters {
                records: count as u64,
                created: count as u64,
                ..StreamCounters::default()
            };
            let response = match self.fault {
                Fault::Crashes { record } if delivery.records.contains(&record) => {
                    Response::Crashed
                }
                Fault::Reports { record, times } if seen(record) <= times => {
                    match delivery.records.iter().position(|r| *r == record) {
                        Some(position) => Response::Handled {
                            failed_from: Some(position),
                            counters: handled(position),
                        },
                        None => Response::Handled {
                            failed_from: None,
                            counters: handled(delivery.records.len()),
                        },
                    }
                }
                _ => Response::Handled {
                    failed_from: None,
                    counters: handled(delivery.records.len()),
                },
            };
            ready(response)
        }
    }

    /// Keeps what it is sent, with the attempts.
    #[derive(Default)]
    struct Destination(Mutex<Vec<(Vec<u32>, u32)>>);

    impl FailureDestination<u32> for Destination {
        fn send(
            &self,
            records: &[u32],
            attempts: u32,
        ) -> impl Future<Output = Result<(), AdapterError>> {
            self.0.lock().unwrap().push((records.to_vec(), attempts));
            ready(Ok(()))
        }
    }

    fn settings(max_retries: u32) -> MappingSettings {
        MappingSettings {
            batch_size: 5,
            max_retries,
            backoff: Duration::ZERO,
            bisect_on_function_error: true,
            give_up: GiveUp::Piece,
        }
    }

    #[tokio::test]
    async fn a_partial_failure_checkpoints_before_the_reported_record() {
        let mapping = Mapping::assemble(
            Shard::of(1..=7),
            Function::new(Fault::Reports {
                record: 3,
                times: 2,
            }),
            Destination::default(),
            settings(3),
        );
        let report = mapping.run_until_drained(1, Duration::ZERO).await.unwrap();
        assert_eq!(
            mapping.function.deliveries(),
            [
                (0, vec![1, 2, 3, 4, 5]),
                (1, vec![3, 4, 5]),
                (2, vec![3, 4, 5]),
                (0, vec![6, 7]),
            ]
        );
        assert_eq!(report.partial_failures, 2);
        assert_eq!(report.records_read, 7);
        assert!(report.given_up.is_empty());
        assert!(mapping.destination.0.lock().unwrap().is_empty());
        // Each record counted once: the first response counted 1 and 2, the last 3 to 5.
        assert_eq!(report.counters.records, 7);
    }

    #[tokio::test]
    async fn a_piece_failing_every_retry_goes_to_the_destination_and_the_shard_moves_on() {
        let mapping = Mapping::assemble(
            Shard::of(1..=7),
            Function::new(Fault::Reports {
                record: 4,
                times: u32::MAX,
            }),
            Destination::default(),
            settings(2),
        );
        let report = mapping.run_until_drained(1, Duration::ZERO).await.unwrap();
        assert_eq!(
            mapping.function.deliveries(),
            [
                (0, vec![1, 2, 3, 4, 5]),
                (1, vec![4, 5]),
                (2, vec![4, 5]),
                (0, vec![6, 7]),
            ]
        );
        // Lambda gives up on the piece from the checkpoint: the record and those behind it.
        assert_eq!(*mapping.destination.0.lock().unwrap(), [(vec![4, 5], 3)]);
        assert_eq!(report.given_up, [4, 5]);
        assert_eq!(report.invocations, 4);
    }

    #[tokio::test]
    async fn giving_up_on_the_first_record_alone_delivers_those_behind_it_afresh() {
        let mapping = Mapping::assemble(
            Shard::of(1..=5),
            Function::new(Fault::Reports {
                record: 2,
                times: u32::MAX,
            }),
            Destination::default(),
            MappingSettings {
                give_up: GiveUp::FirstRecord,
                ..settings(1)
            },
        );
        let report = mapping.run_until_drained(1, Duration::ZERO).await.unwrap();
        assert_eq!(
            mapping.function.deliveries(),
            [
                (0, vec![1, 2, 3, 4, 5]),
                (1, vec![2, 3, 4, 5]),
                (0, vec![3, 4, 5])
            ]
        );
        assert_eq!(*mapping.destination.0.lock().unwrap(), [(vec![2], 2)]);
        assert_eq!(report.counters.records, 4);
    }

    #[tokio::test]
    async fn a_function_error_bisects_until_the_crashing_record_is_alone() {
        let mapping = Mapping::assemble(
            Shard::of(1..=4),
            Function::new(Fault::Crashes { record: 2 }),
            Destination::default(),
            settings(3),
        );
        let report = mapping.run_until_drained(1, Duration::ZERO).await.unwrap();
        assert_eq!(
            mapping.function.deliveries(),
            [
                (0, vec![1, 2, 3, 4]),
                (1, vec![1, 2]),
                (2, vec![1]),
                (2, vec![2]),
                (3, vec![2]),
                (1, vec![3, 4]),
            ]
        );
        assert_eq!(*mapping.destination.0.lock().unwrap(), [(vec![2], 4)]);
        assert_eq!((report.crashes, report.bisections), (4, 2));
        assert_eq!(report.counters.records, 3);
    }

    #[tokio::test]
    async fn without_bisection_a_crashing_batch_is_delivered_whole_then_given_up() {
        let mapping = Mapping::assemble(
            Shard::of(1..=3),
            Function::new(Fault::Crashes { record: 2 }),
            Destination::default(),
            MappingSettings {
                bisect_on_function_error: false,
                ..settings(1)
            },
        );
        let report = mapping.run_until_drained(1, Duration::ZERO).await.unwrap();
        assert_eq!(
            mapping.function.deliveries(),
            [(0, vec![1, 2, 3]), (1, vec![1, 2, 3])]
        );
        assert_eq!(report.given_up, [1, 2, 3]);
        assert_eq!(report.bisections, 0);
    }

    #[tokio::test]
    async fn retries_wait_a_backoff_that_doubles() {
        let mapping = Mapping::assemble(
            Shard::of([1]),
            Function::new(Fault::Reports {
                record: 1,
                times: 3,
            }),
            Destination::default(),
            MappingSettings {
                backoff: Duration::from_millis(20),
                ..settings(3)
            },
        );
        let started = Instant::now();
        let report = mapping.run_until_drained(1, Duration::ZERO).await.unwrap();
        // 20 + 40 + 80 ms before the three retries.
        assert!(
            started.elapsed() >= Duration::from_millis(140),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(report.invocations, 4);
        assert!(report.given_up.is_empty());
    }

    #[tokio::test]
    async fn a_position_past_the_batch_fails_all_of_it() {
        struct OutOfRange(Mutex<u32>);
        impl MappedFunction<u32> for OutOfRange {
            fn invoke(&self, delivery: Delivery<'_, u32>) -> impl Future<Output = Response> {
                let mut calls = self.0.lock().unwrap();
                *calls += 1;
                ready(Response::Handled {
                    failed_from: (*calls == 1).then_some(delivery.records.len() + 3),
                    counters: StreamCounters::default(),
                })
            }
        }
        let mapping = Mapping::assemble(
            Shard::of(1..=2),
            OutOfRange(Mutex::new(0)),
            Destination::default(),
            settings(3),
        );
        let report = mapping.run_until_drained(1, Duration::ZERO).await.unwrap();
        assert_eq!((report.invocations, report.partial_failures), (2, 1));
        assert!(report.given_up.is_empty());
    }
}
