//! Crashes at the adapter boundary: an invocation killed at a precise point, the way a
//! timeout or an out-of-memory kill ends a Lambda invocation. The wrappers count every write
//! (feature items and archive buckets) and, at the armed one, do the real call first (the
//! write lands) or not, and then fire the invocation's [`Crash`]; the runner drops the
//! handler's future there, so nothing after that point happens: no further writes, no
//! response, no acknowledgement.

use std::future::{Future, pending};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use referral_domain::features::{ArchivedEvent, CustomerFeatures};
use referral_domain::ports::{
    AdapterError, Claim, Decision, ErasureFilter, ErasureLog, ErasureMarker, EventArchive,
    FeatureStore, FeatureWrite, Holder, MessageKey, MessageStore, Recorded, WriteOutcome,
};
use tokio::sync::Notify;

/// The kill switch of one invocation.
#[derive(Debug, Default)]
pub struct Crash {
    fired: AtomicBool,
    notify: Notify,
}

impl Crash {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    pub fn fire(&self) {
        self.fired.store(true, Ordering::SeqCst);
        // A stored permit: the runner may not be waiting yet.
        self.notify.notify_one();
    }

    pub fn has_fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    /// Runs `invocation` to its end, or until the crash fires; `None` when it crashed (its
    /// future is dropped, as a killed process drops its work in flight).
    pub async fn run<T>(&self, invocation: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            biased;
            () = self.notify.notified() => None,
            output = invocation => Some(output),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where an invocation dies relative to the write that trips it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WritePoint {
    /// Before the write is sent.
    Before,
    /// Right after the write landed; writes still in flight are cut off.
    After,
}

#[derive(Debug)]
struct Armed {
    point: WritePoint,
    /// The write that trips it, counted from 0 over every write of the invocation: feature
    /// items and archive buckets alike.
    nth: usize,
    crash: Arc<Crash>,
}

/// The kill switch of one enricher execution environment's writes, shared by its feature
/// store and its archive, so that an invocation can be killed between any two of them.
#[derive(Debug, Default)]
pub struct Tripwire {
    armed: Mutex<Option<Armed>>,
    /// Writes seen since the tripwire was armed.
    writes: Mutex<usize>,
}

impl Tripwire {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// `crash` fires at the `nth` write from now (before or after it lands), and that write
    /// never returns.
    pub fn arm(&self, point: WritePoint, nth: usize, crash: Arc<Crash>) {
        *lock(&self.writes) = 0;
        *lock(&self.armed) = Some(Armed { point, nth, crash });
    }

    pub fn disarm(&self) {
        *lock(&self.armed) = None;
    }

    /// Writes made since the last `arm`.
    pub fn writes(&self) -> usize {
        *lock(&self.writes)
    }

    /// Runs one write through the tripwire. The write is only started once the tripwire has
    /// let it through: an embedded adapter does its work when called, not when awaited, so
    /// calling it first would land a write meant to die before it.
    async fn write<T, F: Future<Output = T>>(&self, write: impl FnOnce() -> F) -> T {
        let tripped = {
            let mut writes = lock(&self.writes);
            let nth = *writes;
            *writes += 1;
            let mut armed = lock(&self.armed);
            match armed.as_ref() {
                Some(wire) if wire.nth == nth => armed.take(),
                _ => None,
            }
        };
        match tripped {
            Some(Armed {
                point: WritePoint::Before,
                crash,
                ..
            }) => {
                crash.fire();
                pending().await
            }
            Some(Armed { crash, .. }) => {
                let _landed = write().await;
                crash.fire();
                pending().await
            }
            None => write().await,
        }
    }
}

/// A feature store whose writes go through a [`Tripwire`].
#[derive(Debug)]
pub struct CrashingStore<S> {
    inner: S,
    tripwire: Arc<Tripwire>,
}

impl<S> CrashingStore<S> {
    pub fn new(inner: S) -> Self {
        Self::with_tripwire(inner, Tripwire::new())
    }

    pub fn with_tripwire(inner: S, tripwire: Arc<Tripwire>) -> Self {
        CrashingStore { inner, tripwire }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    pub fn tripwire(&self) -> &Arc<Tripwire> {
        &self.tripwire
    }

    /// At the next write `crash` fires (before or after it lands) and the write never
    /// returns.
    pub fn arm(&self, point: WritePoint, crash: Arc<Crash>) {
        self.tripwire.arm(point, 0, crash);
    }

    pub fn disarm(&self) {
        self.tripwire.disarm();
    }
}

impl<S: FeatureStore> FeatureStore for CrashingStore<S> {
    async fn load(&self, customer_email: &str) -> Result<Option<CustomerFeatures>, AdapterError> {
        self.inner.load(customer_email).await
    }

    async fn save(&self, write: FeatureWrite) -> Result<WriteOutcome, AdapterError> {
        self.tripwire.write(|| self.inner.save(write)).await
    }
}

/// An event archive whose writes go through the same [`Tripwire`] as its store's.
#[derive(Debug)]
pub struct CrashingArchive<A> {
    inner: A,
    tripwire: Arc<Tripwire>,
}

impl<A> CrashingArchive<A> {
    pub fn new(inner: A, tripwire: Arc<Tripwire>) -> Self {
        CrashingArchive { inner, tripwire }
    }

    pub fn inner(&self) -> &A {
        &self.inner
    }
}

impl<A: EventArchive> EventArchive for CrashingArchive<A> {
    async fn bucket(
        &self,
        customer_email: &str,
        bucket: u32,
    ) -> Result<Vec<ArchivedEvent>, AdapterError> {
        self.inner.bucket(customer_email, bucket).await
    }

    async fn add(
        &self,
        customer_email: &str,
        bucket: u32,
        events: &[ArchivedEvent],
    ) -> Result<(), AdapterError> {
        self.tripwire
            .write(|| self.inner.add(customer_email, bucket, events))
            .await
    }

    async fn remove(
        &self,
        customer_email: &str,
        bucket: u32,
        events: &[ArchivedEvent],
    ) -> Result<(), AdapterError> {
        self.tripwire
            .write(|| self.inner.remove(customer_email, bucket, events))
            .await
    }

    async fn buckets(
        &self,
        customer_email: &str,
    ) -> Result<Vec<(u32, Vec<ArchivedEvent>)>, AdapterError> {
        self.inner.buckets(customer_email).await
    }
}

/// Where the message store of an orchestrator invocation fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageFault {
    /// The claim lands, then the invocation dies, before the model is called.
    CrashAfterClaim,
    /// The model answered; the message's final write fails (throttled past the SDK's
    /// retries) and the record is left unfinished: the orchestrator keeps the draft in the
    /// claim and releases it, and the retry records the draft without asking the model.
    /// This is what "a crash after the Bedrock call" means here; a process killed during
    /// that write itself keeps no draft, and its retry asks the model again.
    FailFinalWrite,
    /// The final write lands, then the invocation dies before it answers.
    CrashAfterFinalWrite,
}

/// A message store with one armed fault at a time; it logs what it injected on which change.
#[derive(Debug)]
pub struct FaultyMessages<M> {
    inner: M,
    armed: Mutex<Option<(MessageFault, Arc<Crash>)>>,
    injected: Mutex<Vec<(MessageFault, MessageKey)>>,
}

impl<M> FaultyMessages<M> {
    pub fn new(inner: M) -> Self {
        FaultyMessages {
            inner,
            armed: Mutex::new(None),
            injected: Mutex::new(Vec::new()),
        }
    }

    pub fn inner(&self) -> &M {
        &self.inner
    }

    /// The fault hits the next call it applies to, in the invocation `crash` kills.
    pub fn arm(&self, fault: MessageFault, crash: Arc<Crash>) {
        *lock(&self.armed) = Some((fault, crash));
    }

    pub fn disarm(&self) {
        *lock(&self.armed) = None;
    }

    /// Every fault injected so far, with the change it hit.
    pub fn injected(&self) -> Vec<(MessageFault, MessageKey)> {
        lock(&self.injected).clone()
    }

    /// Takes the armed fault when it is `fault`.
    fn take(&self, fault: MessageFault, key: &MessageKey) -> Option<Arc<Crash>> {
        let mut armed = lock(&self.armed);
        match armed.as_ref() {
            Some((armed_fault, _)) if *armed_fault == fault => {
                lock(&self.injected).push((fault, key.clone()));
                armed.take().map(|(_, crash)| crash)
            }
            _ => None,
        }
    }
}

/// The error a throttled write surfaces with once the SDK's retries are spent.
fn throttled(operation: &'static str) -> AdapterError {
    AdapterError::Transient {
        operation,
        source: "ProvisionedThroughputExceededException (injected by the fault suite)".into(),
    }
}

impl<M: MessageStore> MessageStore for FaultyMessages<M> {
    async fn claim(
        &self,
        key: &MessageKey,
        holder: &Holder,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Claim, AdapterError> {
        let claim = self.inner.claim(key, holder, now, lease).await?;
        if matches!(claim, Claim::Acquired { .. }) {
            if let Some(crash) = self.take(MessageFault::CrashAfterClaim, key) {
                crash.fire();
                return pending().await;
            }
        }
        Ok(claim)
    }

    async fn record(
        &self,
        decision: Decision,
        holder: &Holder,
        now: DateTime<Utc>,
    ) -> Result<Recorded, AdapterError> {
        let key = decision.key();
        if self.take(MessageFault::FailFinalWrite, &key).is_some() {
            return Err(throttled("PutItem"));
        }
        let recorded = self.inner.record(decision, holder, now).await?;
        if let Some(crash) = self.take(MessageFault::CrashAfterFinalWrite, &key) {
            crash.fire();
            return pending().await;
        }
        Ok(recorded)
    }

    crate::forward_message_store!(
        inner;
        keep_draft, release, decisions, take_message_slot, message_slot, spend_model_call,
        model_calls
    );
}

impl<A: ErasureLog> ErasureLog for CrashingArchive<A> {
    async fn record(&self, marker: &ErasureMarker) -> Result<(), AdapterError> {
        self.inner.record(marker).await
    }

    async fn find(&self, hash: &str) -> Result<Option<ErasureMarker>, AdapterError> {
        self.inner.find(hash).await
    }

    async fn filter_generation(&self) -> Result<u64, AdapterError> {
        self.inner.filter_generation().await
    }

    async fn filter(&self) -> Result<(u64, ErasureFilter), AdapterError> {
        self.inner.filter().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fired_crash_drops_the_invocation_and_an_unfired_one_lets_it_finish() {
        let crash = Crash::new();
        assert_eq!(crash.run(async { 7 }).await, Some(7));
        let killer = Arc::clone(&crash);
        let crashed = crash
            .run(async move {
                killer.fire();
                pending::<u32>().await
            })
            .await;
        assert_eq!(crashed, None);
        assert!(crash.has_fired());
    }
}
