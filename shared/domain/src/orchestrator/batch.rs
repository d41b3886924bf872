//! A batch of change records, as the stream's event-source mapping delivers it: every record
//! handled (messages are keyed by version, so one stuck record need not hold up the
//! customers after it), and delivery resumed from the earliest that must be retried.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Orchestrator, RecordOutcome, SuppressionReason};
use crate::ports::{ChangeRecord, MessageGenerator, MessageStore};
use crate::redact::customer_ref;
use crate::template::TEMPLATE_GENERATOR;

/// Counts of change records, for log lines, metrics and run reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StreamCounters {
    pub records: u64,
    pub created: u64,
    pub created_by_template: u64,
    pub already_created: u64,
    pub skipped: u64,
    pub claimed_elsewhere: u64,
    /// Changes the message policy suppressed, in all and by reason.
    pub suppressed: u64,
    pub suppressed_cooldown: u64,
    pub suppressed_satisfaction: u64,
    pub suppressed_trigger_score: u64,
    /// Messages the template wrote because the day's model budget was spent (alarmed on).
    pub budget_exhausted: u64,
    /// Records left for a retry behind an earlier record of their customer.
    pub deferred: u64,
    /// Records whose handling failed; delivered again.
    pub failed: u64,
    /// Records whose images could not be read (counted by whoever decodes them).
    pub undecodable: u64,
}

impl StreamCounters {
    pub fn count(&mut self, outcome: &RecordOutcome) {
        self.records += 1;
        match outcome {
            RecordOutcome::Created {
                generator,
                over_budget,
                ..
            } => {
                self.created += 1;
                self.created_by_template += u64::from(generator == TEMPLATE_GENERATOR);
                self.budget_exhausted += u64::from(*over_budget);
            }
            RecordOutcome::Suppressed(reason) => {
                self.suppressed += 1;
                *match reason {
                    SuppressionReason::Cooldown => &mut self.suppressed_cooldown,
                    SuppressionReason::Satisfaction => &mut self.suppressed_satisfaction,
                    SuppressionReason::TriggerScore => &mut self.suppressed_trigger_score,
                } += 1;
            }
            RecordOutcome::Deferred => self.deferred += 1,
            RecordOutcome::AlreadyCreated => self.already_created += 1,
            RecordOutcome::Skipped(_) => self.skipped += 1,
            RecordOutcome::ClaimedElsewhere { .. } => self.claimed_elsewhere += 1,
            RecordOutcome::Failed(_) => self.failed += 1,
        }
    }

    pub fn add(&mut self, other: &StreamCounters) {
        self.records += other.records;
        self.created += other.created;
        self.created_by_template += other.created_by_template;
        self.already_created += other.already_created;
        self.skipped += other.skipped;
        self.claimed_elsewhere += other.claimed_elsewhere;
        self.suppressed += other.suppressed;
        self.suppressed_cooldown += other.suppressed_cooldown;
        self.suppressed_satisfaction += other.suppressed_satisfaction;
        self.suppressed_trigger_score += other.suppressed_trigger_score;
        self.budget_exhausted += other.budget_exhausted;
        self.deferred += other.deferred;
        self.failed += other.failed;
        self.undecodable += other.undecodable;
    }
}

/// What became of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchOutcome {
    /// One per record, in order.
    pub outcomes: Vec<RecordOutcome>,
    /// The earliest record that must be delivered again (with every record after it, as
    /// the stream's mapping does); `None` when the batch is done.
    pub resume_from: Option<String>,
    pub counters: StreamCounters,
}

impl<G: MessageGenerator, M: MessageStore> Orchestrator<G, M> {
    /// Handles every record of a batch in order, each in its own span, with one log line
    /// per outcome. Where the policy decides from a customer's earlier decisions (a
    /// cooldown), a customer's records after one that must be retried are deferred with it,
    /// so that its changes are decided in order whatever fails.
    pub async fn handle_batch(&self, records: &[ChangeRecord], now: DateTime<Utc>) -> BatchOutcome {
        let mut outcomes = Vec::with_capacity(records.len());
        let mut counters = StreamCounters::default();
        let mut resume_from = None;
        let in_order = self.config.policy.keeps_customer_state();
        let mut waiting: Vec<&str> = Vec::new();
        for record in records {
            let span = tracing::info_span!("record", sequence_number = %record.sequence_number);
            let outcome = if waiting.contains(&record.customer_email.as_str()) {
                RecordOutcome::Deferred
            } else {
                // Boxed: a record's future (policy, claim, model, record, each an SDK call deep)
                // nests under the Lambda runtime's, beyond the compiler's layout depth.
                let handled = Box::pin(self.handle(record, now));
                tracing::Instrument::instrument(handled, span.clone()).await
            };
            span.in_scope(|| log_outcome(record, &outcome));
            counters.count(&outcome);
            if outcome.needs_retry() {
                if resume_from.is_none() {
                    resume_from = Some(record.sequence_number.clone());
                }
                if in_order {
                    waiting.push(&record.customer_email);
                }
            }
            outcomes.push(outcome);
        }
        BatchOutcome {
            outcomes,
            resume_from,
            counters,
        }
    }
}

/// One line per record: the customer as a hash, never the e-mail; failures at WARN with
/// their error chain (which never holds the prompt or the model's answer).
fn log_outcome(record: &ChangeRecord, outcome: &RecordOutcome) {
    let customer = customer_ref(&record.customer_email);
    match outcome {
        RecordOutcome::Created {
            message_id,
            generator,
            over_budget,
        } => tracing::info!(
            customer,
            message_id,
            generator,
            over_budget,
            outcome = "created",
            "record processed"
        ),
        RecordOutcome::Suppressed(reason) => tracing::info!(
            customer,
            reason = reason.as_str(),
            outcome = "suppressed",
            "record processed"
        ),
        RecordOutcome::Failed(failure) => tracing::warn!(
            customer,
            outcome = "failed",
            error_kind = failure.kind(),
            error = %crate::redact::mask_emails(&crate::error_chain(failure)),
            "record failed; it is delivered again"
        ),
        RecordOutcome::ClaimedElsewhere { expires_at } => tracing::warn!(
            customer,
            outcome = "claimed_elsewhere",
            claim_expires_at = %expires_at,
            "record held by another invocation's claim; it is delivered again"
        ),
        other => tracing::info!(customer, outcome = other.label(), "record processed"),
    }
}
