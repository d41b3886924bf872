//! The orchestrator core: change records in, at most one referral message per change out.
//!
//! A change earns a message only when its write applied new service events. The message
//! is claimed before the generator runs, so a redelivered record never calls the model
//! twice, and completed afterwards.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::digits::padded_id;
use crate::features::CustomerFeatures;
use crate::ports::{
    AdapterError, ChangeKind, ChangeRecord, Claim, GenerationRequest, MessageGenerator, MessageKey,
    MessageStore, ReferralMessage,
};
use crate::prompt::build_prompt;
use crate::redact::short_hash;

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
        generator: &'static str,
    },
    /// The message of this change exists already: a redelivery.
    AlreadyCreated,
    /// A live claim is held by another invocation; retry the record later.
    ClaimedElsewhere {
        expires_at: DateTime<Utc>,
    },
    Skipped(SkipReason),
    /// The message store failed; retry the record later.
    Failed {
        kind: &'static str,
        detail: String,
    },
}

impl RecordOutcome {
    /// Whether the record must be delivered again.
    pub fn needs_retry(&self) -> bool {
        matches!(
            self,
            RecordOutcome::ClaimedElsewhere { .. } | RecordOutcome::Failed { .. }
        )
    }

    pub fn label(&self) -> &'static str {
        match self {
            RecordOutcome::Created { .. } => "created",
            RecordOutcome::AlreadyCreated => "already_created",
            RecordOutcome::ClaimedElsewhere { .. } => "claimed_elsewhere",
            RecordOutcome::Skipped(_) => "skipped",
            RecordOutcome::Failed { .. } => "failed",
        }
    }
}

impl From<AdapterError> for RecordOutcome {
    fn from(error: AdapterError) -> Self {
        RecordOutcome::Failed {
            kind: error.kind(),
            detail: error.to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrchestratorConfig {
    /// How long a claim protects a generation in progress; after that a crashed holder's
    /// claim may be taken over. Keep it above the function's timeout.
    pub claim_lease: Duration,
}

impl Default for OrchestratorConfig {
    fn default() -> Self {
        OrchestratorConfig {
            claim_lease: Duration::from_secs(300),
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
/// latest as its trigger, so a new image with a trigger earns a message. Where an old image
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
        match self
            .messages
            .claim(&key, now, self.config.claim_lease)
            .await
        {
            Ok(Claim::Acquired) => {}
            Ok(Claim::Completed) => return RecordOutcome::AlreadyCreated,
            Ok(Claim::InProgress { expires_at }) => {
                return RecordOutcome::ClaimedElsewhere { expires_at };
            }
            Err(error) => return error.into(),
        }

        let prompt = build_prompt(Some(features));
        let generated = self
            .generator
            .generate(GenerationRequest {
                features: Some(features),
                prompt: &prompt,
            })
            .await;
        let generated = match generated {
            Ok(generated) => generated,
            // Generators meant for production wrap a fallback; a bare one that fails
            // leaves the claim to expire and the record to be retried.
            Err(error) => {
                return RecordOutcome::Failed {
                    kind: error.kind(),
                    detail: error.to_string(),
                };
            }
        };
        let created = RecordOutcome::Created {
            message_id: key.message_id.clone(),
            generator: generated.generator,
        };
        let message = ReferralMessage {
            customer_email: key.customer_email,
            message_id: key.message_id,
            trigger_event_id: features.trigger_event_id.clone(),
            features_version: features.version,
            recommended_service: generated.recommended_service,
            body: generated.body,
            prompt_hash: short_hash(prompt.user.as_bytes()),
            prompt: prompt.user,
            generator: generated.generator.to_owned(),
            model_id: generated.model_id,
            usage: generated.usage,
            created_at: now,
        };
        match self.messages.complete(message).await {
            Ok(()) => created,
            Err(error) => error.into(),
        }
    }

    /// Handles records in order and stops at the first that must be retried, as a stream
    /// consumer must: later records of the shard wait until it succeeds. Returns the
    /// outcomes of the records handled, the last one being the failure if any.
    pub async fn handle_in_order(
        &self,
        records: &[ChangeRecord],
        now: DateTime<Utc>,
    ) -> Vec<RecordOutcome> {
        let mut outcomes = Vec::with_capacity(records.len());
        for record in records {
            let outcome = self.handle(record, now).await;
            let stop = outcome.needs_retry();
            outcomes.push(outcome);
            if stop {
                break;
            }
        }
        outcomes
    }
}
