//! What `referral run` prints: a readable summary, or one JSON object with `--json`.

use std::fmt::Write;

use referral_domain::features::{CustomerFeatures, FeaturesView};
use referral_domain::ports::{ReferralMessage, Suppression};
use referral_domain::redact::mask_email;
use serde::Serialize;

use crate::pipeline::{RejectedEvent, RunReport, RunResults};

/// The `--json` document. `features` and `messages` use the tables' attribute names.
#[derive(Debug, Serialize)]
pub struct JsonReport<'a> {
    pub features: Vec<FeaturesView<'a>>,
    pub messages: Vec<MessageView<'a>>,
    /// Changes the message policy gave no message, with the reason.
    pub suppressed: Vec<SuppressedView<'a>>,
    pub rejected: &'a [RejectedEvent],
    pub summary: Summary,
}

#[derive(Debug, Serialize)]
pub struct MessageView<'a> {
    #[serde(rename = "customerEmail")]
    pub customer_email: &'a str,
    pub trigger_event_id: Option<&'a str>,
    pub features_version: u64,
    pub recommended_service: &'a str,
    pub body: &'a str,
    pub prompt_version: u32,
    pub prompt_hash: &'a str,
    pub generator: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct SuppressedView<'a> {
    #[serde(rename = "customerEmail")]
    pub customer_email: &'a str,
    pub trigger_event_id: Option<&'a str>,
    pub features_version: u64,
    pub reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<&'a str>,
}

impl<'a> From<&'a Suppression> for SuppressedView<'a> {
    fn from(suppression: &'a Suppression) -> Self {
        SuppressedView {
            customer_email: &suppression.customer_email,
            trigger_event_id: suppression.trigger_event_id.as_deref(),
            features_version: suppression.features_version,
            reason: &suppression.reason,
            trace_id: suppression.trace_id.as_deref(),
        }
    }
}

impl<'a> From<&'a ReferralMessage> for MessageView<'a> {
    fn from(message: &'a ReferralMessage) -> Self {
        MessageView {
            customer_email: &message.customer_email,
            trigger_event_id: message.trigger_event_id.as_deref(),
            features_version: message.features_version,
            recommended_service: &message.recommended_service,
            body: &message.body,
            prompt_version: message.prompt_version,
            prompt_hash: &message.prompt_hash,
            generator: &message.generator,
            fallback_reason: message.fallback_reason.as_deref(),
            trace_id: message.trace_id.as_deref(),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Summary {
    pub events: u64,
    pub customers: u64,
    pub applied: u64,
    pub duplicates: u64,
    pub conflicting_duplicates: u64,
    /// Applied although older than what their customer's item keeps (found absent from the
    /// archive).
    pub applied_late: u64,
    pub unprovable: u64,
    pub ignored: u64,
    pub rejected: u64,
    /// Dead-lettered because their customer's stored item does not decode.
    pub quarantined: u64,
    pub unprocessed: u64,
    /// Stream records that failed every delivery: changes without their message.
    pub stream_failures: u64,
    pub messages: u64,
    /// Changes the message policy suppressed (each listed in `suppressed`).
    pub suppressed: u64,
    pub batches: u64,
}

impl Summary {
    pub fn of(report: &RunReport, results: &RunResults) -> Self {
        Summary {
            events: report.events,
            customers: results.features.len() as u64,
            applied: report.enrich.applied,
            duplicates: report.enrich.duplicate,
            conflicting_duplicates: report.enrich.conflicting_duplicate,
            applied_late: report.enrich.applied_late,
            unprovable: report.enrich.unprovable,
            ignored: report.enrich.ignored,
            rejected: report.enrich.rejected,
            quarantined: report.enrich.quarantined,
            unprocessed: report.unprocessed.len() as u64,
            stream_failures: report.stream.failed,
            messages: results.messages.len() as u64,
            suppressed: results.suppressed.len() as u64,
            batches: report.batches,
        }
    }
}

pub fn json(report: &RunReport, results: &RunResults) -> Result<String, serde_json::Error> {
    let document = JsonReport {
        features: results
            .features
            .iter()
            .map(CustomerFeatures::view)
            .collect(),
        messages: results.messages.iter().map(MessageView::from).collect(),
        suppressed: results
            .suppressed
            .iter()
            .map(SuppressedView::from)
            .collect(),
        rejected: &report.rejected,
        summary: Summary::of(report, results),
    };
    serde_json::to_string_pretty(&document)
}

/// The human summary. Addresses are masked: the output is meant to be pasted into tickets.
pub fn text(report: &RunReport, results: &RunResults, mode: &str) -> String {
    let summary = Summary::of(report, results);
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored below for that reason.
    let _ = writeln!(
        out,
        "referral run: {} events in {} batches, {mode}\n",
        summary.events, summary.batches
    );
    let rows = [
        ("customers", summary.customers),
        ("applied", summary.applied),
        ("  late (older than the item keeps)", summary.applied_late),
        ("duplicates", summary.duplicates),
        (
            "  conflicting (same id, other content)",
            summary.conflicting_duplicates,
        ),
        (
            "unprovable (before a sealed item's floor)",
            summary.unprovable,
        ),
        ("ignored (other event types)", summary.ignored),
        ("rejected", summary.rejected),
        (
            "quarantined (stored item does not decode)",
            summary.quarantined,
        ),
        ("unprocessed (failed every delivery)", summary.unprocessed),
        (
            "stream records failed (no message)",
            summary.stream_failures,
        ),
        ("messages", summary.messages),
        ("suppressed (message policy)", summary.suppressed),
        ("  cooldown", report.stream.suppressed_cooldown),
        (
            "  satisfaction below the floor",
            report.stream.suppressed_satisfaction,
        ),
        (
            "  trigger score at or below the floor",
            report.stream.suppressed_trigger_score,
        ),
        (
            "template (past the model budget)",
            report.stream.budget_exhausted,
        ),
    ];
    for (label, count) in rows {
        if count > 0 || !label.starts_with(' ') && !label.contains('(') {
            let _ = writeln!(out, "  {label:<40} {count:>6}");
        }
    }
    if !report.rejected.is_empty() {
        let _ = writeln!(out, "\nRejected:");
        for rejected in &report.rejected {
            let id = rejected.event_id.as_deref().unwrap_or("-");
            let _ = writeln!(out, "  {}  [{id}]  {}", rejected.source, rejected.error);
        }
    }
    if !report.unprocessed.is_empty() {
        let _ = writeln!(out, "\nUnprocessed:");
        for failed in &report.unprocessed {
            let _ = writeln!(out, "  {}  {}", failed.source, failed.error);
        }
    }
    if !results.features.is_empty() {
        let _ = writeln!(
            out,
            "\nCustomers:\n  {:<28} {:>8} {:>8}  {:<6}  {:<20} {:>7}",
            "customer", "services", "avg", "value", "location", "version"
        );
        for features in &results.features {
            let property = &features.property_features;
            let location = [property.city.as_deref(), property.state.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(
                out,
                "  {:<28} {:>8} {:>8.2}  {:<6}  {:<20} {:>7}",
                mask_email(&features.customer_email),
                features.service_count,
                features.satisfaction_avg,
                features.lifetime_value.as_str(),
                location,
                features.version
            );
        }
    }
    if !results.messages.is_empty() {
        let _ = writeln!(out, "\nMessages:");
        for message in &results.messages {
            let _ = writeln!(
                out,
                "  {} v{} [{} via {}]\n    {}",
                mask_email(&message.customer_email),
                message.features_version,
                message.recommended_service,
                message.generator,
                message.body
            );
        }
    }
    let _ = writeln!(
        out,
        "\nFull features and messages (with the prompt's version and hash): add --json."
    );
    out
}
