//! The SQS mapping of the fault suite: `referral_local::queue_mapping`'s engine over a real
//! queue (moto's, or the embedded one), invoking the enricher's handler with the event Lambda
//! sends, crashed where a [`CrashPlan`] says. Several pollers may race on one queue, each
//! with its own handler (its own execution environment and cache).

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use fastrand::Rng;
use referral_aws::sqs::SqsQueue;
use referral_aws_local::sqs_event;
use referral_domain::ports::{ErasureLog, EventArchive, FeatureStore, QueueMessage, WorkQueue};
use referral_enricher::{EnricherHandler, HandlerCounters};
use referral_local::embedded::EmbeddedQueue;
pub use referral_local::queue_mapping::AckMode;
use referral_local::queue_mapping::{
    Invoked, QueueFunction, QueueMapping, QueueMappingError, QueueMappingSettings,
};

use super::crash::{Crash, CrashingArchive, CrashingStore, WritePoint};

/// Messages a queue holds, visible or in flight.
pub trait QueueDepth {
    fn depth(&self) -> impl Future<Output = u64> + Send;
}

impl QueueDepth for SqsQueue {
    async fn depth(&self) -> u64 {
        let (visible, in_flight) = crate::emulator::queue_depth(self.client(), self.url()).await;
        visible + in_flight
    }
}

impl QueueDepth for EmbeddedQueue {
    async fn depth(&self) -> u64 {
        EmbeddedQueue::depth(self) as u64
    }
}

/// Where an enricher invocation dies, if it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnricherCrash {
    /// At its first DynamoDB write, before it is sent: nothing of the batch is written.
    BeforeFirstWrite,
    /// Right after its first DynamoDB write lands; writes still in flight are cut off.
    AfterFirstWrite,
    /// After every write, before Lambda deletes the messages (the function timed out
    /// answering, or its response was lost).
    BeforeAcknowledgement,
    /// At the invocation's `nth` write (from 0, feature items and archive buckets alike),
    /// before or after it lands: with every `nth`, a kill between any two writes.
    AtWrite { nth: usize, point: WritePoint },
}

/// The enricher handler the mappings drive: its store and archive writes can be crashed.
pub type CrashableHandler<S, A, D> = EnricherHandler<CrashingStore<S>, CrashingArchive<A>, D>;

/// Which invocations crash: a seeded share of them, taking the crash points in turn.
#[derive(Debug)]
pub struct CrashPlan {
    rng: Mutex<Rng>,
    rate: f64,
    points: &'static [EnricherCrash],
    planned: AtomicU64,
}

impl CrashPlan {
    /// `rate` of the invocations crash, between the DynamoDB write and the SQS
    /// acknowledgement: after the first write lands, or after all of them.
    pub fn new(seed: u64, rate: f64) -> Self {
        Self::at(
            seed,
            rate,
            &[
                EnricherCrash::AfterFirstWrite,
                EnricherCrash::BeforeAcknowledgement,
            ],
        )
    }

    /// `rate` of the invocations crash, at `points` in turn.
    pub fn at(seed: u64, rate: f64, points: &'static [EnricherCrash]) -> Self {
        CrashPlan {
            rng: Mutex::new(Rng::with_seed(seed)),
            rate,
            points,
            planned: AtomicU64::new(0),
        }
    }

    pub fn none() -> Self {
        Self::new(0, 0.0)
    }

    fn next(&self) -> Option<EnricherCrash> {
        let hit = self
            .rng
            .lock()
            .map(|mut rng| rng.f64() < self.rate)
            .unwrap_or(false);
        if !hit || self.points.is_empty() {
            return None;
        }
        let turn = self.planned.fetch_add(1, Ordering::SeqCst) as usize;
        Some(self.points[turn % self.points.len()])
    }
}

/// What the pollers did, summed.
#[derive(Debug, Default)]
pub struct SqsTally {
    pub invocations: AtomicU64,
    pub messages_delivered: AtomicU64,
    pub redeliveries: AtomicU64,
    /// Invocations killed at a write (before or after it landed).
    pub crashed_at_write: AtomicU64,
    /// Invocations killed after every write, before the acknowledgement.
    pub crashed_before_ack: AtomicU64,
    pub reported_failed: AtomicU64,
    /// Receives that failed (the emulator too slow to answer); polled again.
    pub receive_failures: AtomicU64,
    pub counters: Mutex<HandlerCounters>,
}

impl SqsTally {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::SeqCst)
    }

    pub fn crashes(&self) -> u64 {
        Self::get(&self.crashed_at_write) + Self::get(&self.crashed_before_ack)
    }
}

/// The mapping of one queue.
#[derive(Debug)]
pub struct SqsMapping<'a, Q> {
    pub queue: &'a Q,
    pub queue_arn: &'a str,
    pub ack: AckMode,
    /// Wait between empty receives while messages are still in flight.
    pub idle_pause: Duration,
}

impl<Q: WorkQueue + QueueDepth + Sync> SqsMapping<'_, Q> {
    /// One poller: invokes `handler` until the queue holds nothing, visible or in flight.
    pub async fn poll_until_drained<S: FeatureStore, A: EventArchive + ErasureLog, D: WorkQueue>(
        &self,
        handler: &CrashableHandler<S, A, D>,
        plan: &CrashPlan,
        tally: &SqsTally,
    ) {
        self.poll_until_fed_and_drained(handler, plan, tally, &AtomicBool::new(true))
            .await;
    }

    /// [`Self::poll_until_drained`] while the queue is still being filled: an empty queue
    /// ends the poller only once `fed` is set.
    pub async fn poll_until_fed_and_drained<
        S: FeatureStore,
        A: EventArchive + ErasureLog,
        D: WorkQueue,
    >(
        &self,
        handler: &CrashableHandler<S, A, D>,
        plan: &CrashPlan,
        tally: &SqsTally,
        fed: &AtomicBool,
    ) {
        loop {
            if self.invoke_once(handler, plan, tally).await == 0 {
                if fed.load(Ordering::SeqCst) && self.queue.depth().await == 0 {
                    return;
                }
                tokio::time::sleep(self.idle_pause).await;
            }
        }
    }

    /// Receives one batch and invokes the handler with it; the number of messages received.
    pub async fn invoke_once<S: FeatureStore, A: EventArchive + ErasureLog, D: WorkQueue>(
        &self,
        handler: &CrashableHandler<S, A, D>,
        plan: &CrashPlan,
        tally: &SqsTally,
    ) -> usize {
        let mapping = QueueMapping::assemble(
            self.queue,
            CrashingInvocation {
                handler,
                plan,
                tally,
                queue_arn: self.queue_arn,
            },
            QueueMappingSettings {
                ack: self.ack,
                ..QueueMappingSettings::default()
            },
        );
        match mapping.poll_once().await {
            Ok(polled) => polled.map_or(0, |polled| polled.messages.len()),
            // Lambda's poller polls again; a busy emulator can be slow to answer.
            Err(QueueMappingError::Receive(error)) => {
                eprintln!("poller: receive failed ({error}); polling again");
                tally.receive_failures.fetch_add(1, Ordering::SeqCst);
                0
            }
            // A refused delete (the receipt's lease ran out and another poller holds the
            // message) leaves the message to be received again: harmless, as in Lambda.
            Err(QueueMappingError::Settle { received, source }) => {
                eprintln!("poller: delete refused ({source}); the messages come back");
                received
            }
        }
    }
}

/// One invocation of the enricher's handler with the event Lambda sends, crashed as the
/// plan says, and tallied.
struct CrashingInvocation<'a, S, A, D> {
    handler: &'a CrashableHandler<S, A, D>,
    plan: &'a CrashPlan,
    tally: &'a SqsTally,
    queue_arn: &'a str,
}

impl<S: FeatureStore, A: EventArchive + ErasureLog, D: WorkQueue> QueueFunction
    for CrashingInvocation<'_, S, A, D>
{
    type Output = ();

    async fn invoke(&self, batch: &[QueueMessage]) -> Invoked<()> {
        let tally = self.tally;
        tally.invocations.fetch_add(1, Ordering::SeqCst);
        tally
            .messages_delivered
            .fetch_add(batch.len() as u64, Ordering::SeqCst);
        let again = batch.iter().filter(|m| m.receive_count > 1).count() as u64;
        tally.redeliveries.fetch_add(again, Ordering::SeqCst);

        let crash = Crash::new();
        let planned = self.plan.next();
        let tripwire = self.handler.enricher().store().tripwire();
        match planned {
            Some(EnricherCrash::BeforeFirstWrite) => {
                tripwire.arm(WritePoint::Before, 0, crash.clone());
            }
            Some(EnricherCrash::AfterFirstWrite) => {
                tripwire.arm(WritePoint::After, 0, crash.clone());
            }
            Some(EnricherCrash::AtWrite { nth, point }) => tripwire.arm(point, nth, crash.clone()),
            _ => {}
        }
        let event = sqs_event(batch, self.queue_arn);
        let outcome = crash.run(self.handler.handle(&event, Utc::now())).await;
        tripwire.disarm();
        let outcome = match (outcome, planned) {
            (None, _) => {
                tally.crashed_at_write.fetch_add(1, Ordering::SeqCst);
                return Invoked::Crashed;
            }
            (Some(_), Some(EnricherCrash::BeforeAcknowledgement)) => {
                tally.crashed_before_ack.fetch_add(1, Ordering::SeqCst);
                return Invoked::Crashed;
            }
            // Armed but no write happened (every message a duplicate or refused): the
            // invocation lived.
            (Some(outcome), _) => outcome,
        };
        if let Ok(mut counters) = tally.counters.lock() {
            counters.enrich.add(&outcome.counters.enrich);
            counters.dead_lettered += outcome.counters.dead_lettered;
            counters.dead_letter_failures += outcome.counters.dead_letter_failures;
            counters.batch_item_failures += outcome.counters.batch_item_failures;
        }
        let failed: BTreeSet<usize> = outcome
            .response
            .batch_item_failures
            .iter()
            .filter_map(|failure| {
                batch
                    .iter()
                    .position(|message| message.message_id == failure.item_identifier)
            })
            .collect();
        tally.reported_failed.fetch_add(
            outcome.response.batch_item_failures.len() as u64,
            Ordering::SeqCst,
        );
        Invoked::Responded { failed, output: () }
    }
}
