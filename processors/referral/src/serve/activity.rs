//! What this process saw go through it, for the page: counters per stage, the recent
//! webhooks with their outcome, and the customers they named. The stores cannot list their
//! customers (DynamoDB would need a scan), so the page shows those this process met.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use referral_domain::enricher::{BatchReport, EnrichCounters};
use referral_domain::orchestrator::StreamCounters;
use referral_domain::redact::mask_emails;
use serde::Serialize;
use serde_json::{Value, json};

/// Webhooks kept for the page; older ones are only in the counters.
pub const WEBHOOKS_SHOWN: usize = 50;
/// Customers kept for the page, the most recently met first.
pub const CUSTOMERS_SHOWN: usize = 50;

#[derive(Debug, Default)]
pub struct Activity {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    ingest: IngestCounters,
    enricher: EnrichCounters,
    orchestrator: StreamCounters,
    webhooks: VecDeque<Webhook>,
    /// Normalised addresses, in clear in memory only: every answer masks them.
    customers: VecDeque<String>,
}

#[derive(Debug, Default, Clone, Copy, Serialize)]
struct IngestCounters {
    #[serde(rename = "2xx")]
    success: u64,
    #[serde(rename = "4xx")]
    refused: u64,
    #[serde(rename = "5xx")]
    failed: u64,
}

#[derive(Debug, Clone, Serialize)]
struct Webhook {
    received_at: DateTime<Utc>,
    status: u16,
    /// The ingest handler's word: `accepted`, `already_accepted`, or its error (with the
    /// field it names).
    ingest: String,
    event_id: Option<String>,
    /// Masked, once the enricher named it.
    customer: Option<String>,
    /// The enricher's outcome (`applied`, `duplicate`, ...), once it handled the event.
    enricher: Option<String>,
}

impl Activity {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A request the ingest handler answered, with its JSON answer (or none).
    pub fn webhook(&self, status: u16, answer: Option<&Value>) {
        let field = |name: &str| {
            answer
                .and_then(|answer| answer.get(name))
                .and_then(Value::as_str)
                .map(mask_emails)
        };
        let refused_field = answer
            .and_then(|answer| answer.pointer("/errors/0/field"))
            .and_then(Value::as_str)
            .map(mask_emails);
        let mut ingest = field("status")
            .or_else(|| field("error"))
            .unwrap_or_else(|| if status < 300 { "accepted" } else { "refused" }.to_owned());
        if let Some(refused_field) = refused_field {
            ingest = format!("{ingest}: {refused_field}");
        }
        let mut state = self.state();
        match status {
            200..=299 => state.ingest.success += 1,
            400..=499 => state.ingest.refused += 1,
            _ => state.ingest.failed += 1,
        }
        state.webhooks.push_front(Webhook {
            received_at: Utc::now(),
            status,
            ingest,
            event_id: field("event_id"),
            customer: None,
            enricher: None,
        });
        state.webhooks.truncate(WEBHOOKS_SHOWN);
    }

    /// An enricher invocation's report: its counters, and each event's outcome on its row.
    pub fn enriched(&self, report: &BatchReport) {
        let mut state = self.state();
        state.enricher.add(&report.counters);
        for message in &report.messages {
            if let Some(email) = &message.customer_email {
                state.customers.retain(|known| known != email);
                state.customers.push_front(email.clone());
            }
            let Some(event_id) = message.event_id.as_deref().map(mask_emails) else {
                continue;
            };
            // The oldest row of the event still waiting (the queue is about in order); a
            // replayed dead letter, which no row waits for, updates the newest.
            let of_event = |row: &Webhook| row.event_id.as_deref() == Some(event_id.as_str());
            let waiting = state
                .webhooks
                .iter()
                .rposition(|row| of_event(row) && row.enricher.is_none());
            let row = waiting.or_else(|| state.webhooks.iter().position(of_event));
            if let Some(row) = row.and_then(|row| state.webhooks.get_mut(row)) {
                row.enricher = Some(message.outcome.label().to_owned());
                row.customer = message.customer_email.as_deref().map(mask_emails);
            }
        }
        state.customers.truncate(CUSTOMERS_SHOWN);
    }

    /// The stream mapping's counters since the process started.
    pub fn orchestrated(&self, counters: StreamCounters) {
        self.state().orchestrator = counters;
    }

    pub fn counters(&self) -> Value {
        let state = self.state();
        json!({
            "ingest": state.ingest,
            "enricher": state.enricher,
            "orchestrator": state.orchestrator,
        })
    }

    pub fn webhooks(&self) -> Value {
        json!(self.state().webhooks)
    }

    /// The customers met, most recent first, in clear: for lookups, never for an answer.
    pub fn customers(&self) -> Vec<String> {
        self.state().customers.iter().cloned().collect()
    }
}

#[cfg(test)]
#[path = "activity_tests.rs"]
mod tests;
