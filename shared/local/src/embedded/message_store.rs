//! `ReferralMessages`: claim-then-record decisions, put-if-absent.

use std::collections::BTreeMap;
use std::future::{Future, ready};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use referral_domain::ports::{
    AdapterError, Claim, Decision, Holder, MessageKey, MessageRetention, MessageSlot, MessageStore,
    Recorded, ReferralMessage, SlotTaken,
};

use super::lock;

#[derive(Debug, Clone)]
enum Row {
    Claimed {
        holder: Holder,
        expires_at: DateTime<Utc>,
        draft: Option<Box<ReferralMessage>>,
    },
    Decided {
        decision: Box<Decision>,
        /// The end of its retention, as DynamoDB's TTL attribute holds it.
        expires_at: Option<DateTime<Utc>>,
    },
}

impl Row {
    /// Whether `holder` may write over this row now: its own claim, or one whose lease ran
    /// out. A decision is never overwritten.
    fn open_to(&self, holder: &Holder, now: DateTime<Utc>) -> bool {
        match self {
            Row::Claimed {
                holder: owner,
                expires_at,
                ..
            } => owner == holder || *expires_at <= now,
            Row::Decided { .. } => false,
        }
    }
}

/// Rows by customer, then message id; and the message policy's state: each customer's
/// message slot, and the model calls counted per day. The slots are apart from the rows,
/// as in DynamoDB, so they outlive the decisions' retention.
#[derive(Debug, Default)]
pub struct EmbeddedMessageStore {
    rows: Mutex<BTreeMap<String, BTreeMap<String, Row>>>,
    slots: Mutex<BTreeMap<String, MessageSlot>>,
    model_calls: Mutex<BTreeMap<NaiveDate, u64>>,
    retention: MessageRetention,
}

impl EmbeddedMessageStore {
    /// A store keeping decisions for the default retention (a year), as the table does.
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_retention(retention: MessageRetention) -> Self {
        EmbeddedMessageStore {
            retention,
            ..Self::default()
        }
    }

    /// Deletes the decisions whose retention ended by `now`, as DynamoDB's TTL does (some
    /// time after, there), and returns how many. Claims and the policy's state stay.
    pub fn expire(&self, now: DateTime<Utc>) -> usize {
        let mut rows = lock(&self.rows);
        let mut expired = 0;
        for customer in rows.values_mut() {
            customer.retain(|_, row| {
                let keep = !matches!(row, Row::Decided { expires_at: Some(at), .. } if *at <= now);
                expired += usize::from(!keep);
                keep
            });
        }
        rows.retain(|_, customer| !customer.is_empty());
        expired
    }

    /// Every decision, ordered by customer and message id.
    pub fn snapshot(&self) -> Vec<Decision> {
        lock(&self.rows)
            .values()
            .flat_map(BTreeMap::values)
            .filter_map(|row| match row {
                Row::Decided { decision, .. } => Some(Decision::clone(decision)),
                Row::Claimed { .. } => None,
            })
            .collect()
    }

    /// Removes a customer's rows and returns the decisions, oldest first, as
    /// [`MessageStore::decisions`] would: for a read-back that is the store's last use,
    /// where moving them out spares copying every prompt and body.
    pub fn take_decisions(&self, customer_email: &str) -> Vec<Decision> {
        let Some(customer) = lock(&self.rows).remove(customer_email) else {
            return Vec::new();
        };
        customer
            .into_values()
            .filter_map(|row| match row {
                Row::Decided { decision, .. } => Some(*decision),
                Row::Claimed { .. } => None,
            })
            .collect()
    }
}

fn expiry(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
    now.checked_add_signed(lease)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl MessageStore for EmbeddedMessageStore {
    fn claim(
        &self,
        key: &MessageKey,
        holder: &Holder,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> impl Future<Output = Result<Claim, AdapterError>> + Send {
        let mut rows = lock(&self.rows);
        let customer = rows.entry(key.customer_email.clone()).or_default();
        let claim = match customer.get_mut(&key.message_id) {
            Some(Row::Decided { .. }) => Claim::Decided,
            Some(Row::Claimed {
                holder: owner,
                expires_at,
                ..
            }) if owner != holder && *expires_at > now => Claim::Held {
                expires_at: *expires_at,
            },
            Some(Row::Claimed {
                holder: owner,
                expires_at,
                draft,
            }) => {
                // Taken back, or over: the draft stays with the claim.
                *owner = holder.clone();
                *expires_at = expiry(now, lease);
                Claim::Acquired {
                    draft: draft.clone(),
                }
            }
            None => {
                customer.insert(
                    key.message_id.clone(),
                    Row::Claimed {
                        holder: holder.clone(),
                        expires_at: expiry(now, lease),
                        draft: None,
                    },
                );
                Claim::Acquired { draft: None }
            }
        };
        ready(Ok(claim))
    }

    fn keep_draft(
        &self,
        holder: &Holder,
        draft: &ReferralMessage,
    ) -> impl Future<Output = Result<bool, AdapterError>> + Send {
        let mut rows = lock(&self.rows);
        let kept = match rows
            .get_mut(&draft.customer_email)
            .and_then(|customer| customer.get_mut(&draft.message_id))
        {
            Some(Row::Claimed {
                holder: owner,
                draft: slot,
                ..
            }) if owner == holder => {
                *slot = Some(Box::new(draft.clone()));
                true
            }
            _ => false,
        };
        ready(Ok(kept))
    }

    fn record(
        &self,
        decision: Decision,
        holder: &Holder,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Recorded, AdapterError>> + Send {
        let mut rows = lock(&self.rows);
        let key = decision.key();
        let customer = rows.entry(key.customer_email).or_default();
        let recorded = match customer.get(&key.message_id) {
            Some(Row::Decided { .. }) => Recorded::AlreadyDecided,
            Some(row) if !row.open_to(holder, now) => Recorded::ClaimHeldElsewhere,
            _ => {
                let row = Row::Decided {
                    decision: Box::new(decision),
                    expires_at: self.retention.expiry(now),
                };
                customer.insert(key.message_id, row);
                Recorded::Recorded
            }
        };
        ready(Ok(recorded))
    }

    fn release(
        &self,
        key: &MessageKey,
        holder: &Holder,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), AdapterError>> + Send {
        let mut rows = lock(&self.rows);
        if let Some(Row::Claimed {
            holder: owner,
            expires_at,
            ..
        }) = rows
            .get_mut(&key.customer_email)
            .and_then(|customer| customer.get_mut(&key.message_id))
        {
            if owner == holder {
                *expires_at = now;
            }
        }
        ready(Ok(()))
    }

    fn decisions(
        &self,
        customer_email: &str,
    ) -> impl Future<Output = Result<Vec<Decision>, AdapterError>> + Send {
        let rows = lock(&self.rows);
        ready(Ok(rows
            .get(customer_email)
            .map(|customer| {
                customer
                    .values()
                    .filter_map(|row| match row {
                        Row::Decided { decision, .. } => Some(Decision::clone(decision)),
                        Row::Claimed { .. } => None,
                    })
                    .collect()
            })
            .unwrap_or_default()))
    }

    fn take_message_slot(
        &self,
        customer_email: &str,
        wanted: MessageSlot,
        cooldown: Duration,
    ) -> impl Future<Output = Result<SlotTaken, AdapterError>> + Send {
        let mut slots = lock(&self.slots);
        let taken = match slots.get(customer_email) {
            Some(holder) if !holder.yields_to(&wanted, cooldown) => {
                SlotTaken::Cooling { holder: *holder }
            }
            _ => {
                slots.insert(customer_email.to_owned(), wanted);
                SlotTaken::Taken
            }
        };
        ready(Ok(taken))
    }

    fn message_slot(
        &self,
        customer_email: &str,
    ) -> impl Future<Output = Result<Option<MessageSlot>, AdapterError>> + Send {
        ready(Ok(lock(&self.slots).get(customer_email).copied()))
    }

    fn spend_model_call(
        &self,
        day: NaiveDate,
        limit: u64,
    ) -> impl Future<Output = Result<bool, AdapterError>> + Send {
        let mut calls = lock(&self.model_calls);
        let counted = calls.entry(day).or_insert(0);
        let spent = *counted < limit;
        *counted += u64::from(spent);
        ready(Ok(spent))
    }

    fn model_calls(
        &self,
        day: NaiveDate,
    ) -> impl Future<Output = Result<u64, AdapterError>> + Send {
        ready(Ok(lock(&self.model_calls).get(&day).copied().unwrap_or(0)))
    }
}
