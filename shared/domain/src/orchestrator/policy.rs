//! The message policy: who is asked for a referral, how often, and at what model cost.
//!
//! Decided per change, before the orchestrator claims it or calls the model:
//! - **satisfaction floor**: no message while the customer's average is below a threshold,
//!   or when the change's trigger event scored at or below another (pure: the new image has
//!   both, so it costs nothing);
//! - **cooldown**: no message within a duration of the customer's last one. Measured on the
//!   trigger events' `occurred_at`, never on processing time, so a replay or a backfill
//!   decides as the first pass did. The last message's time is the customer's *message slot*
//!   in the messages table, taken by one conditional write per change that passed the floor
//!   (no read first); a retry of the change that holds the slot takes it back, so a
//!   redelivery decides as the first delivery did. Paid for only when a cooldown is set.
//! - **model budget**: at most N model calls per UTC day (of processing time: it is a spend
//!   limit) across all invocations, one conditional counter write per model call. Checked
//!   after the claim, so a redelivery finds its decision and spends nothing; past the budget
//!   the template writes the message and it records `budget`.
//!
//! The defaults (nothing set) are the seed's behaviour: every change gets a message, with no
//! extra read or write.

use std::time::Duration;

use chrono::{DateTime, Utc};
use thiserror::Error;

use crate::duration::parse_duration;
use crate::env::{EnvError, Vars};
use crate::event::{MAX_SCORE_MICROS, SCORE_SCALE};
use crate::features::CustomerFeatures;
use crate::ports::{AdapterError, MessageSlot, MessageStore, SlotTaken};

pub const ENV_COOLDOWN: &str = "MESSAGE_COOLDOWN";
pub const ENV_MIN_SATISFACTION_AVG: &str = "MESSAGE_MIN_SATISFACTION_AVG";
pub const ENV_MIN_TRIGGER_SCORE: &str = "MESSAGE_MIN_TRIGGER_SCORE";
pub const ENV_DAILY_CALL_BUDGET: &str = "BEDROCK_DAILY_CALL_BUDGET";
/// The policy's environment variables (blank or unset: that rule is off).
pub const ENV_VARS: &[&str] = &[
    ENV_COOLDOWN,
    ENV_MIN_SATISFACTION_AVG,
    ENV_MIN_TRIGGER_SCORE,
    ENV_DAILY_CALL_BUDGET,
];

/// The `fallback_reason` of a message the template wrote because the budget was spent.
pub const BUDGET_REASON: &str = "budget";

/// Why a change got no message. The words are stored and reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SuppressionReason {
    /// The customer's average satisfaction is below the floor.
    Satisfaction,
    /// The trigger event's own score is at or below the floor.
    TriggerScore,
    /// The customer's last message is within the cooldown.
    Cooldown,
    /// Not the policy's: `referral features recompute` moved the customer to another
    /// lifetime-value band, a change with no new service to refer from.
    Recompute,
    /// Not the policy's: `referral backfill` loaded history, which earns no message.
    Backfill,
}

impl SuppressionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressionReason::Satisfaction => "satisfaction",
            SuppressionReason::TriggerScore => "trigger_score",
            SuppressionReason::Cooldown => "cooldown",
            SuppressionReason::Recompute => "recompute",
            SuppressionReason::Backfill => "backfill",
        }
    }
}

/// What the policy says of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Message,
    Suppressed(SuppressionReason),
}

/// Who writes a message the policy let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelCall {
    /// The configured generator (the model, with the template behind it).
    Allowed,
    /// The day's budget is spent: the template writes it, and it records [`BUDGET_REASON`].
    OverBudget,
}

/// The policy's settings. Every rule is off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessagePolicy {
    /// No message within this long (of trigger-event time) after the customer's last one.
    pub cooldown: Option<Duration>,
    /// No message while the average satisfaction, in millionths, is below this.
    pub min_satisfaction_avg: Option<u32>,
    /// No message when the trigger event's own score, in millionths, is at or below this.
    pub min_trigger_score: Option<u32>,
    /// At most this many model calls per UTC day, across all invocations.
    pub daily_model_budget: Option<u64>,
}

/// A setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SettingError {
    #[error("{0:?} is not a duration: write numbers each followed by a unit, e.g. 7d, 12h, 90m")]
    Duration(String),
    #[error("{0:?} is not a satisfaction score: write a number from 0 to 5, e.g. 3.5")]
    Score(String),
}

/// A cooldown as operators write it (`7d`, `12h`, `90m`); zero is refused (leave it unset).
pub fn parse_cooldown(text: &str) -> Result<Duration, SettingError> {
    parse_duration(text)
        .filter(|cooldown| !cooldown.is_zero())
        .ok_or_else(|| SettingError::Duration(text.to_owned()))
}

/// A score threshold (`3.5`), in the millionths event scores are kept in.
pub fn parse_score(text: &str) -> Result<u32, SettingError> {
    match text.trim().parse::<f64>() {
        // In range 0..=5, so the scaled value fits a u32 without truncation.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Ok(score) if (0.0..=5.0).contains(&score) => {
            Ok(((score * SCORE_SCALE as f64).round() as u32).min(MAX_SCORE_MICROS))
        }
        _ => Err(SettingError::Score(text.to_owned())),
    }
}

/// A score in millionths as operators write it (`3.5`).
pub fn format_score(micros: u32) -> String {
    format!("{}", f64::from(micros) / SCORE_SCALE as f64)
}

impl MessagePolicy {
    /// The policy from the function's environment ([`ENV_VARS`]).
    pub fn from_vars(vars: &Vars<impl Fn(&str) -> Option<String>>) -> Result<Self, EnvError> {
        let invalid =
            |name: &'static str, expected: &'static str, value: String| EnvError::Invalid {
                name,
                expected,
                value,
            };
        let score = |name: &'static str| {
            vars.get(name)
                .map(|value| {
                    parse_score(&value)
                        .map_err(|_| invalid(name, "a satisfaction score from 0 to 5", value))
                })
                .transpose()
        };
        Ok(MessagePolicy {
            cooldown: vars
                .get(ENV_COOLDOWN)
                .map(|value| {
                    parse_cooldown(&value).map_err(|_| {
                        invalid(ENV_COOLDOWN, "a duration above zero, e.g. 7d or 12h", value)
                    })
                })
                .transpose()?,
            min_satisfaction_avg: score(ENV_MIN_SATISFACTION_AVG)?,
            min_trigger_score: score(ENV_MIN_TRIGGER_SCORE)?,
            daily_model_budget: vars
                .get(ENV_DAILY_CALL_BUDGET)
                .map(|value| {
                    value.parse().map_err(|_| {
                        invalid(ENV_DAILY_CALL_BUDGET, "a whole number of calls", value)
                    })
                })
                .transpose()?,
        })
    }

    /// Whether decisions depend on the customer's earlier ones: then a customer's changes
    /// must be decided in order (see the batch's deferral).
    pub fn keeps_customer_state(&self) -> bool {
        self.cooldown.is_some()
    }

    /// The satisfaction floor: a pure function of the change's new image.
    pub fn floor(&self, features: &CustomerFeatures) -> Option<SuppressionReason> {
        if let Some(minimum) = self.min_satisfaction_avg {
            if !features.satisfaction_at_least(u64::from(minimum)) {
                return Some(SuppressionReason::Satisfaction);
            }
        }
        let trigger_score = features.trigger.and_then(|trigger| trigger.score_micros);
        match (self.min_trigger_score, trigger_score) {
            (Some(floor), Some(score)) if score <= floor => Some(SuppressionReason::TriggerScore),
            _ => None,
        }
    }

    /// The slot a change asks for: its version at its trigger event's time (items written
    /// before the trigger's time was kept: their latest event's).
    pub fn slot_of(features: &CustomerFeatures) -> MessageSlot {
        MessageSlot {
            version: features.version,
            at: features
                .trigger
                .map_or(features.last_updated, |trigger| trigger.occurred_at),
        }
    }

    /// The verdict on a change: the floor, then the cooldown (one conditional write, only
    /// when a cooldown is set and the floor let the change through).
    pub async fn decide<M: MessageStore>(
        &self,
        features: &CustomerFeatures,
        messages: &M,
    ) -> Result<Verdict, AdapterError> {
        if let Some(reason) = self.floor(features) {
            return Ok(Verdict::Suppressed(reason));
        }
        let Some(cooldown) = self.cooldown else {
            return Ok(Verdict::Message);
        };
        let taken = messages
            .take_message_slot(&features.customer_email, Self::slot_of(features), cooldown)
            .await?;
        Ok(match taken {
            SlotTaken::Taken => Verdict::Message,
            SlotTaken::Cooling { .. } => Verdict::Suppressed(SuppressionReason::Cooldown),
        })
    }

    /// Who writes a message about to be generated at `now`: one conditional write against
    /// the day's budget, only when a budget is set.
    pub async fn model_call<M: MessageStore>(
        &self,
        messages: &M,
        now: DateTime<Utc>,
    ) -> Result<ModelCall, AdapterError> {
        let Some(limit) = self.daily_model_budget else {
            return Ok(ModelCall::Allowed);
        };
        Ok(
            if messages.spend_model_call(now.date_naive(), limit).await? {
                ModelCall::Allowed
            } else {
                ModelCall::OverBudget
            },
        )
    }

    /// What [`Self::decide`] and [`Self::model_call`] would answer, from the state as read
    /// (`slot`: the customer's message slot; `calls_today`: the day's model calls), with
    /// nothing written.
    pub fn preview(
        &self,
        features: &CustomerFeatures,
        slot: Option<MessageSlot>,
        calls_today: u64,
    ) -> (Verdict, ModelCall) {
        let verdict = match (self.floor(features), self.cooldown, slot) {
            (Some(reason), _, _) => Verdict::Suppressed(reason),
            (None, Some(cooldown), Some(holder))
                if !holder.yields_to(&Self::slot_of(features), cooldown) =>
            {
                Verdict::Suppressed(SuppressionReason::Cooldown)
            }
            _ => Verdict::Message,
        };
        let model = match self.daily_model_budget {
            Some(limit) if calls_today >= limit => ModelCall::OverBudget,
            _ => ModelCall::Allowed,
        };
        (verdict, model)
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
