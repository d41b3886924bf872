//! A batch of change records, as the stream's event-source mapping delivers it: every record
//! handled (messages are keyed by version, so one stuck record need not hold up the
//! customers after it), and delivery resumed from the earliest that must be retried.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Orchestrator, RecordOutcome};
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
    /// Records whose handling failed; delivered again.
    pub failed: u64,
    /// Records whose images could not be read (counted by whoever decodes them).
    pub undecodable: u64,
}

impl StreamCounters {
    pub fn count(&mut self, outcome: &RecordOutcome) {
        self.records += 1;
        match outcome {
            RecordOutcome::Created { generator, .. } => {
                self.created += 1;
                self.created_by_template += u64::from(generator == TEMPLATE_GENERATOR);
            }
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
    /// per outcome.
    pub async fn handle_batch(&self, records: &[ChangeRecord], now: DateTime<Utc>) -> BatchOutcome {
        let mut outcomes = Vec::with_capacity(records.len());
        let mut counters = StreamCounters::default();
        let mut resume_from = None;
        for record in records {
            let span = tracing::info_span!("record", sequence_number = %record.sequence_number);
            let outcome =
                tracing::Instrument::instrument(self.handle(record, now), span.clone()).await;
            span.in_scope(|| log_outcome(record, &outcome));
            counters.count(&outcome);
            if outcome.needs_retry() && resume_from.is_none() {
                resume_from = Some(record.sequence_number.clone());
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
        } => tracing::info!(
            customer,
            message_id,
            generator,
            outcome = "created",
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
