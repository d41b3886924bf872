//! `CustomerFeatures` and the fold of service events into it.
//!
//! The features of a customer are a pure function of the *set* of distinct events applied:
//! every aggregate is order-independent (integer sums, counts, max, min) and every
//! "latest value" is chosen by the event's [`EventKey`], never by arrival order.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::event::{SCORE_SCALE, ServiceEvent};

/// Satisfaction assumed while a customer has no score (DESIGN.md).
pub const DEFAULT_SATISFACTION_MICROS: u64 = 3_500_000;
const HIGH_VALUE_MIN_SERVICES: u64 = 6;
const HIGH_VALUE_MIN_SATISFACTION_MICROS: u64 = 4_000_000;
const MEDIUM_VALUE_MIN_SERVICES: u64 = 3;
const MEDIUM_VALUE_MIN_SATISFACTION_MICROS: u64 = 3_500_000;

/// How many applied event ids an item remembers. Each costs ~60 bytes in the DynamoDB item,
/// so the default keeps the set near 60 KB, well below the 400 KB item limit.
pub const DEFAULT_MAX_APPLIED_IDS: usize = 1000;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LifetimeValue {
    High,
    Medium,
    Low,
}

impl LifetimeValue {
    /// Bands from DESIGN.md, compared on integer millionths so 3.5 and 4.0 are exact.
    pub fn classify(service_count: u64, score_sum_micros: u64, score_count: u64) -> Self {
        let average_at_least = |threshold: u64| match score_count {
            0 => DEFAULT_SATISFACTION_MICROS >= threshold,
            n => u128::from(score_sum_micros) >= u128::from(threshold) * u128::from(n),
        };
        if service_count >= HIGH_VALUE_MIN_SERVICES
            && average_at_least(HIGH_VALUE_MIN_SATISFACTION_MICROS)
        {
            LifetimeValue::High
        } else if service_count >= MEDIUM_VALUE_MIN_SERVICES
            || average_at_least(MEDIUM_VALUE_MIN_SATISFACTION_MICROS)
        {
            LifetimeValue::Medium
        } else {
            LifetimeValue::Low
        }
    }

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

/// What the item remembers of an applied event: enough to tell a conflicting duplicate and
/// to decide which ids to forget first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppliedEvent {
    pub occurred_at: DateTime<Utc>,
    pub content_hash: u64,
}

/// For each "latest wins" field, the key of the event its value came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FieldSources {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_name: Option<EventKey>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<EventKey>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<EventKey>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zip: Option<EventKey>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub property_type: Option<EventKey>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub square_feet: Option<EventKey>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub year_built: Option<EventKey>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pest_issues: Option<EventKey>,
}

/// One customer's item in `CustomerFeatures`: the features DESIGN.md names, then the
/// bookkeeping that keeps the fold exact, idempotent and order-independent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerFeatures {
    #[serde(rename = "customerEmail")]
    pub customer_email: String,
    pub satisfaction_avg: f64,
    pub service_count: u64,
    pub lifetime_value: LifetimeValue,
    #[serde(default)]
    pub property_features: PropertyFeatures,
    #[serde(with = "rfc3339")]
    pub first_seen: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub last_updated: DateTime<Utc>,
    pub version: u64,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_name: Option<String>,
    pub score_sum_micros: u64,
    pub score_count: u64,
    /// The largest `services_count` any applied event carried (0 when none did).
    #[serde(default)]
    pub services_count_hint: u64,
    /// Distinct service events ever applied, including ids since forgotten.
    pub events_applied: u64,
    /// Applied event ids, at most `max_applied_ids` of the latest by [`EventKey`].
    #[serde(default)]
    pub applied_events: BTreeMap<Arc<str>, AppliedEvent>,
    /// The greatest key ever forgotten: an event at or below it that is not in
    /// `applied_events` may have been applied before, so it is never applied again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_floor: Option<EventKey>,
    #[serde(default)]
    pub field_sources: FieldSources,
    /// The latest event applied by the write that produced this version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_event_id: Option<String>,
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
            applied_events: BTreeMap::new(),
            applied_floor: None,
            field_sources: FieldSources::default(),
            trigger_event_id: None,
        }
    }

    /// True when at least one satisfaction score has been applied.
    pub fn has_satisfaction_score(&self) -> bool {
        self.score_count > 0
    }

    fn absorb(&mut self, event: &ServiceEvent, key: &EventKey) {
        self.applied_events.insert(
            event.event_id.clone(),
            AppliedEvent {
                occurred_at: event.occurred_at,
                content_hash: event.content_hash,
            },
        );
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

    fn refresh_derived(&mut self) {
        self.satisfaction_avg = match self.score_count {
            0 => DEFAULT_SATISFACTION_MICROS as f64 / SCORE_SCALE as f64,
            // Dividing the integer sum first keeps e.g. three scores of 4.1 at exactly 4.1.
            n => (self.score_sum_micros as f64 / n as f64) / SCORE_SCALE as f64,
        };
        self.service_count = self.events_applied.max(self.services_count_hint);
        self.lifetime_value =
            LifetimeValue::classify(self.service_count, self.score_sum_micros, self.score_count);
    }

    fn forget_oldest_ids(&mut self, max_applied_ids: usize) {
        let excess = self.applied_events.len().saturating_sub(max_applied_ids);
        if excess == 0 {
            return;
        }
        let mut keys: Vec<EventKey> = self
            .applied_events
            .iter()
            .map(|(id, applied)| EventKey {
                occurred_at: applied.occurred_at,
                event_id: id.clone(),
            })
            .collect();
        keys.sort_unstable();
        for key in keys.into_iter().take(excess) {
            self.applied_events.remove(&key.event_id);
            if self.applied_floor.as_ref().is_none_or(|floor| *floor < key) {
                self.applied_floor = Some(key);
            }
        }
    }

    fn is_below_floor(&self, key: &EventKey) -> bool {
        self.applied_floor
            .as_ref()
            .is_some_and(|floor| key <= floor)
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

/// What the fold did with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Applied,
    /// Already applied. `conflicting` when its content differs from the applied original
    /// (same id, other payload: a sender bug worth counting).
    Duplicate {
        conflicting: bool,
    },
    /// Older than every id the item still remembers: it may have been applied long ago,
    /// so it is not applied, to never count an event twice.
    Stale,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoldLimits {
    pub max_applied_ids: usize,
}

impl Default for FoldLimits {
    fn default() -> Self {
        FoldLimits {
            max_applied_ids: DEFAULT_MAX_APPLIED_IDS,
        }
    }
}

/// The result of folding events into an item.
#[derive(Debug, Clone, PartialEq)]
pub struct Fold {
    /// The item after the fold: the input item when nothing was applied, else the item to
    /// write, its version bumped. `None` only for a new customer whose events all failed.
    pub item: Option<CustomerFeatures>,
    /// One disposition per input event, in input order.
    pub dispositions: Vec<Disposition>,
    /// Ids applied by this fold, to guard the write against a concurrent writer.
    pub applied_ids: Vec<Arc<str>>,
}

impl Fold {
    /// Whether the fold applied anything, i.e. whether there is something to write.
    pub fn changed(&self) -> bool {
        !self.applied_ids.is_empty()
    }

    /// The item to write, if the fold applied anything.
    pub fn into_next(self) -> Option<CustomerFeatures> {
        if self.changed() { self.item } else { None }
    }
}

/// Folds one customer's events into its current item (`None` for a new customer). The item
/// is taken by value: the enricher reads it once, folds it and writes it, with no copy.
/// All events must carry that customer's normalised e-mail.
pub fn fold_events(
    current: Option<CustomerFeatures>,
    events: &[&ServiceEvent],
    limits: FoldLimits,
) -> Fold {
    let base_version = current.as_ref().map_or(0, |item| item.version);
    let mut item = current;
    let mut dispositions = Vec::with_capacity(events.len());
    let mut applied_ids = Vec::new();
    let mut trigger: Option<EventKey> = None;

    for event in events {
        let key = EventKey::of(event);
        if let Some(known) = &item {
            if let Some(prior) = known.applied_events.get(&event.event_id) {
                dispositions.push(Disposition::Duplicate {
                    conflicting: prior.content_hash != event.content_hash,
                });
                continue;
            }
            if known.is_below_floor(&key) {
                dispositions.push(Disposition::Stale);
                continue;
            }
        }
        item.get_or_insert_with(|| CustomerFeatures::first(event))
            .absorb(event, &key);
        applied_ids.push(Arc::clone(&event.event_id));
        dispositions.push(Disposition::Applied);
        if trigger.as_ref().is_none_or(|latest| *latest < key) {
            trigger = Some(key);
        }
    }

    if let Some(item) = item.as_mut().filter(|_| !applied_ids.is_empty()) {
        item.version = base_version + 1;
        item.trigger_event_id = trigger.map(|key| key.event_id.to_string());
        item.refresh_derived();
        item.forget_oldest_ids(limits.max_applied_ids);
    }
    Fold {
        item,
        dispositions,
        applied_ids,
    }
}

impl fmt::Display for EventKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}|{}",
            rfc3339::format(&self.occurred_at),
            self.event_id
        )
    }
}

/// Compact string forms keep the bookkeeping small in the DynamoDB item.
impl Serialize for EventKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let (at, id) = text
            .split_once('|')
            .ok_or_else(|| serde::de::Error::custom("event key must be `timestamp|event_id`"))?;
        Ok(EventKey {
            occurred_at: rfc3339::parse(at).map_err(serde::de::Error::custom)?,
            event_id: Arc::from(id),
        })
    }
}

impl Serialize for AppliedEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!(
            "{}#{:016x}",
            rfc3339::format(&self.occurred_at),
            self.content_hash
        ))
    }
}

impl<'de> Deserialize<'de> for AppliedEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let (at, hash) = text
            .split_once('#')
            .ok_or_else(|| serde::de::Error::custom("applied event must be `timestamp#hash`"))?;
        Ok(AppliedEvent {
            occurred_at: rfc3339::parse(at).map_err(serde::de::Error::custom)?,
            content_hash: u64::from_str_radix(hash, 16).map_err(serde::de::Error::custom)?,
        })
    }
}

/// Timestamps as RFC 3339 in UTC with `Z`, fractional seconds only when present.
pub mod rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn format(at: &DateTime<Utc>) -> String {
        at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }

    pub fn parse(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
        DateTime::parse_from_rfc3339(text).map(|at| at.with_timezone(&Utc))
    }

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(at))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse(&text).map_err(serde::de::Error::custom)
    }
}
