//! Port wrappers that count calls or inject faults, for tests of the cores.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use referral_domain::features::CustomerFeatures;
use referral_domain::ports::{
    AdapterError, Claim, FeatureStore, FeatureWrite, Generated, GenerationError, GenerationRequest,
    Holder, MessageGenerator, MessageKey, MessageStore, WriteOutcome,
};
use referral_domain::template::TemplateGenerator;

/// Counts loads and saves of the wrapped store.
#[derive(Debug, Default)]
pub struct CountingStore<S> {
    pub inner: S,
    pub loads: AtomicU64,
    pub saves: AtomicU64,
}

impl<S> CountingStore<S> {
    pub fn new(inner: S) -> Self {
        CountingStore {
            inner,
            loads: AtomicU64::new(0),
            saves: AtomicU64::new(0),
        }
    }

    /// (loads, saves) since the last call, then resets.
    pub fn take(&self) -> (u64, u64) {
        (
            self.loads.swap(0, Ordering::SeqCst),
            self.saves.swap(0, Ordering::SeqCst),
        )
    }
}

impl<S: FeatureStore> FeatureStore for CountingStore<S> {
    async fn load(&self, customer_email: &str) -> Result<Option<CustomerFeatures>, AdapterError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.inner.load(customer_email).await
    }

    async fn save(&self, write: FeatureWrite) -> Result<WriteOutcome, AdapterError> {
        self.saves.fetch_add(1, Ordering::SeqCst);
        self.inner.save(write).await
    }
}

/// Fails every call for customers whose e-mail contains `poisoned`, transiently: writes of
/// their features, claims of their messages.
#[derive(Debug)]
pub struct FailingFor<S> {
    pub inner: S,
    pub poisoned: &'static str,
}

impl<M: MessageStore> MessageStore for FailingFor<M> {
    async fn claim(
        &self,
        key: &MessageKey,
        holder: &Holder,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Claim, AdapterError> {
        if key.customer_email.contains(self.poisoned) {
            return Err(AdapterError::Transient {
                operation: "UpdateItem",
                source: "throttled by the test".into(),
            });
        }
        self.inner.claim(key, holder, now, lease).await
    }

    crate::forward_message_store!(
        inner;
        keep_draft, record, release, decisions, take_message_slot, message_slot, spend_model_call,
        model_calls
    );
}

impl<S: FeatureStore> FeatureStore for FailingFor<S> {
    async fn load(&self, customer_email: &str) -> Result<Option<CustomerFeatures>, AdapterError> {
        if customer_email.contains(self.poisoned) {
            return Err(AdapterError::Transient {
                operation: "GetItem",
                source: "throttled by the test".into(),
            });
        }
        self.inner.load(customer_email).await
    }

    async fn save(&self, write: FeatureWrite) -> Result<WriteOutcome, AdapterError> {
        if write.item.customer_email.contains(self.poisoned) {
            return Err(AdapterError::Transient {
                operation: "PutItem",
                source: "throttled by the test".into(),
            });
        }
        self.inner.save(write).await
    }
}

/// Before the first save, lets a rival write `rival` to the store, so the save conflicts.
#[derive(Debug)]
pub struct RacingStore<S> {
    pub inner: S,
    pub rival: Mutex<Option<FeatureWrite>>,
}

impl<S: FeatureStore> FeatureStore for RacingStore<S> {
    async fn load(&self, customer_email: &str) -> Result<Option<CustomerFeatures>, AdapterError> {
        self.inner.load(customer_email).await
    }

    async fn save(&self, write: FeatureWrite) -> Result<WriteOutcome, AdapterError> {
        let rival = self.rival.lock().map(|mut r| r.take()).unwrap_or(None);
        if let Some(rival) = rival {
            assert_eq!(self.inner.save(rival).await?, WriteOutcome::Applied);
        }
        self.inner.save(write).await
    }
}

/// The template generator, counting its calls.
#[derive(Debug, Default)]
pub struct CountingGenerator {
    pub calls: AtomicU64,
}

impl MessageGenerator for CountingGenerator {
    async fn generate(&self, request: GenerationRequest<'_>) -> Result<Generated, GenerationError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        TemplateGenerator.generate(request).await
    }
}

/// Records the largest item (by DynamoDB's sizing rules) any save asked the wrapped store to
/// write, applied or refused.
#[derive(Debug)]
pub struct SizeWatchingStore<S> {
    pub inner: S,
    pub largest: AtomicU64,
}

impl<S> SizeWatchingStore<S> {
    pub fn new(inner: S) -> Self {
        SizeWatchingStore {
            inner,
            largest: AtomicU64::new(0),
        }
    }

    pub fn largest(&self) -> u64 {
        self.largest.load(Ordering::SeqCst)
    }
}

impl<S: FeatureStore> FeatureStore for SizeWatchingStore<S> {
    async fn load(&self, customer_email: &str) -> Result<Option<CustomerFeatures>, AdapterError> {
        self.inner.load(customer_email).await
    }

    async fn save(&self, write: FeatureWrite) -> Result<WriteOutcome, AdapterError> {
        let bytes = crate::item_bytes::stored_bytes(&write.item)
            .unwrap_or_else(|error| panic!("cannot size the item: {error}"));
        self.largest.fetch_max(bytes, Ordering::SeqCst);
        self.inner.save(write).await
    }
}
