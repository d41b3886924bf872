//! The message store: one decision per change of a customer's features, a message or a
//! suppression, reached at most once through a claim.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{AdapterError, TokenUsage};

/// Identifies the one decision a change may get: the customer and `v<version>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageKey {
    pub customer_email: String,
    pub message_id: String,
}

/// Who holds a claim. Derived from the change record being handled, so that a retry of the
/// same record is the same holder and takes its own claim straight back, instead of waiting
/// out the lease of a claim it left when it crashed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Holder(String);

impl Holder {
    /// The holder handling the change record at `sequence_number`.
    pub fn of_record(sequence_number: &str) -> Self {
        Holder(format!("record:{sequence_number}"))
    }

    pub fn new(name: impl Into<String>) -> Self {
        Holder(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A referral message, as written for a customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferralMessage {
    #[serde(rename = "customerEmail")]
    pub customer_email: String,
    pub message_id: String,
    pub trigger_event_id: Option<String>,
    pub features_version: u64,
    pub recommended_service: String,
    pub body: String,
    /// The prompt's text is not kept (it holds the customer's name and address): its
    /// version ([`crate::prompt::PROMPT_VERSION`]; 0 on messages stored before versions
    /// were) and the hash of its user turn say which prompt it was.
    #[serde(default)]
    pub prompt_version: u32,
    pub prompt_hash: String,
    pub generator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<TokenUsage>,
    /// Why the template wrote it where a model was to (`throttled`, `access_denied`,
    /// `budget`, ...); absent when the generator meant to write it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    /// The trace of the webhook the change applied (32 hex digits), when it carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(with = "crate::features::rfc3339")]
    pub created_at: DateTime<Utc>,
}

impl ReferralMessage {
    pub fn key(&self) -> MessageKey {
        MessageKey {
            customer_email: self.customer_email.clone(),
            message_id: self.message_id.clone(),
        }
    }
}

/// A change that got no message, on purpose, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppression {
    #[serde(rename = "customerEmail")]
    pub customer_email: String,
    pub message_id: String,
    pub features_version: u64,
    pub trigger_event_id: Option<String>,
    /// A stable word (`cooldown`, `satisfaction`, ...).
    pub reason: String,
    /// The trace of the webhook the change applied (32 hex digits), when it carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(with = "crate::features::rfc3339")]
    pub decided_at: DateTime<Utc>,
}

/// What became of a change: exactly one of these is recorded per change.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Message(ReferralMessage),
    Suppressed(Suppression),
}

impl Decision {
    pub fn key(&self) -> MessageKey {
        match self {
            Decision::Message(message) => message.key(),
            Decision::Suppressed(suppression) => MessageKey {
                customer_email: suppression.customer_email.clone(),
                message_id: suppression.message_id.clone(),
            },
        }
    }

    pub fn into_message(self) -> Option<ReferralMessage> {
        match self {
            Decision::Message(message) => Some(message),
            Decision::Suppressed(_) => None,
        }
    }
}

/// The change that holds a customer's message slot: the last change the policy let through
/// to a message, and when its trigger event occurred. The cooldown is measured from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageSlot {
    pub version: u64,
    pub at: DateTime<Utc>,
}

impl MessageSlot {
    /// Whether this holder gives the slot up to `wanted`: it is the same change (a retry of
    /// it takes the slot back), or `wanted` occurred at least `cooldown` after it. A change
    /// that occurred before the holder (a late event) never takes it.
    pub fn yields_to(&self, wanted: &MessageSlot, cooldown: Duration) -> bool {
        self.version == wanted.version
            || chrono::Duration::from_std(cooldown)
                .ok()
                .and_then(|cooldown| self.at.checked_add_signed(cooldown))
                .is_some_and(|free_from| free_from <= wanted.at)
    }
}

/// The answer to taking a customer's message slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotTaken {
    /// The change holds the slot now (or held it already): it may have its message.
    Taken,
    /// Another change holds it, too recently: the asking change is in its cooldown.
    Cooling { holder: MessageSlot },
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The holder may go on until the lease runs out. `draft` is the message an earlier
    /// attempt generated and kept before it failed: record it, do not generate again.
    Acquired { draft: Option<Box<ReferralMessage>> },
    /// The change's decision is recorded: a redelivery, nothing to do.
    Decided,
    /// Another holder's live claim; try again after `expires_at`.
    Held { expires_at: DateTime<Utc> },
}

/// The answer to recording a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Recorded,
    /// A decision was there already; it stands.
    AlreadyDecided,
    /// Another holder holds a live claim on the change; it will record the decision.
    ClaimHeldElsewhere,
}

/// Put-if-absent storage of decisions, so that the model is called at most once per change:
/// claim (a marker that expires), generate, keep the draft, record. A claim whose lease ran
/// out (its holder crashed) can be taken over, draft and all; a holder takes its own claim
/// back at once.
///
/// The contract (`tests/src/contract/message_store.rs`) holds every adapter to the same
/// answers for: a first claim, a second holder's claim while the first is live, the same
/// holder's claim again, takeover after the lease, a kept draft coming back with the claim,
/// recording over one's own claim, over nothing, over a decision, and over another's live
/// claim, and the release of a claim.
pub trait MessageStore: Send + Sync {
    fn claim(
        &self,
        key: &MessageKey,
        holder: &Holder,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> impl Future<Output = Result<Claim, AdapterError>> + Send;

    /// Keeps a generated message in the holder's claim, so that a retry records it without
    /// generating it again. `false` when the claim is no longer the holder's.
    fn keep_draft(
        &self,
        holder: &Holder,
        draft: &ReferralMessage,
    ) -> impl Future<Output = Result<bool, AdapterError>> + Send;

    /// Records a change's decision where there is none: over the holder's own claim, a claim
    /// whose lease ran out, or nothing.
    fn record(
        &self,
        decision: Decision,
        holder: &Holder,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Recorded, AdapterError>> + Send;

    /// Gives up the holder's claim at once (after a failure), keeping its draft for whoever
    /// claims next. A claim no longer the holder's is left alone.
    fn release(
        &self,
        key: &MessageKey,
        holder: &Holder,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), AdapterError>> + Send;

    /// A customer's decisions, oldest change first (never the policy's state below).
    fn decisions(
        &self,
        customer_email: &str,
    ) -> impl Future<Output = Result<Vec<Decision>, AdapterError>> + Send;

    // The message policy's state, in the same store: a customer's message slot (for the
    // cooldown) and the model calls of a UTC day (for the budget). The orchestrator uses
    // them only when a cooldown or a budget is configured; a store that keeps no such state
    // (a test's wrapper) refuses, so a misconfiguration fails loudly, never silently.

    /// Gives the customer's message slot to `wanted` where its holder yields to it
    /// ([`MessageSlot::yields_to`]), or where there is none, atomically: of two changes
    /// racing for it, one gets it.
    fn take_message_slot(
        &self,
        customer_email: &str,
        wanted: MessageSlot,
        cooldown: Duration,
    ) -> impl Future<Output = Result<SlotTaken, AdapterError>> + Send {
        let _ = (customer_email, wanted, cooldown);
        std::future::ready(Err(no_policy_state("take_message_slot")))
    }

    /// Who holds the customer's message slot, if anyone (a read, for previews).
    fn message_slot(
        &self,
        customer_email: &str,
    ) -> impl Future<Output = Result<Option<MessageSlot>, AdapterError>> + Send {
        let _ = customer_email;
        std::future::ready(Err(no_policy_state("message_slot")))
    }

    /// Counts one model call against `day`'s budget if fewer than `limit` were counted,
    /// atomically across every caller; `false` when the budget is spent.
    fn spend_model_call(
        &self,
        day: NaiveDate,
        limit: u64,
    ) -> impl Future<Output = Result<bool, AdapterError>> + Send {
        let _ = (day, limit);
        std::future::ready(Err(no_policy_state("spend_model_call")))
    }

    /// The model calls counted against `day` (a read, for previews and reports).
    fn model_calls(
        &self,
        day: NaiveDate,
    ) -> impl Future<Output = Result<u64, AdapterError>> + Send {
        let _ = day;
        std::future::ready(Err(no_policy_state("model_calls")))
    }

    /// A customer's messages, oldest first.
    fn list(
        &self,
        customer_email: &str,
    ) -> impl Future<Output = Result<Vec<ReferralMessage>, AdapterError>> + Send {
        let decisions = self.decisions(customer_email);
        async move {
            Ok(decisions
                .await?
                .into_iter()
                .filter_map(Decision::into_message)
                .collect())
        }
    }
}

fn no_policy_state(operation: &'static str) -> AdapterError {
    AdapterError::Permanent {
        operation,
        source: "this message store keeps no message-policy state".into(),
    }
}
