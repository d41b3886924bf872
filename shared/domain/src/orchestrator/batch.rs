//! A batch of change records, as the stream's event-source mapping delivers it: every record
//! handled (messages are keyed by version, so one stuck record need not hold up the
//! customers after it), and delivery resumed from the earliest that must be retried. Near
//! the invocation's deadline no new record is started: the rest are delivered again.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::time::Instant;

use super::policy::BUDGET_REASON;
use super::{Orchestrator, RecordOutcome, SuppressionReason};
use crate::ports::{ChangeRecord, MessageGenerator, MessageStore};
use crate::redact::customer_ref;
use crate::template::TEMPLATE_GENERATOR;
use crate::trace::TraceContext;

/// Counts of change records, for log lines, metrics and run reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StreamCounters {
    pub records: u64,
    pub created: u64,
    pub created_by_template: u64,
    pub already_created: u64,
    pub skipped: u64,
    pub claimed_elsewhere: u64,
    /// Messages the fallback wrote because the model could not (throttled, denied, ...).
    pub fallbacks: u64,
    /// Records handed back because the model was throttling (the retry policy); delivered
    /// again.
    pub throttled: u64,
    /// Records not started because the invocation's deadline was near; delivered again.
    pub not_attempted: u64,
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
    /// Of those, the records set aside on the failure destination so that the shard goes
    /// on (alarmed on); the rest are delivered again.
    pub quarantined: u64,
}

impl StreamCounters {
    /// The line a delivery of `records` ends with, in a Lambda and in a local run alike: the
    /// counters, and one span link per record, as OpenTelemetry links a batch to the traces
    /// of its messages (without an OpenTelemetry SDK, a field of the line).
    pub fn log_batch(&self, records: &[ChangeRecord]) {
        let links = crate::trace::links(records.iter().map(ChangeRecord::trace));
        tracing::info!(
            links,
            records = self.records,
            quarantined = self.quarantined,
            created = self.created,
            created_by_template = self.created_by_template,
            already_created = self.already_created,
            skipped = self.skipped,
            claimed_elsewhere = self.claimed_elsewhere,
            fallbacks = self.fallbacks,
            throttled = self.throttled,
            not_attempted = self.not_attempted,
            suppressed = self.suppressed,
            budget_exhausted = self.budget_exhausted,
            deferred = self.deferred,
            failed = self.failed,
            undecodable = self.undecodable,
            "stream batch processed"
        );
    }

    pub fn count(&mut self, outcome: &RecordOutcome) {
        self.records += 1;
        match outcome {
            RecordOutcome::Created {
                generator,
                fallback_reason,
                ..
            } => {
                self.created += 1;
                self.created_by_template += u64::from(generator == TEMPLATE_GENERATOR);
                let over_budget = fallback_reason.as_deref() == Some(BUDGET_REASON);
                self.budget_exhausted += u64::from(over_budget);
                self.fallbacks += u64::from(fallback_reason.is_some() && !over_budget);
            }
            RecordOutcome::Suppressed(reason) => {
                self.suppressed += 1;
                let by_reason = match reason {
                    SuppressionReason::Cooldown => &mut self.suppressed_cooldown,
                    SuppressionReason::Satisfaction => &mut self.suppressed_satisfaction,
                    SuppressionReason::TriggerScore => &mut self.suppressed_trigger_score,
                    // Recorded by the recompute and backfill tools, never by a record's handling.
                    SuppressionReason::Recompute | SuppressionReason::Backfill => return,
                };
                *by_reason += 1;
            }
            RecordOutcome::Deferred => self.deferred += 1,
            RecordOutcome::AlreadyCreated => self.already_created += 1,
            RecordOutcome::Skipped(_) => self.skipped += 1,
            RecordOutcome::ClaimedElsewhere { .. } => self.claimed_elsewhere += 1,
            RecordOutcome::Throttled => self.throttled += 1,
            RecordOutcome::NotAttempted => self.not_attempted += 1,
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
        self.fallbacks += other.fallbacks;
        self.throttled += other.throttled;
        self.not_attempted += other.not_attempted;
        self.suppressed += other.suppressed;
        self.suppressed_cooldown += other.suppressed_cooldown;
        self.suppressed_satisfaction += other.suppressed_satisfaction;
        self.suppressed_trigger_score += other.suppressed_trigger_score;
        self.budget_exhausted += other.budget_exhausted;
        self.deferred += other.deferred;
        self.failed += other.failed;
        self.undecodable += other.undecodable;
        self.quarantined += other.quarantined;
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

/// When an invocation must have answered, and how long before that no new record may start:
/// a record can take a model call and a few writes, so the margin covers the model's
/// timeout and more. Measured on tokio's clock, so tests can move time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    at: Instant,
    margin: Duration,
}

impl Deadline {
    pub fn new(at: Instant, margin: Duration) -> Self {
        Deadline { at, margin }
    }

    /// A deadline `remaining` from now (what a Lambda invocation is told it has left).
    pub fn after(remaining: Duration, margin: Duration) -> Self {
        Deadline::new(Instant::now() + remaining, margin)
    }

    /// Whether starting another record could run past the deadline.
    pub fn is_near(&self) -> bool {
        Instant::now() + self.margin >= self.at
    }
}

impl<G: MessageGenerator, M: MessageStore> Orchestrator<G, M> {
    /// Handles every record of a batch in order, each in its own span, with one log line
    /// per outcome. Where the policy decides from a customer's earlier decisions (a
    /// cooldown), a customer's records after one that must be retried are deferred with it,
    /// so that its changes are decided in order whatever fails.
    pub async fn handle_batch(&self, records: &[ChangeRecord], now: DateTime<Utc>) -> BatchOutcome {
        self.handle_batch_until(records, now, None).await
    }

    /// [`Self::handle_batch`], starting no record once `deadline` is near: those left are
    /// [`RecordOutcome::NotAttempted`] and delivery resumes from the first of them at the
    /// latest.
    pub async fn handle_batch_until(
        &self,
        records: &[ChangeRecord],
        now: DateTime<Utc>,
        deadline: Option<Deadline>,
    ) -> BatchOutcome {
        let mut outcomes = Vec::with_capacity(records.len());
        let mut counters = StreamCounters::default();
        let mut resume_from = None;
        let in_order = self.config.policy.keeps_customer_state();
        let mut waiting: Vec<&str> = Vec::new();
        for (index, record) in records.iter().enumerate() {
            if deadline.is_some_and(|deadline| deadline.is_near()) {
                tracing::warn!(
                    first_sequence_number = %record.sequence_number,
                    records_left = records.len() - index,
                    "invocation deadline near; the records left are delivered again"
                );
                for _ in index..records.len() {
                    counters.count(&RecordOutcome::NotAttempted);
                    outcomes.push(RecordOutcome::NotAttempted);
                }
                resume_from.get_or_insert_with(|| record.sequence_number.clone());
                break;
            }
            let trace_id = record.trace().map(TraceContext::trace_id);
            let span = tracing::info_span!(
                "record",
                sequence_number = %record.sequence_number,
                trace_id = trace_id.as_deref()
            );
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
    let trace_id = record.trace().map(TraceContext::trace_id);
    let trace_id = trace_id.as_deref();
    match outcome {
        RecordOutcome::Created {
            message_id,
            generator,
            fallback_reason,
        } => tracing::info!(
            customer,
            trace_id,
            message_id,
            generator,
            fallback_reason,
            outcome = "created",
            "record processed"
        ),
        RecordOutcome::Throttled => tracing::warn!(
            customer,
            trace_id,
            outcome = "throttled",
            "model throttling; record handed back to be delivered again"
        ),
        RecordOutcome::Suppressed(reason) => tracing::info!(
            customer,
            trace_id,
            reason = reason.as_str(),
            outcome = "suppressed",
            "record processed"
        ),
        RecordOutcome::Failed(failure) => tracing::warn!(
            customer,
            trace_id,
            outcome = "failed",
            error_kind = failure.kind(),
            error = %crate::redact::mask_emails(&crate::error_chain(failure)),
            "record failed; it is delivered again"
        ),
        RecordOutcome::ClaimedElsewhere { expires_at } => tracing::warn!(
            customer,
            trace_id,
            outcome = "claimed_elsewhere",
            claim_expires_at = %expires_at,
            "record held by another invocation's claim; it is delivered again"
        ),
        other => tracing::info!(
            customer,
            trace_id,
            outcome = other.label(),
            "record processed"
        ),
    }
}
