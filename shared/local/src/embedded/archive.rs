//! The event archive in memory: buckets as sets, with the same union-and-remove contract as
//! the DynamoDB table's.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::{Future, ready};
use std::sync::Mutex;

use referral_domain::features::ArchivedEvent;
use referral_domain::ports::{
    AdapterError, ErasureFilter, ErasureLog, ErasureMarker, EventArchive,
};

use super::lock;

type Buckets = BTreeMap<(String, u32), BTreeSet<ArchivedEvent>>;

#[derive(Debug, Default)]
pub struct EmbeddedArchive {
    buckets: Mutex<Buckets>,
    /// Erasure markers by hash: kept beside the buckets, as the DynamoDB adapter keeps them in
    /// the archive table.
    erasures: Mutex<HashMap<String, ErasureMarker>>,
    /// The filter of the markers' hashes and its generation.
    erasure_filter: Mutex<(u64, ErasureFilter)>,
}

impl EmbeddedArchive {
    pub fn new() -> Self {
        Self::default()
    }

    /// Entries held, over every customer and bucket.
    pub fn entries(&self) -> usize {
        lock(&self.buckets).values().map(BTreeSet::len).sum()
    }
}

impl EventArchive for EmbeddedArchive {
    fn bucket(
        &self,
        customer_email: &str,
        bucket: u32,
    ) -> impl Future<Output = Result<Vec<ArchivedEvent>, AdapterError>> + Send {
        let buckets = lock(&self.buckets);
        let held = buckets
            .get(&(customer_email.to_owned(), bucket))
            .map(|events| events.iter().copied().collect())
            .unwrap_or_default();
        ready(Ok(held))
    }

    fn add(
        &self,
        customer_email: &str,
        bucket: u32,
        events: &[ArchivedEvent],
    ) -> impl Future<Output = Result<(), AdapterError>> + Send {
        lock(&self.buckets)
            .entry((customer_email.to_owned(), bucket))
            .or_default()
            .extend(events.iter().copied());
        ready(Ok(()))
    }

    fn remove(
        &self,
        customer_email: &str,
        bucket: u32,
        events: &[ArchivedEvent],
    ) -> impl Future<Output = Result<(), AdapterError>> + Send {
        let mut buckets = lock(&self.buckets);
        let key = (customer_email.to_owned(), bucket);
        if let Some(held) = buckets.get_mut(&key) {
            events.iter().for_each(|event| {
                held.remove(event);
            });
            // DynamoDB drops a set attribute left empty; the bucket then reads as empty.
            if held.is_empty() {
                buckets.remove(&key);
            }
        }
        ready(Ok(()))
    }

    fn buckets(
        &self,
        customer_email: &str,
    ) -> impl Future<Output = Result<Vec<(u32, Vec<ArchivedEvent>)>, AdapterError>> + Send {
        let buckets = lock(&self.buckets);
        let held = buckets
            .range((customer_email.to_owned(), 0)..=(customer_email.to_owned(), u32::MAX))
            .map(|((_, bucket), events)| (*bucket, events.iter().copied().collect()))
            .collect();
        ready(Ok(held))
    }
}

impl ErasureLog for EmbeddedArchive {
    fn record(
        &self,
        marker: &ErasureMarker,
    ) -> impl Future<Output = Result<(), AdapterError>> + Send {
        lock(&self.erasures).insert(marker.hash.clone(), marker.clone());
        let mut filter = lock(&self.erasure_filter);
        if filter.1.insert(&marker.hash) {
            filter.0 += 1;
        }
        ready(Ok(()))
    }

    fn find(
        &self,
        hash: &str,
    ) -> impl Future<Output = Result<Option<ErasureMarker>, AdapterError>> + Send {
        ready(Ok(lock(&self.erasures).get(hash).cloned()))
    }

    fn filter_generation(&self) -> impl Future<Output = Result<u64, AdapterError>> + Send {
        ready(Ok(lock(&self.erasure_filter).0))
    }

    fn filter(&self) -> impl Future<Output = Result<(u64, ErasureFilter), AdapterError>> + Send {
        ready(Ok(lock(&self.erasure_filter).clone()))
    }
}
