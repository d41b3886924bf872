//! A queue with SQS's rules: a received message is hidden for the visibility timeout and
//! comes back with its receive count raised unless deleted; past the maximum receive count
//! it moves to the dead-letter queue; a receive hands out at most ten; a receipt handle is
//! fresh on every receive, and only the latest one deletes.

use std::collections::BTreeMap;
use std::future::{Future, ready};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use referral_domain::digits::padded_id;
use referral_domain::ports::{AdapterError, BATCH_LIMIT, OutgoingMessage, QueueMessage, WorkQueue};

use super::lock;

/// How the queue treats what it hands out.
#[derive(Debug, Clone)]
pub struct QueueRules {
    pub visibility_timeout: Duration,
    /// Receives after which the next receive moves a message to `dead_letters` (SQS's
    /// `maxReceiveCount`); `None`: messages stay however often they are received.
    pub max_receive_count: Option<u32>,
    pub dead_letters: Option<Arc<EmbeddedQueue>>,
}

impl Default for QueueRules {
    /// The webhook queue's settings in the template: 180 s, no redrive of its own.
    fn default() -> Self {
        QueueRules {
            visibility_timeout: Duration::from_secs(180),
            max_receive_count: None,
            dead_letters: None,
        }
    }
}

#[derive(Debug)]
struct Stored {
    message: QueueMessage,
    visible_at: Instant,
}

#[derive(Debug, Default)]
struct QueueState {
    /// By arrival; SQS promises no order, this queue keeps it for reproducible runs.
    messages: BTreeMap<u64, Stored>,
    next_id: u64,
    next_receipt: u64,
}

#[derive(Debug, Default)]
pub struct EmbeddedQueue {
    state: Mutex<QueueState>,
    rules: QueueRules,
}

impl EmbeddedQueue {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_rules(rules: QueueRules) -> Self {
        EmbeddedQueue {
            state: Mutex::default(),
            rules,
        }
    }

    /// Messages waiting plus messages received and not yet deleted.
    pub fn depth(&self) -> usize {
        lock(&self.state).messages.len()
    }

    /// Every message, visible or not, without receiving any (for `GET /dead-letters`).
    pub fn peek_all(&self) -> Vec<QueueMessage> {
        lock(&self.state)
            .messages
            .values()
            .map(|stored| stored.message.clone())
            .collect()
    }

    /// Removes one message, visible or not, by its id (`local serve`'s replay button).
    pub fn take(&self, message_id: &str) -> Option<QueueMessage> {
        let mut state = lock(&self.state);
        let key = state
            .messages
            .iter()
            .find(|(_, stored)| stored.message.message_id == message_id)
            .map(|(key, _)| *key)?;
        state.messages.remove(&key).map(|stored| stored.message)
    }

    /// Takes in a message redriven from another queue, id and receive count kept.
    fn enqueue(&self, message: QueueMessage) {
        let mut state = lock(&self.state);
        state.next_id += 1;
        let id = state.next_id;
        state.messages.insert(
            id,
            Stored {
                message,
                visible_at: Instant::now(),
            },
        );
    }
}

impl WorkQueue for EmbeddedQueue {
    fn send(
        &self,
        messages: Vec<OutgoingMessage>,
    ) -> impl Future<Output = Result<(), AdapterError>> + Send {
        if let Err(refused) = messages
            .iter()
            .try_for_each(|message| message.check_size("SendMessage"))
        {
            return ready(Err(refused));
        }
        let now = Instant::now();
        let mut state = lock(&self.state);
        for message in messages {
            state.next_id += 1;
            let id = state.next_id;
            let stored = Stored {
                message: QueueMessage {
                    message_id: padded_id("msg-", id, 8),
                    receipt: String::new(),
                    body: message.body,
                    attributes: message.attributes,
                    receive_count: 0,
                },
                visible_at: now,
            };
            state.messages.insert(id, stored);
        }
        ready(Ok(()))
    }

    fn receive(
        &self,
        max: usize,
    ) -> impl Future<Output = Result<Vec<QueueMessage>, AdapterError>> + Send {
        let now = Instant::now();
        let mut received = Vec::new();
        let mut redriven = Vec::new();
        {
            let mut state = lock(&self.state);
            let due: Vec<u64> = state
                .messages
                .iter()
                .filter(|(_, stored)| stored.visible_at <= now)
                .map(|(id, _)| *id)
                .collect();
            for id in due {
                if received.len() >= max.min(BATCH_LIMIT) {
                    break;
                }
                let exhausted = self
                    .rules
                    .max_receive_count
                    .is_some_and(|limit| state.messages[&id].message.receive_count >= limit);
                if exhausted && self.rules.dead_letters.is_some() {
                    if let Some(stored) = state.messages.remove(&id) {
                        redriven.push(stored.message);
                    }
                    continue;
                }
                state.next_receipt += 1;
                let receipt = padded_id("rh-", state.next_receipt, 10);
                if let Some(stored) = state.messages.get_mut(&id) {
                    stored.visible_at = now + self.rules.visibility_timeout;
                    stored.message.receive_count += 1;
                    stored.message.receipt = receipt;
                    received.push(stored.message.clone());
                }
            }
        }
        if let Some(dead_letters) = &self.rules.dead_letters {
            for mut message in redriven {
                // SQS keeps the id, body, attributes and count; the receipt is the DLQ's own.
                message.receipt = String::new();
                dead_letters.enqueue(message);
            }
        }
        ready(Ok(received))
    }

    fn delete(&self, receipts: &[String]) -> impl Future<Output = Result<(), AdapterError>> + Send {
        let mut state = lock(&self.state);
        state
            .messages
            .retain(|_, stored| !receipts.contains(&stored.message.receipt));
        ready(Ok(()))
    }

    fn retry_later(
        &self,
        receipts: &[String],
        after: Duration,
    ) -> impl Future<Output = Result<(), AdapterError>> + Send {
        let now = Instant::now() + after;
        let mut state = lock(&self.state);
        for stored in state.messages.values_mut() {
            if receipts.contains(&stored.message.receipt) {
                stored.visible_at = now;
            }
        }
        ready(Ok(()))
    }
}
