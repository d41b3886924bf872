//! The stored form of [`CustomerFeatures`]: the attributes of a `CustomerFeatures` item (and
//! of every stream record, which carries the item), through serde so any store can use it.
//!
//! The features DESIGN.md documents keep their names and types. The bookkeeping is written
//! compactly, because every byte is paid for in write units and stream bytes:
//! - `applied`: the dedupe memory, binary (about eleven bytes a recent event, nine a pending
//!   one, and the archive's layout; see `memory/mod.rs`);
//! - `sources`: for the "latest wins" fields, each distinct source event once
//!   (`<unix seconds>[.<nanoseconds>]|<event id>`) with the letters of the fields it set;
//! - `trace`: the trigger event's trace, binary (25 bytes: `crate::trace`), absent when none.
//!
//! Items written before (with `applied_events`, one string per id, `applied_floor` and
//! `field_sources`) still read: they are migrated as they are read, and written back in the
//! compact form by the next write of that customer.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

use super::memory::{ContentTag, IdHash};
use super::{
    AppliedMemory, CustomerFeatures, EventKey, FieldSources, LifetimeValue, PropertyFeatures,
    Trigger, rfc3339,
};
use crate::trace::TraceContext;

type SourceOf = fn(&FieldSources) -> &Option<EventKey>;

/// The letter of each "latest wins" field in `sources`.
const FIELD_LETTERS: [(char, SourceOf); 8] = [
    ('n', |s| &s.customer_name),
    ('c', |s| &s.city),
    ('s', |s| &s.state),
    ('z', |s| &s.zip),
    ('t', |s| &s.property_type),
    ('f', |s| &s.square_feet),
    ('y', |s| &s.year_built),
    ('p', |s| &s.pest_issues),
];

fn source_slot(sources: &mut FieldSources, letter: char) -> Option<&mut Option<EventKey>> {
    Some(match letter {
        'n' => &mut sources.customer_name,
        'c' => &mut sources.city,
        's' => &mut sources.state,
        'z' => &mut sources.zip,
        't' => &mut sources.property_type,
        'f' => &mut sources.square_feet,
        'y' => &mut sources.year_built,
        'p' => &mut sources.pest_issues,
        _ => return None,
    })
}

fn legacy_source_slot<'a>(
    sources: &'a mut FieldSources,
    field: &str,
) -> Option<&'a mut Option<EventKey>> {
    let letter = match field {
        "customer_name" => 'n',
        "city" => 'c',
        "state" => 's',
        "zip" => 'z',
        "property_type" => 't',
        "square_feet" => 'f',
        "year_built" => 'y',
        "pest_issues" => 'p',
        _ => return None,
    };
    source_slot(sources, letter)
}

#[derive(Serialize)]
struct StoredRef<'a> {
    #[serde(rename = "customerEmail")]
    customer_email: &'a str,
    satisfaction_avg: f64,
    service_count: u64,
    lifetime_value: LifetimeValue,
    property_features: &'a PropertyFeatures,
    #[serde(serialize_with = "rfc3339::serialize")]
    first_seen: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339::serialize")]
    last_updated: DateTime<Utc>,
    version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    customer_name: Option<&'a str>,
    score_sum_micros: u64,
    score_count: u64,
    services_count_hint: u64,
    events_applied: u64,
    applied: MemoryBytes<'a>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    sources: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trigger_event_id: Option<&'a str>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_optional_time"
    )]
    trigger_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trigger_score: Option<u32>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_optional_time"
    )]
    erased_through: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace: Option<TraceBytes>,
}

struct TraceBytes(TraceContext);

impl Serialize for TraceBytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0.to_bytes())
    }
}

/// A stored trace, or nothing when it does not read: it is there for the operators, and an
/// item must never become undecodable (and its customer quarantined) for it.
struct StoredTrace(Option<TraceContext>);

impl<'de> Deserialize<'de> for StoredTrace {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TraceVisitor;
        impl<'de> Visitor<'de> for TraceVisitor {
            type Value = StoredTrace;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a trace as bytes")
            }

            fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<StoredTrace, E> {
                Ok(StoredTrace(TraceContext::from_bytes(bytes).ok()))
            }

            // JSON has no bytes: a JSON copy of an item holds them as an array of numbers.
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StoredTrace, A::Error> {
                let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(byte) = seq.next_element::<u8>()? {
                    bytes.push(byte);
                }
                self.visit_bytes(&bytes)
            }
        }
        deserializer.deserialize_bytes(TraceVisitor)
    }
}

fn serialize_optional_time<S: Serializer>(
    at: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => rfc3339::serialize(at, serializer),
        None => serializer.serialize_none(),
    }
}

struct MemoryBytes<'a>(&'a AppliedMemory);

impl Serialize for MemoryBytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0.encode())
    }
}

impl Serialize for CustomerFeatures {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        StoredRef {
            customer_email: &self.customer_email,
            satisfaction_avg: self.satisfaction_avg,
            service_count: self.service_count,
            lifetime_value: self.lifetime_value,
            property_features: &self.property_features,
            first_seen: self.first_seen,
            last_updated: self.last_updated,
            version: self.version,
            customer_name: self.customer_name.as_deref(),
            score_sum_micros: self.score_sum_micros,
            score_count: self.score_count,
            services_count_hint: self.services_count_hint,
            events_applied: self.events_applied,
            applied: MemoryBytes(&self.memory),
            sources: encode_sources(&self.field_sources),
            trigger_event_id: self.trigger_event_id.as_deref(),
            trigger_at: self.trigger.map(|trigger| trigger.occurred_at),
            trigger_score: self.trigger.and_then(|trigger| trigger.score_micros),
            erased_through: self.erased_through,
            trace: self.trace.map(TraceBytes),
        }
        .serialize(serializer)
    }
}

fn encode_sources(sources: &FieldSources) -> BTreeMap<String, String> {
    let mut by_key: BTreeMap<String, String> = BTreeMap::new();
    for (letter, slot) in FIELD_LETTERS {
        if let Some(key) = slot(sources) {
            by_key.entry(compact_key(key)).or_default().push(letter);
        }
    }
    by_key
}

fn compact_key(key: &EventKey) -> String {
    let seconds = key.occurred_at.timestamp();
    match key.occurred_at.timestamp_subsec_nanos() {
        0 => format!("{seconds}|{}", key.event_id),
        nanos => format!("{seconds}.{nanos:09}|{}", key.event_id),
    }
}

fn parse_compact_key(text: &str) -> Option<EventKey> {
    let (at, id) = text.split_once('|')?;
    let (seconds, nanos) = match at.split_once('.') {
        Some((seconds, nanos)) if nanos.len() == 9 => (seconds, nanos.parse().ok()?),
        Some(_) => return None,
        None => (at, 0),
    };
    Some(EventKey {
        occurred_at: DateTime::from_timestamp(seconds.parse().ok()?, nanos)?,
        event_id: Arc::from(id),
    })
}

/// Every attribute any version of the code wrote.
#[derive(Deserialize)]
struct Stored {
    #[serde(rename = "customerEmail")]
    customer_email: String,
    satisfaction_avg: f64,
    service_count: u64,
    lifetime_value: LifetimeValue,
    #[serde(default)]
    property_features: PropertyFeatures,
    #[serde(with = "rfc3339")]
    first_seen: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    last_updated: DateTime<Utc>,
    version: u64,
    #[serde(default)]
    customer_name: Option<String>,
    score_sum_micros: u64,
    score_count: u64,
    #[serde(default)]
    services_count_hint: u64,
    events_applied: u64,
    #[serde(default)]
    applied: Option<OwnedMemory>,
    #[serde(default)]
    sources: BTreeMap<String, String>,
    #[serde(default)]
    trigger_event_id: Option<String>,
    #[serde(default)]
    trigger_at: Option<String>,
    #[serde(default)]
    trigger_score: Option<u32>,
    #[serde(default)]
    erased_through: Option<String>,
    #[serde(default)]
    trace: Option<StoredTrace>,
    // Written by the first release: migrated below.
    #[serde(default)]
    applied_events: BTreeMap<String, String>,
    #[serde(default)]
    applied_floor: Option<String>,
    #[serde(default)]
    field_sources: BTreeMap<String, String>,
}

struct OwnedMemory(AppliedMemory);

impl<'de> Deserialize<'de> for OwnedMemory {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BytesVisitor;
        impl<'de> Visitor<'de> for BytesVisitor {
            type Value = OwnedMemory;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("the applied-event memory as bytes")
            }

            fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<OwnedMemory, E> {
                AppliedMemory::decode(bytes)
                    .map(OwnedMemory)
                    .map_err(E::custom)
            }

            // JSON has no bytes: a JSON copy of an item holds them as an array of numbers.
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OwnedMemory, A::Error> {
                let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(byte) = seq.next_element::<u8>()? {
                    bytes.push(byte);
                }
                self.visit_bytes(&bytes)
            }
        }
        deserializer.deserialize_bytes(BytesVisitor)
    }
}

impl<'de> Deserialize<'de> for CustomerFeatures {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let stored = Stored::deserialize(deserializer)?;
        let memory = match stored.applied {
            Some(OwnedMemory(memory)) => memory,
            None => legacy_memory(&stored.applied_events, stored.applied_floor.as_deref())
                .map_err(de::Error::custom)?,
        };
        let mut field_sources = FieldSources::default();
        for (key, letters) in &stored.sources {
            let key = parse_compact_key(key)
                .ok_or_else(|| de::Error::custom("a `sources` key is not `seconds|event_id`"))?;
            for letter in letters.chars() {
                let slot = source_slot(&mut field_sources, letter)
                    .ok_or_else(|| de::Error::custom("unknown field letter in `sources`"))?;
                *slot = Some(key.clone());
            }
        }
        for (field, key) in &stored.field_sources {
            if let Some(slot) = legacy_source_slot(&mut field_sources, field) {
                *slot = Some(parse_legacy_key(key).map_err(de::Error::custom)?);
            }
        }
        let trigger = match &stored.trigger_at {
            Some(at) => Some(Trigger {
                occurred_at: rfc3339::parse(at).map_err(de::Error::custom)?,
                score_micros: stored.trigger_score,
            }),
            None => None,
        };
        Ok(CustomerFeatures {
            customer_email: stored.customer_email,
            satisfaction_avg: stored.satisfaction_avg,
            service_count: stored.service_count,
            lifetime_value: stored.lifetime_value,
            property_features: stored.property_features,
            first_seen: stored.first_seen,
            last_updated: stored.last_updated,
            version: stored.version,
            customer_name: stored.customer_name,
            score_sum_micros: stored.score_sum_micros,
            score_count: stored.score_count,
            services_count_hint: stored.services_count_hint,
            events_applied: stored.events_applied,
            memory,
            field_sources,
            trigger_event_id: stored.trigger_event_id,
            trigger,
            erased_through: stored
                .erased_through
                .as_deref()
                .map(rfc3339::parse)
                .transpose()
                .map_err(de::Error::custom)?,
            trace: stored.trace.and_then(|trace| trace.0),
        })
    }
}

/// The first release's `applied_events` (`id` → `timestamp#content hash`) and `applied_floor`
/// (`timestamp|id`) as the memory: every id it kept as recent, and its floor (below which it
/// had let ids go) as the seal.
fn legacy_memory(
    applied_events: &BTreeMap<String, String>,
    applied_floor: Option<&str>,
) -> Result<AppliedMemory, String> {
    let mut memory = AppliedMemory::default();
    for (id, applied) in applied_events {
        let (at, hash) = applied
            .split_once('#')
            .ok_or("an `applied_events` value is not `timestamp#hash`")?;
        let at = rfc3339::parse(at).map_err(|error| error.to_string())?;
        let hash = u64::from_str_radix(hash, 16).map_err(|error| error.to_string())?;
        memory.remember(IdHash::of(id), ContentTag::of(hash), at, false);
    }
    if let Some(floor) = applied_floor {
        memory.seal_at(parse_legacy_key(floor)?.occurred_at);
    }
    Ok(memory)
}

fn parse_legacy_key(text: &str) -> Result<EventKey, String> {
    let (at, id) = text
        .split_once('|')
        .ok_or("an event key is not `timestamp|event_id`")?;
    Ok(EventKey {
        occurred_at: rfc3339::parse(at).map_err(|error| error.to_string())?,
        event_id: Arc::from(id),
    })
}
