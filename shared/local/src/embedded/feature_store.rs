//! `CustomerFeatures` with its stream: the [`FeatureStore`] and its [`ChangeFeed`].

use std::collections::{HashMap, VecDeque};
use std::future::{Future, ready};
use std::sync::{Arc, Mutex};

use referral_domain::digits::padded_id;
use referral_domain::features::CustomerFeatures;
use referral_domain::ports::{
    AdapterError, ChangeFeed, ChangeKind, ChangeRecord, FeatureStore, FeatureWrite, WriteOutcome,
};

use super::{lock, not_handed_out};

#[derive(Debug, Default)]
struct TableState {
    items: HashMap<String, Arc<CustomerFeatures>>,
    /// Records of the latest poll (which a consumer may resume from), then the unread ones.
    stream: VecDeque<ChangeRecord>,
    /// How many records of `stream` the latest poll handed out.
    handed_out: usize,
    next_sequence: u64,
}

/// `CustomerFeatures` with its stream (new images only, like the table's).
#[derive(Debug, Default)]
pub struct EmbeddedFeatureStore {
    state: Mutex<TableState>,
}

impl EmbeddedFeatureStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every item, ordered by customer e-mail.
    pub fn snapshot(&self) -> Vec<Arc<CustomerFeatures>> {
        let state = lock(&self.state);
        let mut items: Vec<_> = state.items.values().cloned().collect();
        items.sort_by(|a, b| a.customer_email.cmp(&b.customer_email));
        items
    }

    /// Removes and returns a customer's item: for a read-back that is the store's last use,
    /// where moving the item out spares a copy of it.
    pub fn take(&self, customer_email: &str) -> Option<CustomerFeatures> {
        let item = lock(&self.state).items.remove(customer_email)?;
        // Unshared once the feed is drained, so this is a move, not a clone.
        Some(Arc::unwrap_or_clone(item))
    }

    fn save_now(&self, write: FeatureWrite) -> WriteOutcome {
        let mut state = lock(&self.state);
        let current = state.items.get(&write.item.customer_email).cloned();
        let version_matches = match (&current, write.expected_version) {
            (None, None) => true,
            (Some(item), Some(expected)) => item.version == expected,
            _ => false,
        };
        if !version_matches {
            return WriteOutcome::refused(current.as_deref().cloned(), &write.applied_ids);
        }
        let email = write.item.customer_email.clone();
        let new_image = write.item;
        state.items.insert(email.clone(), Arc::clone(&new_image));
        state.next_sequence += 1;
        let record = ChangeRecord {
            sequence_number: padded_id("", state.next_sequence, 21),
            kind: if current.is_some() {
                ChangeKind::Modify
            } else {
                ChangeKind::Insert
            },
            customer_email: email,
            // Like the table's stream (NEW_IMAGE): the consumer needs the new item only.
            old_image: None,
            new_image: Some(new_image),
        };
        state.stream.push_back(record);
        WriteOutcome::Applied
    }
}

impl FeatureStore for EmbeddedFeatureStore {
    fn load(
        &self,
        customer_email: &str,
    ) -> impl Future<Output = Result<Option<CustomerFeatures>, AdapterError>> + Send {
        let state = lock(&self.state);
        ready(Ok(state
            .items
            .get(customer_email)
            .map(|item| CustomerFeatures::clone(item))))
    }

    fn save(
        &self,
        write: FeatureWrite,
    ) -> impl Future<Output = Result<WriteOutcome, AdapterError>> + Send {
        ready(Ok(self.save_now(write)))
    }
}

impl ChangeFeed for EmbeddedFeatureStore {
    fn poll(
        &self,
        max: usize,
    ) -> impl Future<Output = Result<Vec<ChangeRecord>, AdapterError>> + Send {
        let mut state = lock(&self.state);
        // What the previous poll handed out is done with: no resume can reach it now.
        let done = state.handed_out;
        state.stream.drain(..done);
        let take = max.min(state.stream.len());
        state.handed_out = take;
        ready(Ok(state.stream.iter().take(take).cloned().collect()))
    }

    fn resume_from(
        &self,
        sequence_number: &str,
    ) -> impl Future<Output = Result<(), AdapterError>> + Send {
        let mut state = lock(&self.state);
        let position = state
            .stream
            .iter()
            .take(state.handed_out)
            .position(|record| record.sequence_number == sequence_number);
        ready(match position {
            Some(index) => {
                // The records before it are done; it and the rest come out of the next poll.
                state.stream.drain(..index);
                state.handed_out = 0;
                Ok(())
            }
            None => Err(not_handed_out(sequence_number)),
        })
    }
}
