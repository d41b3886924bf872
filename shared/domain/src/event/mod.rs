//! The `service.completed` webhook: typed values, parsed and validated as DESIGN.md says.
//!
//! Every rejection must name the dotted path of the offending field, which serde's own
//! messages do not. So the body is first split into borrowed raw JSON fragments per known
//! field (one pass, no allocation, unknown fields skipped), and each fragment is then read
//! as the type its field requires, with an error naming the field when it is not.

mod email;
mod fields;
mod hash;
mod parse;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use thiserror::Error;

pub use email::normalise_email;
pub use parse::{parse_webhook, parse_webhook_value};

/// The only event type that changes features; others are acknowledged and ignored.
pub const SERVICE_COMPLETED: &str = "service.completed";

/// Event ids become keys in the feature item's applied-event map, so their size is capped.
pub const MAX_EVENT_ID_LEN: usize = 128;
/// RFC 5321 caps a forward path at 256 octets including the angle brackets.
pub const MAX_EMAIL_LEN: usize = 254;
/// Free text (names, cities, pest issues) is capped so one event cannot bloat the item.
pub const MAX_TEXT_LEN: usize = 256;
pub const MAX_PEST_ISSUES: usize = 32;

// Bounds on the values that stick. The fold keeps the largest `services_count` for good and
// the earliest `occurred_at` as `first_seen` for good, and a property value stands until a
// later event replaces it: one absurd value would pin a customer's count or property facts
// for ever, so such values are refused, naming the field, like any other invalid input.

/// `services_count` is the history from before the pipeline, and the largest one stands.
/// No household has 100,000 services; a larger number is a unit or typing error.
pub const MAX_SERVICES_COUNT: u64 = 100_000;
/// A dwelling's size: the smallest tiny houses have about 100 square feet, the largest
/// residences well under 100,000.
pub const MIN_SQUARE_FEET: u64 = 100;
pub const MAX_SQUARE_FEET: u64 = 100_000;
/// The oldest houses still standing in the US are from the 1600s. A house may be finished
/// the year after a service (pre-construction treatment), never later.
pub const OLDEST_YEAR_BUILT: u16 = 1600;
/// 2000-01-01T00:00:00Z: events dated earlier are refused. The source system has no
/// history that old, and a zeroed clock (1970) or a mistyped year (0026) would otherwise
/// become the customer's `first_seen` for good. (Dates too far in the future are the
/// enricher's to refuse: that needs a clock, and validation has none.)
pub const EARLIEST_OCCURRED_AT_UNIX: i64 = 946_684_800;
/// The last year RFC 3339, and so every stored timestamp, can write.
pub const MAX_OCCURRED_AT_YEAR: i32 = 9999;

/// Scores are kept in millionths so that sums are exact integers and the mean does not
/// depend on the order in which scores were added.
pub const SCORE_SCALE: u64 = 1_000_000;
pub const MAX_SCORE_MICROS: u32 = 5_000_000;

/// Why a webhook body was refused. Each variant names the field; none repeats the value,
/// because values may be e-mail addresses and these messages end up in logs.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EventError {
    #[error("`body` is not valid JSON ({detail})")]
    NotJson { detail: String },
    #[error("`{field}` is required")]
    Missing { field: &'static str },
    #[error("`{field}` must be {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("`{field}` {problem}")]
    Invalid {
        field: &'static str,
        problem: &'static str,
    },
}

impl EventError {
    /// The dotted path of the field at fault (`body` when the whole body is unusable).
    pub fn field(&self) -> &'static str {
        match self {
            EventError::NotJson { .. } => "body",
            EventError::Missing { field }
            | EventError::WrongType { field, .. }
            | EventError::Invalid { field, .. } => field,
        }
    }

    /// A stable machine-readable kind, used in metrics and DLQ attributes.
    pub fn kind(&self) -> &'static str {
        match self {
            EventError::NotJson { .. } => "malformed_json",
            EventError::Missing { .. } => "missing_field",
            EventError::WrongType { .. } => "wrong_type",
            EventError::Invalid { .. } => "invalid_value",
        }
    }
}

/// A refused webhook: the error, plus the event id when the body got far enough to have one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{error}")]
pub struct Rejection {
    pub event_id: Option<String>,
    pub error: EventError,
}

/// A parsed webhook body.
#[derive(Debug, Clone, PartialEq)]
pub enum Webhook {
    ServiceCompleted(Box<ServiceEvent>),
    /// Well-formed envelope of another type: acknowledged, changes nothing.
    Other {
        event_id: String,
        event_type: String,
    },
}

impl Webhook {
    pub fn event_id(&self) -> &str {
        match self {
            Webhook::ServiceCompleted(event) => &event.event_id,
            Webhook::Other { event_id, .. } => event_id,
        }
    }
}

/// A validated `service.completed` event. Construct it with [`parse_webhook`].
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceEvent {
    pub event_id: Arc<str>,
    pub occurred_at: DateTime<Utc>,
    pub customer: Customer,
    pub service: Option<Service>,
    pub property: Option<PropertyInfo>,
    pub services_count: Option<u64>,
    /// Hash of the validated content: tells a conflicting duplicate (same id, other
    /// content) from a plain redelivery.
    pub content_hash: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    /// Trimmed and lower-cased: the table key.
    pub email: String,
    pub name: Option<String>,
    pub address: Option<Address>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Address {
    pub street: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub zip: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Service {
    pub id: Option<String>,
    pub service_type: Option<String>,
    /// Satisfaction in millionths of a point (0..=5_000_000).
    pub satisfaction_micros: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PropertyInfo {
    pub property_type: Option<String>,
    pub square_feet: Option<u64>,
    pub year_built: Option<u16>,
    pub pest_issues: Option<Vec<String>>,
}
