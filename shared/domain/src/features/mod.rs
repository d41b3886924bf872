//! `CustomerFeatures` and the fold of service events into it.
//!
//! The features of a customer are a pure function of the *set* of distinct events applied:
//! every aggregate is order-independent (integer sums, counts, max, min) and every
//! "latest value" is chosen by the event's [`EventKey`], never by arrival order.

mod fold;
mod memory;
pub mod rfc3339;
mod rule;
mod stored;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::{SCORE_SCALE, ServiceEvent};
use crate::trace::TraceContext;

pub use fold::{
    ArchiveView, Disposition, Fold, archive_questions, fold_events, fold_events_with, has_new,
};
pub use memory::{
    ARCHIVED_EVENT_BYTES, AppliedMemory, ArchiveAnswers, ArchiveLayout, ArchivedEvent,
    ArchivedKnowledge, ContentTag, IdHash, MemoryError, MemoryLimits, Recall, SplitPlan,
};
pub use rule::{BandMove, LifetimeValueRule, RuleError, Threshold};

/// Satisfaction assumed while a customer has no score (DESIGN.md).
pub const DEFAULT_SATISFACTION_MICROS: u64 = 3_500_000;

/// Orders events for "latest wins" decisions: by `occurred_at`, ties broken by the larger id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventKey {
    pub occurred_at: DateTime<Utc>,
    pub event_id: Arc<str>,
}

impl EventKey {
    pub fn of(event: &ServiceEvent) -> Self {
        EventKey {
            occurred_at: event.occurred_at,
            event_id: event.event_id.clone(),
        }
    }
}

/// Whether the mean of `count` scores summing to `sum_micros` (3.5 when there are none) is
/// at least `threshold_micros`: integers, so 3.5 is exactly 3.5.
fn average_at_least(sum_micros: u64, count: u64, threshold_micros: u64) -> bool {
    match count {
        0 => DEFAULT_SATISFACTION_MICROS >= threshold_micros,
        n => u128::from(sum_micros) >= u128::from(threshold_micros) * u128::from(n),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LifetimeValue {
    High,
    Medium,
    Low,
}

impl LifetimeValue {
    pub fn as_str(self) -> &'static str {
        match self {
            LifetimeValue::High => "high",
            LifetimeValue::Medium => "medium",
            LifetimeValue::Low => "low",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PropertyFeatures {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub property_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub square_feet: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub year_built: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pest_issues: Option<Vec<String>>,
}

/// For each "latest wins" field, the key of the event its value came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSources {
    pub customer_name: Option<EventKey>,
    pub city: Option<EventKey>,
    pub state: Option<EventKey>,
    pub zip: Option<EventKey>,
    pub property_type: Option<EventKey>,
    pub square_feet: Option<EventKey>,
    pub year_built: Option<EventKey>,
    pub pest_issues: Option<EventKey>,
}

/// One customer's item in `CustomerFeatures`: the features DESIGN.md names, then the
/// bookkeeping that keeps the fold exact, idempotent and order-independent. Its stored form
/// (attribute names, compact encodings, and the migration of items older code wrote) is in
/// `stored.rs`.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerFeatures {
    pub customer_email: String,
    pub satisfaction_avg: f64,
    pub service_count: u64,
    pub lifetime_value: LifetimeValue,
    pub property_features: PropertyFeatures,
    pub first_seen: DateTime<Utc>,
    pub last_updated: DateTime<Utc>,
    pub version: u64,

    pub customer_name: Option<String>,
    pub score_sum_micros: u64,
    pub score_count: u64,
    /// The largest `services_count` any applied event carried (0 when none did).
    pub services_count_hint: u64,
    /// Distinct service events ever applied, including those the memory let go.
    pub events_applied: u64,
    /// What tells a redelivered event from a new one (see [`AppliedMemory`]).
    pub memory: AppliedMemory,
    pub field_sources: FieldSources,
    /// The latest event applied by the write that produced this version.
    pub trigger_event_id: Option<String>,
    /// What the message policy judges that change by: when its trigger event occurred and
    /// the score it carried. `None` on items written before it was kept.
    pub trigger: Option<Trigger>,
    /// Set on the item of a customer who came back after `referral customers forget`: events
    /// that occurred at or before it were the erased customer's and are dropped, so that a
    /// redelivery cannot bring the erased data back.
    pub erased_through: Option<DateTime<Utc>>,
    /// The trace of the trigger event (the latest this write applied), as its queue message
    /// carried it: the stream record takes it to the orchestrator and the message. `None`
    /// on items written before traces were kept, and when the event came without one.
    pub trace: Option<TraceContext>,
}

/// The trigger event of a write, as the message policy needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trigger {
    pub occurred_at: DateTime<Utc>,
    /// Its satisfaction score, in millionths (`None`: the event carried none).
    pub score_micros: Option<u32>,
}

impl CustomerFeatures {
    fn first(event: &ServiceEvent) -> Self {
        CustomerFeatures {
            customer_email: event.customer.email.clone(),
            satisfaction_avg: 0.0,
            service_count: 0,
            lifetime_value: LifetimeValue::Low,
            property_features: PropertyFeatures::default(),
            first_seen: event.occurred_at,
            last_updated: event.occurred_at,
            version: 0,
            customer_name: None,
            score_sum_micros: 0,
            score_count: 0,
            services_count_hint: 0,
            events_applied: 0,
            memory: AppliedMemory::default(),
            field_sources: FieldSources::default(),
            trigger_event_id: None,
            trigger: None,
            erased_through: None,
            trace: None,
        }
    }

    /// Whether the average satisfaction (3.5 while there is no score) is at least
    /// `threshold_micros`, compared exactly on the integer sum.
    pub fn satisfaction_at_least(&self, threshold_micros: u64) -> bool {
        average_at_least(self.score_sum_micros, self.score_count, threshold_micros)
    }

    /// True when at least one satisfaction score has been applied.
    pub fn has_satisfaction_score(&self) -> bool {
        self.score_count > 0
    }

    /// Folds one new event's values in; remembering its id is the caller's part.
    fn absorb(&mut self, event: &ServiceEvent, key: &EventKey) {
        self.events_applied += 1;
        if let Some(micros) = event.service.as_ref().and_then(|s| s.satisfaction_micros) {
            self.score_sum_micros += u64::from(micros);
            self.score_count += 1;
        }
        self.services_count_hint = self
            .services_count_hint
            .max(event.services_count.unwrap_or(0));
        self.first_seen = self.first_seen.min(event.occurred_at);
        self.last_updated = self.last_updated.max(event.occurred_at);

        let sources = &mut self.field_sources;
        let property = &mut self.property_features;
        let customer = &event.customer;
        latest_wins(
            key,
            &mut sources.customer_name,
            &mut self.customer_name,
            &customer.name,
        );
        if let Some(address) = &customer.address {
            latest_wins(key, &mut sources.city, &mut property.city, &address.city);
            latest_wins(key, &mut sources.state, &mut property.state, &address.state);
            latest_wins(key, &mut sources.zip, &mut property.zip, &address.zip);
        }
        if let Some(info) = &event.property {
            let kind = &info.property_type;
            latest_wins(
                key,
                &mut sources.property_type,
                &mut property.property_type,
                kind,
            );
            latest_wins(
                key,
                &mut sources.square_feet,
                &mut property.square_feet,
                &info.square_feet,
            );
            latest_wins(
                key,
                &mut sources.year_built,
                &mut property.year_built,
                &info.year_built,
            );
            latest_wins(
                key,
                &mut sources.pest_issues,
                &mut property.pest_issues,
                &info.pest_issues,
            );
        }
    }

    fn refresh_derived(&mut self, rule: &LifetimeValueRule) {
        self.satisfaction_avg = match self.score_count {
            0 => DEFAULT_SATISFACTION_MICROS as f64 / SCORE_SCALE as f64,
            // Dividing the integer sum first keeps e.g. three scores of 4.1 at exactly 4.1.
            n => (self.score_sum_micros as f64 / n as f64) / SCORE_SCALE as f64,
        };
        self.service_count = self.events_applied.max(self.services_count_hint);
        self.lifetime_value =
            rule.classify(self.service_count, self.score_sum_micros, self.score_count);
    }

    /// Roughly what the item holds in memory, for caches that bound themselves in bytes.
    pub fn approximate_bytes(&self) -> usize {
        let property = &self.property_features;
        let texts = [
            Some(self.customer_email.as_str()),
            self.customer_name.as_deref(),
            self.trigger_event_id.as_deref(),
            property.city.as_deref(),
            property.state.as_deref(),
            property.zip.as_deref(),
            property.property_type.as_deref(),
        ];
        let pests: usize = property
            .pest_issues
            .iter()
            .flatten()
            .map(|pest| pest.len() + 24)
            .sum();
        size_of::<Self>()
            + texts.iter().flatten().map(|text| text.len()).sum::<usize>()
            + pests
            + self.memory.len() * 24
            + size_of_val(self.memory.pending())
    }
}

/// The features as their consumers see them: the table's attribute names, no bookkeeping.
/// Every property key is present (`null` when unknown) so readers get a fixed shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeaturesView<'a> {
    #[serde(rename = "customerEmail")]
    pub customer_email: &'a str,
    pub satisfaction_avg: f64,
    pub service_count: u64,
    pub lifetime_value: LifetimeValue,
    pub property_features: PropertyView<'a>,
    #[serde(with = "rfc3339")]
    pub first_seen: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub last_updated: DateTime<Utc>,
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PropertyView<'a> {
    pub city: Option<&'a str>,
    pub state: Option<&'a str>,
    pub zip: Option<&'a str>,
    pub property_type: Option<&'a str>,
    pub square_feet: Option<u64>,
    pub year_built: Option<u16>,
    pub pest_issues: Option<&'a [String]>,
}

impl CustomerFeatures {
    pub fn view(&self) -> FeaturesView<'_> {
        let property = &self.property_features;
        FeaturesView {
            customer_email: &self.customer_email,
            satisfaction_avg: self.satisfaction_avg,
            service_count: self.service_count,
            lifetime_value: self.lifetime_value,
            property_features: PropertyView {
                city: property.city.as_deref(),
                state: property.state.as_deref(),
                zip: property.zip.as_deref(),
                property_type: property.property_type.as_deref(),
                square_feet: property.square_feet,
                year_built: property.year_built,
                pest_issues: property.pest_issues.as_deref(),
            },
            first_seen: self.first_seen,
            last_updated: self.last_updated,
            version: self.version,
        }
    }
}

/// Sets a field from an event only when that event is later than the one the current
/// value came from, so the result does not depend on the order events are folded in.
fn latest_wins<T: Clone>(
    key: &EventKey,
    source: &mut Option<EventKey>,
    slot: &mut Option<T>,
    offered: &Option<T>,
) {
    let Some(value) = offered else { return };
    if source.as_ref().is_some_and(|current| current >= key) {
        return;
    }
    *slot = Some(value.clone());
    *source = Some(key.clone());
}
