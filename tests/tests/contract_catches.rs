//! Each contract suite fails an adapter that breaks its contract on purpose: a suite that
//! passes anything proves nothing.
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use referral_domain::features::{ArchivedEvent, CustomerFeatures};
use referral_domain::ports::{
    AdapterError, ChangeFeed, ChangeRecord, Claim, ErasureFilter, ErasureLog, ErasureMarker,
    EventArchive, FeatureStore, FeatureWrite, Holder, MessageKey, MessageSlot, MessageStore,
    OutgoingMessage, QueueMessage, SlotTaken, WorkQueue, WriteOutcome,
};
use referral_local::embedded::{
    EmbeddedArchive, EmbeddedFeatureStore, EmbeddedMessageStore, EmbeddedQueue, QueueRules,
};
use referral_tests::contract::{
    QueueSetup, change_feed_contract, erasure_log_contract, event_archive_contract,
    feature_store_contract, message_store_contract, work_queue_contract,
};

/// Runs `suite` and requires it to fail.
async fn must_fail(suite: impl Future<Output = ()> + Send + 'static, what: &str) {
    let outcome = tokio::spawn(suite).await;
    assert!(
        outcome
            .as_ref()
            .is_err_and(tokio::task::JoinError::is_panic),
        "the suite passed an adapter that {what}"
    );
}

/// An archive with one fault on purpose.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ArchiveFault {
    /// Add overwrites the bucket (a PutItem where an ADD belongs): a retried archive step
    /// would drop what an earlier one archived.
    OverwritingAdd,
    /// The erasure log keeps the first marker of a hash: a second `forget` after a customer
    /// came back would leave the marker of the first erasure, and the newer events would
    /// return.
    FirstMarkerKept,
    /// The erasure filter's generation never moves: an enricher holding the filter of before
    /// an erasure would rule the erased customer out and recreate them.
    GenerationFrozen,
}

struct BrokenArchive(EmbeddedArchive, ArchiveFault);

impl BrokenArchive {
    fn new(fault: ArchiveFault) -> Self {
        BrokenArchive(EmbeddedArchive::new(), fault)
    }
}

impl EventArchive for BrokenArchive {
    async fn bucket(
        &self,
        customer_email: &str,
        bucket: u32,
    ) -> Result<Vec<ArchivedEvent>, AdapterError> {
        self.0.bucket(customer_email, bucket).await
    }

    async fn add(
        &self,
        customer_email: &str,
        bucket: u32,
        events: &[ArchivedEvent],
    ) -> Result<(), AdapterError> {
        if self.1 == ArchiveFault::OverwritingAdd {
            let held = self.0.bucket(customer_email, bucket).await?;
            self.0.remove(customer_email, bucket, &held).await?;
        }
        self.0.add(customer_email, bucket, events).await
    }

    async fn remove(
        &self,
        customer_email: &str,
        bucket: u32,
        events: &[ArchivedEvent],
    ) -> Result<(), AdapterError> {
        self.0.remove(customer_email, bucket, events).await
    }

    async fn buckets(
        &self,
        customer_email: &str,
    ) -> Result<Vec<(u32, Vec<ArchivedEvent>)>, AdapterError> {
        self.0.buckets(customer_email).await
    }
}

impl ErasureLog for BrokenArchive {
    async fn record(&self, marker: &ErasureMarker) -> Result<(), AdapterError> {
        if self.1 == ArchiveFault::FirstMarkerKept && self.0.find(&marker.hash).await?.is_some() {
            return Ok(());
        }
        self.0.record(marker).await
    }

    async fn find(&self, hash: &str) -> Result<Option<ErasureMarker>, AdapterError> {
        self.0.find(hash).await
    }

    async fn filter_generation(&self) -> Result<u64, AdapterError> {
        if self.1 == ArchiveFault::GenerationFrozen {
            return Ok(0);
        }
        self.0.filter_generation().await
    }

    async fn filter(&self) -> Result<(u64, ErasureFilter), AdapterError> {
        self.0.filter().await
    }
}

#[tokio::test]
async fn the_archive_suite_catches_an_add_that_overwrites() {
    must_fail(
        async {
            event_archive_contract(&BrokenArchive::new(ArchiveFault::OverwritingAdd), "broken-")
                .await;
        },
        "overwrites a bucket on add",
    )
    .await;
}

#[tokio::test]
async fn the_erasure_suite_catches_a_log_that_keeps_the_first_marker() {
    must_fail(
        async {
            erasure_log_contract(
                &BrokenArchive::new(ArchiveFault::FirstMarkerKept),
                "broken-",
            )
            .await;
        },
        "keeps the first marker of a hash",
    )
    .await;
}

#[tokio::test]
async fn the_erasure_suite_catches_a_filter_generation_that_never_moves() {
    must_fail(
        async {
            erasure_log_contract(
                &BrokenArchive::new(ArchiveFault::GenerationFrozen),
                "broken-",
            )
            .await;
        },
        "never publishes a new filter generation",
    )
    .await;
}

/// A store whose writes always land: the last writer wins, whatever version it read.
struct LastWriterWins(EmbeddedFeatureStore);

impl FeatureStore for LastWriterWins {
    async fn load(&self, customer_email: &str) -> Result<Option<CustomerFeatures>, AdapterError> {
        self.0.load(customer_email).await
    }

    async fn save(&self, mut write: FeatureWrite) -> Result<WriteOutcome, AdapterError> {
        write.expected_version = self
            .0
            .load(&write.item.customer_email)
            .await?
            .map(|item| item.version);
        self.0.save(write).await
    }
}

#[tokio::test]
async fn the_feature_store_suite_catches_a_store_without_its_version_guard() {
    must_fail(
        async {
            feature_store_contract(&LastWriterWins(EmbeddedFeatureStore::new()), "broken-").await;
        },
        "ignores the version guard",
    )
    .await;
}

/// A feed that cannot go back: `resume_from` is a no-op.
struct NoResume(EmbeddedFeatureStore);

impl FeatureStore for NoResume {
    async fn load(&self, customer_email: &str) -> Result<Option<CustomerFeatures>, AdapterError> {
        self.0.load(customer_email).await
    }

    async fn save(&self, write: FeatureWrite) -> Result<WriteOutcome, AdapterError> {
        self.0.save(write).await
    }
}

impl ChangeFeed for NoResume {
    async fn poll(&self, max: usize) -> Result<Vec<ChangeRecord>, AdapterError> {
        self.0.poll(max).await
    }

    async fn resume_from(&self, _sequence_number: &str) -> Result<(), AdapterError> {
        Ok(())
    }
}

#[tokio::test]
async fn the_change_feed_suite_catches_a_feed_that_cannot_resume() {
    must_fail(
        async {
            let store = NoResume(EmbeddedFeatureStore::new());
            change_feed_contract(&store, &store, "broken-").await;
        },
        "ignores resume_from",
    )
    .await;
}

/// A store that does not tell holders apart: every claim is everyone's.
struct OneHolder(EmbeddedMessageStore);

impl MessageStore for OneHolder {
    async fn claim(
        &self,
        key: &MessageKey,
        _holder: &Holder,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Claim, AdapterError> {
        self.0.claim(key, &Holder::new("anyone"), now, lease).await
    }

    referral_tests::forward_message_store!(
        0;
        keep_draft, record, release, decisions, take_message_slot, message_slot, spend_model_call,
        model_calls
    );
}

#[tokio::test]
async fn the_message_store_suite_catches_a_store_that_ignores_holders() {
    must_fail(
        async {
            message_store_contract(&OneHolder(EmbeddedMessageStore::new()), "broken-").await;
        },
        "lets a second holder take a live claim",
    )
    .await;
}

/// A store whose message-policy state is broken in one way.
#[derive(Debug, Clone, Copy)]
enum PolicyFlaw {
    /// Every change takes the slot: no cooldown.
    NoCooldown,
    /// Every call is counted and allowed: no limit.
    NoLimit,
}

struct BrokenPolicyState(EmbeddedMessageStore, PolicyFlaw);

impl MessageStore for BrokenPolicyState {
    async fn take_message_slot(
        &self,
        customer_email: &str,
        wanted: MessageSlot,
        cooldown: Duration,
    ) -> Result<SlotTaken, AdapterError> {
        let cooldown = match self.1 {
            PolicyFlaw::NoCooldown => Duration::ZERO,
            PolicyFlaw::NoLimit => cooldown,
        };
        self.0
            .take_message_slot(customer_email, wanted, cooldown)
            .await
    }

    async fn spend_model_call(&self, day: NaiveDate, limit: u64) -> Result<bool, AdapterError> {
        let limit = match self.1 {
            PolicyFlaw::NoLimit => u64::MAX,
            PolicyFlaw::NoCooldown => limit,
        };
        self.0.spend_model_call(day, limit).await
    }

    referral_tests::forward_message_store!(
        0;
        claim, keep_draft, record, release, decisions, message_slot, model_calls
    );
}

#[tokio::test]
async fn the_message_store_suite_catches_a_slot_without_its_cooldown() {
    must_fail(
        async {
            let store = BrokenPolicyState(EmbeddedMessageStore::new(), PolicyFlaw::NoCooldown);
            message_store_contract(&store, "broken-").await;
        },
        "gives the message slot away within the cooldown",
    )
    .await;
}

#[tokio::test]
async fn the_message_store_suite_catches_a_budget_without_its_limit() {
    must_fail(
        async {
            let store = BrokenPolicyState(EmbeddedMessageStore::new(), PolicyFlaw::NoLimit);
            message_store_contract(&store, "broken-").await;
        },
        "counts model calls past the day's limit",
    )
    .await;
}

/// A queue that forgets a message the moment it hands it out.
struct DeletesOnReceive(EmbeddedQueue);

impl WorkQueue for DeletesOnReceive {
    async fn send(&self, messages: Vec<OutgoingMessage>) -> Result<(), AdapterError> {
        self.0.send(messages).await
    }

    async fn receive(&self, max: usize) -> Result<Vec<QueueMessage>, AdapterError> {
        let received = self.0.receive(max).await?;
        let receipts: Vec<String> = received.iter().map(|m| m.receipt.clone()).collect();
        self.0.delete(&receipts).await?;
        Ok(received)
    }

    async fn delete(&self, receipts: &[String]) -> Result<(), AdapterError> {
        self.0.delete(receipts).await
    }

    async fn retry_later(&self, receipts: &[String], after: Duration) -> Result<(), AdapterError> {
        self.0.retry_later(receipts, after).await
    }
}

#[tokio::test]
async fn the_work_queue_suite_catches_a_queue_that_loses_what_it_hands_out() {
    must_fail(
        async {
            let setup = QueueSetup {
                visibility_timeout: Duration::from_secs(1),
                max_receive_count: 2,
            };
            let dead_letters = Arc::new(EmbeddedQueue::new());
            let queue = DeletesOnReceive(EmbeddedQueue::with_rules(QueueRules {
                visibility_timeout: setup.visibility_timeout,
                max_receive_count: Some(setup.max_receive_count),
                dead_letters: Some(Arc::clone(&dead_letters)),
            }));
            let dlq = DeletesOnReceive(EmbeddedQueue::new());
            work_queue_contract(&queue, &dlq, setup).await;
        },
        "deletes messages on receive",
    )
    .await;
}

#[test]
fn the_retention_suite_catches_decisions_that_never_expire_or_expire_too_soon() {
    use referral_domain::ports::MessageRetention;
    use referral_tests::contract::message_retention_contract;

    for (expiring, kept, what) in [
        (
            MessageRetention::KEEP,
            MessageRetention::KEEP,
            "keeps decisions past their retention",
        ),
        (
            MessageRetention::days(1),
            MessageRetention::days(1),
            "expires decisions it was told to keep",
        ),
    ] {
        // On a thread of its own: the sweep is an async closure, whose future is not `Send`
        // for every lifetime, as `tokio::spawn` would want.
        let outcome = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            let expiring = EmbeddedMessageStore::with_retention(expiring);
            let kept = EmbeddedMessageStore::with_retention(kept);
            let sweep = async |now| {
                expiring.expire(now);
                kept.expire(now);
            };
            runtime.block_on(message_retention_contract(
                &expiring, &kept, sweep, "catches-",
            ));
        })
        .join();
        assert!(outcome.is_err(), "the suite passed an adapter that {what}");
    }
}
