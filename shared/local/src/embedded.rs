//! Embedded in-memory adapters: the same contracts as the AWS ones (conditional writes,
//! a change feed with one record per successful write, claim-then-complete messages), so
//! the whole pipeline runs in one process with no account, network or credentials.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::{Future, ready};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};

use referral_domain::digits::padded_id;
use referral_domain::features::CustomerFeatures;
use referral_domain::ports::{
    AdapterError, ChangeFeed, ChangeKind, ChangeRecord, Claim, FeatureStore, FeatureWrite,
    MessageKey, MessageStore, OutgoingMessage, QueueMessage, ReferralMessage, WorkQueue,
    WriteOutcome,
};

/// A panic while a lock is held cannot leave these maps half-updated (each critical section
/// is a single insert or remove), so a poisoned lock is still safe to use.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, Default)]
struct TableState {
    items: HashMap<String, Arc<CustomerFeatures>>,
    stream: VecDeque<ChangeRecord>,
    next_sequence: u64,
}

/// `CustomerFeatures` with its stream: implements [`FeatureStore`] and [`ChangeFeed`].
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
    /// where moving the item out spares a copy of it (and of its applied-id map).
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
        // The version guard alone already implies this (the fold skipped every id present at
        // that version); checking is free here and catches a caller that bypasses the fold.
        let ids_fresh = current.as_ref().is_none_or(|item| {
            write
                .applied_ids
                .iter()
                .all(|id| !item.memory.remembers(id))
        });
        if !(version_matches && ids_fresh) {
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
        let take = max.min(state.stream.len());
        ready(Ok(state.stream.drain(..take).collect()))
    }
}

#[derive(Debug, Clone)]
enum MessageRow {
    InProgress { expires_at: DateTime<Utc> },
    Completed(Box<ReferralMessage>),
}

/// `ReferralMessages`: claim-then-complete, put-if-absent. Rows by customer, then message id.
#[derive(Debug, Default)]
pub struct EmbeddedMessageStore {
    rows: Mutex<BTreeMap<String, BTreeMap<String, MessageRow>>>,
}

impl EmbeddedMessageStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every completed message, ordered by customer and message id.
    pub fn snapshot(&self) -> Vec<ReferralMessage> {
        lock(&self.rows)
            .values()
            .flat_map(BTreeMap::values)
            .filter_map(MessageRow::completed)
            .collect()
    }

    /// Removes a customer's rows and returns the completed messages, oldest first, as
    /// [`MessageStore::list`] would: for a read-back that is the store's last use, where
    /// moving the messages out spares copying every prompt and body.
    pub fn take_completed(&self, customer_email: &str) -> Vec<ReferralMessage> {
        let Some(customer) = lock(&self.rows).remove(customer_email) else {
            return Vec::new();
        };
        customer
            .into_values()
            .filter_map(|row| match row {
                MessageRow::Completed(message) => Some(*message),
                MessageRow::InProgress { .. } => None,
            })
            .collect()
    }
}

impl MessageRow {
    fn completed(&self) -> Option<ReferralMessage> {
        match self {
            MessageRow::Completed(message) => Some(ReferralMessage::clone(message)),
            MessageRow::InProgress { .. } => None,
        }
    }
}

impl MessageStore for EmbeddedMessageStore {
    fn claim(
        &self,
        key: &MessageKey,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> impl Future<Output = Result<Claim, AdapterError>> + Send {
        let mut rows = lock(&self.rows);
        let customer = match rows.get_mut(&key.customer_email) {
            Some(customer) => customer,
            None => rows.entry(key.customer_email.clone()).or_default(),
        };
        let claim = match customer.get(&key.message_id) {
            Some(MessageRow::Completed(_)) => Claim::Completed,
            Some(MessageRow::InProgress { expires_at }) if *expires_at > now => Claim::InProgress {
                expires_at: *expires_at,
            },
            _ => {
                let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
                let expires_at = now
                    .checked_add_signed(lease)
                    .unwrap_or(DateTime::<Utc>::MAX_UTC);
                customer.insert(
                    key.message_id.clone(),
                    MessageRow::InProgress { expires_at },
                );
                Claim::Acquired
            }
        };
        ready(Ok(claim))
    }

    fn complete(
        &self,
        message: ReferralMessage,
    ) -> impl Future<Output = Result<(), AdapterError>> + Send {
        let mut rows = lock(&self.rows);
        let customer = match rows.get_mut(&message.customer_email) {
            Some(customer) => customer,
            None => rows.entry(message.customer_email.clone()).or_default(),
        };
        // The claim's row is normally there: replace it in place rather than re-keying.
        match customer.get_mut(&message.message_id) {
            Some(row) => *row = MessageRow::Completed(Box::new(message)),
            None => {
                customer.insert(
                    message.message_id.clone(),
                    MessageRow::Completed(Box::new(message)),
                );
            }
        }
        ready(Ok(()))
    }

    fn list(
        &self,
        customer_email: &str,
    ) -> impl Future<Output = Result<Vec<ReferralMessage>, AdapterError>> + Send {
        let rows = lock(&self.rows);
        ready(Ok(rows
            .get(customer_email)
            .map(|customer| {
                customer
                    .values()
                    .filter_map(MessageRow::completed)
                    .collect()
            })
            .unwrap_or_default()))
    }
}

#[derive(Debug, Default)]
struct QueueState {
    visible: VecDeque<QueueMessage>,
    in_flight: HashMap<String, QueueMessage>,
    next_id: u64,
}

/// The webhook queue: FIFO, with receive counts and in-flight messages like SQS.
#[derive(Debug, Default)]
pub struct EmbeddedQueue {
    state: Mutex<QueueState>,
}

impl EmbeddedQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Messages waiting plus messages received and not yet deleted.
    pub fn depth(&self) -> usize {
        let state = lock(&self.state);
        state.visible.len() + state.in_flight.len()
    }
}

impl WorkQueue for EmbeddedQueue {
    fn send(
        &self,
        messages: Vec<OutgoingMessage>,
    ) -> impl Future<Output = Result<(), AdapterError>> + Send {
        let mut state = lock(&self.state);
        for message in messages {
            state.next_id += 1;
            let id = padded_id("msg-", state.next_id, 8);
            state.visible.push_back(QueueMessage {
                message_id: id.clone(),
                receipt: id,
                body: message.body,
                attributes: message.attributes,
                receive_count: 0,
            });
        }
        ready(Ok(()))
    }

    fn receive(
        &self,
        max: usize,
    ) -> impl Future<Output = Result<Vec<QueueMessage>, AdapterError>> + Send {
        let mut state = lock(&self.state);
        let take = max.min(state.visible.len());
        let received: Vec<QueueMessage> = state
            .visible
            .drain(..take)
            .map(|mut message| {
                message.receive_count += 1;
                message
            })
            .collect();
        for message in &received {
            state
                .in_flight
                .insert(message.receipt.clone(), message.clone());
        }
        ready(Ok(received))
    }

    fn delete(&self, receipts: &[String]) -> impl Future<Output = Result<(), AdapterError>> + Send {
        let mut state = lock(&self.state);
        for receipt in receipts {
            state.in_flight.remove(receipt);
        }
        ready(Ok(()))
    }

    fn retry_later(
        &self,
        receipts: &[String],
    ) -> impl Future<Output = Result<(), AdapterError>> + Send {
        let mut state = lock(&self.state);
        for receipt in receipts {
            if let Some(message) = state.in_flight.remove(receipt) {
                state.visible.push_back(message);
            }
        }
        ready(Ok(()))
    }
}
