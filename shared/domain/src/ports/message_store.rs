//! The message store: one decision per change of a customer's features, a message or a
//! suppression, reached at most once through a claim.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
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
    pub prompt: String,
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

    /// A customer's decisions, oldest change first.
    fn decisions(
        &self,
        customer_email: &str,
    ) -> impl Future<Output = Result<Vec<Decision>, AdapterError>> + Send;

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
