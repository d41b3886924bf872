//! The orchestrator core: change records in, exactly one outcome per change out: a referral
//! message, or a suppression with its reason (the message policy, `policy.rs`).
//!
//! A change earns a decision only when its write applied new service events. The policy
//! decides before the claim; a suppression is recorded under the key a message would have,
//! so a redelivered record finds it and does nothing. A message is claimed before the
//! generator runs, so a redelivered record never calls the model twice, and completed
//! afterwards.
//!
//! After any failure the claim is released at once (and the message kept in it when the
//! model had written one); a crash leaves it to the retry of the same record, which takes it
//! back at once as the same holder.

mod batch;
pub mod policy;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::digits::padded_id;
use crate::features::CustomerFeatures;
use crate::ports::{
    AdapterError, ChangeKind, ChangeRecord, Claim, Decision, GenerationError, GenerationRequest,
    Holder, MessageGenerator, MessageKey, MessageStore, OnThrottle, Recorded, ReferralMessage,
    Suppression,
};
use crate::prompt::{PROMPT_VERSION, build_prompt};
use crate::redact::short_hash;
use crate::template::TemplateGenerator;

pub use batch::{BatchOutcome, Deadline, StreamCounters};
pub use policy::{MessagePolicy, ModelCall, SuppressionReason, Verdict};

/// Why a record produced no message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    Removed,
    /// No decodable new image (e.g. a key-only record).
    NoNewImage,
    /// The write applied no new service event (or the images are identical).
    NothingApplied,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RecordOutcome {
    Created {
        message_id: String,
        generator: String,
        /// Why the fallback wrote it, when it did (`throttled`, `access_denied`, ...).
        fallback_reason: Option<String>,
    },
    /// The policy suppressed the change; the suppression is recorded.
    Suppressed(SuppressionReason),
    /// The change's decision is recorded already: a redelivery.
    AlreadyCreated,
    /// A live claim is held by another invocation; retry the record later.
    ClaimedElsewhere {
        expires_at: DateTime<Utc>,
    },
    Skipped(SkipReason),
    /// The model is throttling and the policy is to try again later: the claim is released
    /// and the record delivered again.
    Throttled,
    /// Not started: the invocation's deadline was too near. Delivered again.
    NotAttempted,
    /// Not handled: an earlier record of the same customer must be retried first, and the
    /// policy decides a customer's changes in order. Delivered again after it.
    Deferred,
    /// Retry the record later: the store or the generator failed.
    Failed(RecordFailure),
}

/// Why a record could not be handled now.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RecordFailure {
    #[error("the message store failed")]
    Store(#[source] Arc<AdapterError>),
    /// Only a bare generator fails (production generators fall back to the template).
    #[error("the generator failed")]
    Generation(#[source] Arc<GenerationError>),
}

impl RecordFailure {
    pub fn kind(&self) -> &'static str {
        match self {
            RecordFailure::Store(error) => error.kind(),
            RecordFailure::Generation(error) => error.kind(),
        }
    }
}

/// Failures compare by kind: enough for tests, which cannot compare the sources.
impl PartialEq for RecordFailure {
    fn eq(&self, other: &Self) -> bool {
        self.kind() == other.kind()
    }
}

impl RecordOutcome {
    /// Whether the record must be delivered again.
    pub fn needs_retry(&self) -> bool {
        matches!(
            self,
            RecordOutcome::ClaimedElsewhere { .. }
                | RecordOutcome::Throttled
                | RecordOutcome::NotAttempted
                | RecordOutcome::Deferred
                | RecordOutcome::Failed(_)
        )
    }

    pub fn label(&self) -> &'static str {
        match self {
            RecordOutcome::Created { .. } => "created",
            RecordOutcome::Suppressed(_) => "suppressed",
            RecordOutcome::Deferred => "deferred",
            RecordOutcome::AlreadyCreated => "already_created",
            RecordOutcome::ClaimedElsewhere { .. } => "claimed_elsewhere",
            RecordOutcome::Skipped(_) => "skipped",
            RecordOutcome::Throttled => "throttled",
            RecordOutcome::NotAttempted => "not_attempted",
            RecordOutcome::Failed(_) => "failed",
        }
    }
}

impl From<AdapterError> for RecordOutcome {
    fn from(error: AdapterError) -> Self {
        RecordOutcome::Failed(RecordFailure::Store(Arc::new(error)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrchestratorConfig {
    /// How long a claim protects a generation in progress; after that a crashed holder's
    /// claim may be taken over. Keep it above the function's timeout.
    pub claim_lease: Duration,
    /// What a throttled model call makes of a record.
    pub throttle: ThrottlePolicy,
    /// Who gets a message, how often, at what model cost (default: everyone, always).
    pub policy: MessagePolicy,
}

impl Default for OrchestratorConfig {
    fn default() -> Self {
        OrchestratorConfig {
            claim_lease: Duration::from_secs(300),
            throttle: ThrottlePolicy::FallBack,
            policy: MessagePolicy::default(),
        }
    }
}

/// The operator's choice when the model is throttling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ThrottlePolicy {
    /// The template writes the message at once (`fallback_reason: throttled`).
    #[default]
    FallBack,
    /// The record is handed back to the stream to be tried again while the change is younger
    /// than this (by when it was written); older, or of unknown age, the template writes it.
    /// Handing back holds up the records behind it in the shard, and each hand-back spends
    /// one of the stream mapping's retry attempts.
    RetryFor(Duration),
}

impl ThrottlePolicy {
    /// What a throttled call for `record` leads to, at `now`.
    pub fn on_throttle(&self, record: &ChangeRecord, now: DateTime<Utc>) -> OnThrottle {
        let ThrottlePolicy::RetryFor(max_age) = self else {
            return OnThrottle::FallBack;
        };
        let young = record.written_at.is_some_and(|written_at| {
            // A change dated after `now` (clocks disagree a little) is as young as can be.
            (now - written_at).to_std().unwrap_or_default() < *max_age
        });
        if young {
            OnThrottle::HandBack
        } else {
            OnThrottle::FallBack
        }
    }
}

/// The message id a change maps to: the version its write produced. Zero-padded so ids
/// sort in version order.
pub fn message_id_for(features: &CustomerFeatures) -> String {
    padded_id("v", features.version, 12)
}

/// The new image of a change that earns a message, or why it earns none.
///
/// The table's stream carries new images only (each record is half the bytes of one with
/// both images): every write of the enricher applies new service events and names the
/// latest as its trigger, so a new image with a trigger earns a message (a band move of
/// `referral features recompute` applies none and has none). Where an old image
/// is present (an older table's NEW_AND_OLD_IMAGES stream, or an emulator's no-op MODIFY
/// with identical images) the count of applied events must also have grown.
pub fn message_worthy(record: &ChangeRecord) -> Result<&Arc<CustomerFeatures>, SkipReason> {
    if record.kind == ChangeKind::Remove {
        return Err(SkipReason::Removed);
    }
    let new = record.new_image.as_ref().ok_or(SkipReason::NoNewImage)?;
    let applied_new_events = match &record.old_image {
        Some(old) => new.events_applied > old.events_applied,
        None => new.trigger_event_id.is_some(),
    };
    if applied_new_events {
        Ok(new)
    } else {
        Err(SkipReason::NothingApplied)
    }
}

#[derive(Debug, Clone)]
pub struct Orchestrator<G, M> {
    generator: G,
    messages: M,
    config: OrchestratorConfig,
}

impl<G: MessageGenerator, M: MessageStore> Orchestrator<G, M> {
    pub fn new(generator: G, messages: M, config: OrchestratorConfig) -> Self {
        Orchestrator {
            generator,
            messages,
            config,
        }
    }

    pub fn generator(&self) -> &G {
        &self.generator
    }

    pub fn messages(&self) -> &M {
        &self.messages
    }

    pub async fn handle(&self, record: &ChangeRecord, now: DateTime<Utc>) -> RecordOutcome {
        let features = match message_worthy(record) {
            Ok(features) => features,
            Err(reason) => return RecordOutcome::Skipped(reason),
        };
        let key = MessageKey {
            customer_email: features.customer_email.clone(),
            message_id: message_id_for(features),
        };
        let holder = Holder::of_record(&record.sequence_number);
        match self.config.policy.decide(features, &self.messages).await {
            Ok(Verdict::Message) => {}
            Ok(Verdict::Suppressed(reason)) => {
                return self.suppress(features, key, &holder, reason, now).await;
            }
            Err(error) => return error.into(),
        }
        let claimed = self
            .messages
            .claim(&key, &holder, now, self.config.claim_lease)
            .await;
        let message = match claimed {
            // An earlier attempt of this change generated the message and failed to record
            // it: record that one, the model is not asked twice.
            Ok(Claim::Acquired { draft: Some(draft) }) => *draft,
            Ok(Claim::Acquired { draft: None }) => {
                let on_throttle = self.config.throttle.on_throttle(record, now);
                match self.generate(features, &key, on_throttle, now).await {
                    Ok(message) => message,
                    Err(failure) => {
                        self.release(&key, &holder, now).await;
                        return match failure {
                            RecordFailure::Generation(error)
                                if matches!(*error, GenerationError::Throttled)
                                    && on_throttle == OnThrottle::HandBack =>
                            {
                                RecordOutcome::Throttled
                            }
                            failure => RecordOutcome::Failed(failure),
                        };
                    }
                }
            }
            Ok(Claim::Decided) => return RecordOutcome::AlreadyCreated,
            Ok(Claim::Held { expires_at }) => {
                return RecordOutcome::ClaimedElsewhere { expires_at };
            }
            Err(error) => return error.into(),
        };
        let created = RecordOutcome::Created {
            message_id: message.message_id.clone(),
            generator: message.generator.clone(),
            fallback_reason: message.fallback_reason.clone(),
        };
        let draft = message.clone();
        match self
            .messages
            .record(Decision::Message(message), &holder, now)
            .await
        {
            Ok(Recorded::Recorded) => created,
            Ok(Recorded::AlreadyDecided) => RecordOutcome::AlreadyCreated,
            Ok(Recorded::ClaimHeldElsewhere) => RecordOutcome::ClaimedElsewhere { expires_at: now },
            Err(error) => {
                // Keep what the model wrote for the retry, then let the claim go at once
                // rather than after its lease: the retry is this same record.
                if let Err(kept) = self.messages.keep_draft(&holder, &draft).await {
                    tracing::warn!(error = %kept, "could not keep the generated message for the retry");
                }
                self.release(&key, &holder, now).await;
                error.into()
            }
        }
    }

    /// Records the policy's suppression of a change, as a message would be recorded.
    async fn suppress(
        &self,
        features: &CustomerFeatures,
        key: MessageKey,
        holder: &Holder,
        reason: SuppressionReason,
        now: DateTime<Utc>,
    ) -> RecordOutcome {
        let suppression = Suppression {
            customer_email: key.customer_email,
            message_id: key.message_id,
            features_version: features.version,
            trigger_event_id: features.trigger_event_id.clone(),
            reason: reason.as_str().to_owned(),
            trace_id: features.trace.map(|trace| trace.trace_id()),
            decided_at: now,
        };
        match self
            .messages
            .record(Decision::Suppressed(suppression), holder, now)
            .await
        {
            Ok(Recorded::Recorded) => RecordOutcome::Suppressed(reason),
            Ok(Recorded::AlreadyDecided) => RecordOutcome::AlreadyCreated,
            Ok(Recorded::ClaimHeldElsewhere) => RecordOutcome::ClaimedElsewhere { expires_at: now },
            Err(error) => error.into(),
        }
    }

    /// The message for `features`: the generator's, or the template's once the day's model
    /// budget is spent.
    async fn generate(
        &self,
        features: &CustomerFeatures,
        key: &MessageKey,
        on_throttle: OnThrottle,
        now: DateTime<Utc>,
    ) -> Result<ReferralMessage, RecordFailure> {
        let prompt = build_prompt(Some(features));
        let request = GenerationRequest {
            features: Some(features),
            prompt: &prompt,
            on_throttle,
        };
        let model = self
            .config
            .policy
            .model_call(&self.messages, now)
            .await
            .map_err(|error| RecordFailure::Store(Arc::new(error)))?;
        let (generated, budget_reason) = match model {
            ModelCall::Allowed => (self.generator.generate(request).await, None),
            ModelCall::OverBudget => (
                TemplateGenerator.generate(request).await,
                Some(policy::BUDGET_REASON),
            ),
        };
        let generated = generated.map_err(|error| RecordFailure::Generation(Arc::new(error)))?;
        Ok(ReferralMessage {
            customer_email: key.customer_email.clone(),
            message_id: key.message_id.clone(),
            trigger_event_id: features.trigger_event_id.clone(),
            features_version: features.version,
            recommended_service: generated.recommended_service,
            body: generated.body,
            prompt_version: PROMPT_VERSION,
            prompt_hash: short_hash(prompt.user.as_bytes()),
            generator: generated.generator.to_owned(),
            model_id: generated.model_id,
            usage: generated.usage,
            fallback_reason: budget_reason
                .or(generated.fallback_reason)
                .map(str::to_owned),
            trace_id: features.trace.map(|trace| trace.trace_id()),
            created_at: now,
        })
    }

    /// Lets the holder's claim go; a failure to do so only delays the retry to the lease's end.
    async fn release(&self, key: &MessageKey, holder: &Holder, now: DateTime<Utc>) {
        if let Err(error) = self.messages.release(key, holder, now).await {
            tracing::warn!(error = %crate::error_chain(&error), "could not release the claim; it expires with its lease");
        }
    }
}
