//! The `service.completed` webhook: typed values, parsed and validated as DESIGN.md says.
//!
//! Validation walks a `serde_json::Value` rather than deriving `Deserialize` on the final
//! types, because every rejection must name the dotted path of the offending field, and
//! serde's own messages only give a line and column.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use thiserror::Error;

use crate::redact::short_hash;

/// The only event type that changes features; others are acknowledged and ignored.
pub const SERVICE_COMPLETED: &str = "service.completed";

/// Event ids become keys in the feature item's applied-event map, so their size is capped.
pub const MAX_EVENT_ID_LEN: usize = 128;
/// RFC 5321 caps a forward path at 256 octets including the angle brackets.
pub const MAX_EMAIL_LEN: usize = 254;
/// Free text (names, cities, pest issues) is capped so one event cannot bloat the item.
pub const MAX_TEXT_LEN: usize = 256;
pub const MAX_PEST_ISSUES: usize = 32;

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
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceEvent {
    pub event_id: String,
    pub occurred_at: DateTime<Utc>,
    pub customer: Customer,
    pub service: Option<Service>,
    pub property: Option<PropertyInfo>,
    pub services_count: Option<u64>,
    /// Hash of the validated content: tells a conflicting duplicate (same id, other
    /// content) from a plain redelivery.
    #[serde(skip)]
    pub content_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Customer {
    /// Trimmed and lower-cased: the table key.
    pub email: String,
    pub name: Option<String>,
    pub address: Option<Address>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Address {
    pub street: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub zip: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Service {
    pub id: Option<String>,
    pub service_type: Option<String>,
    /// Satisfaction in millionths of a point (0..=5_000_000).
    pub satisfaction_micros: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PropertyInfo {
    pub property_type: Option<String>,
    pub square_feet: Option<u64>,
    pub year_built: Option<u16>,
    pub pest_issues: Option<Vec<String>>,
}

/// Parses and validates one webhook body.
pub fn parse_webhook(body: &str) -> Result<Webhook, Rejection> {
    let value: Value = serde_json::from_str(body).map_err(|err| Rejection {
        event_id: None,
        error: EventError::NotJson {
            detail: json_error_position(&err),
        },
    })?;
    parse_webhook_value(&value)
}

/// Validates a body that is already JSON (e.g. one element of a fixture array).
pub fn parse_webhook_value(value: &Value) -> Result<Webhook, Rejection> {
    let Some(root) = value.as_object() else {
        return Err(Rejection {
            event_id: None,
            error: EventError::WrongType {
                field: "body",
                expected: "a JSON object",
            },
        });
    };
    let event_id = required_str(root, "event_id", "event_id").and_then(validate_event_id);
    let event_id = match event_id {
        Ok(id) => id.to_owned(),
        Err(error) => {
            return Err(Rejection {
                event_id: None,
                error,
            });
        }
    };
    parse_after_id(root, &event_id).map_err(|error| Rejection {
        event_id: Some(event_id.clone()),
        error,
    })
}

fn parse_after_id(root: &Map<String, Value>, event_id: &str) -> Result<Webhook, EventError> {
    let event_type = required_str(root, "event_type", "event_type")?;
    if event_type != SERVICE_COMPLETED {
        return Ok(Webhook::Other {
            event_id: event_id.to_owned(),
            event_type: event_type.to_owned(),
        });
    }
    let occurred_at = parse_timestamp(required_str(root, "occurred_at", "occurred_at")?)?;
    let customer = parse_customer(root)?;
    let service = optional_object(root, "service", "service")?
        .map(parse_service)
        .transpose()?;
    let property = optional_object(root, "property_info", "property_info")?
        .map(parse_property)
        .transpose()?;
    let services_count = optional_count(root, "services_count", "services_count")?;

    let mut event = ServiceEvent {
        event_id: event_id.to_owned(),
        occurred_at,
        customer,
        service,
        property,
        services_count,
        content_hash: String::new(),
    };
    event.content_hash = content_hash(&event);
    Ok(Webhook::ServiceCompleted(Box::new(event)))
}

fn validate_event_id(id: &str) -> Result<&str, EventError> {
    if id.trim().is_empty() {
        return Err(EventError::Invalid {
            field: "event_id",
            problem: "must not be empty",
        });
    }
    if id.len() > MAX_EVENT_ID_LEN {
        return Err(EventError::Invalid {
            field: "event_id",
            problem: "is longer than 128 bytes",
        });
    }
    if id.chars().any(char::is_control) {
        return Err(EventError::Invalid {
            field: "event_id",
            problem: "must not contain control characters",
        });
    }
    Ok(id)
}

fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, EventError> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| EventError::Invalid {
            field: "occurred_at",
            problem: "must be an RFC 3339 timestamp with an offset, e.g. 2026-11-20T15:04:05Z",
        })
}

fn parse_customer(root: &Map<String, Value>) -> Result<Customer, EventError> {
    let customer = optional_object(root, "customer", "customer")?
        .ok_or(EventError::Missing { field: "customer" })?;
    let email = normalise_email(required_str(customer, "email", "customer.email")?)?;
    let name = optional_text(customer, "name", "customer.name")?;
    let address = optional_object(customer, "address", "customer.address")?
        .map(|address| -> Result<Address, EventError> {
            Ok(Address {
                street: optional_text(address, "street", "customer.address.street")?,
                city: optional_text(address, "city", "customer.address.city")?,
                state: optional_text(address, "state", "customer.address.state")?,
                zip: optional_text(address, "zip", "customer.address.zip")?,
            })
        })
        .transpose()?;
    Ok(Customer {
        email,
        name,
        address,
    })
}

/// Trims and lower-cases, then checks the address is plausible: one `@`, a non-empty
/// local part, a dotted domain, no white space.
pub fn normalise_email(raw: &str) -> Result<String, EventError> {
    const FIELD: &str = "customer.email";
    let email = raw.trim().to_lowercase();
    if email.is_empty() {
        return Err(EventError::Invalid {
            field: FIELD,
            problem: "must not be empty",
        });
    }
    if email.len() > MAX_EMAIL_LEN {
        return Err(EventError::Invalid {
            field: FIELD,
            problem: "is longer than 254 bytes",
        });
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(EventError::Invalid {
            field: FIELD,
            problem: "must not contain spaces",
        });
    }
    let mut parts = email.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(EventError::Invalid {
            field: FIELD,
            problem: "must contain exactly one `@`",
        });
    };
    let domain_ok = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..");
    if local.is_empty() || !domain_ok {
        return Err(EventError::Invalid {
            field: FIELD,
            problem: "must look like name@domain.tld",
        });
    }
    Ok(email)
}

fn parse_service(service: &Map<String, Value>) -> Result<Service, EventError> {
    const SCORE: &str = "service.satisfaction_score";
    let satisfaction_micros = match present(service, "satisfaction_score") {
        None => None,
        Some(Value::Number(number)) => {
            let score = number
                .as_f64()
                .filter(|s| s.is_finite())
                .ok_or(EventError::Invalid {
                    field: SCORE,
                    problem: "must be a finite number",
                })?;
            if !(0.0..=5.0).contains(&score) {
                return Err(EventError::Invalid {
                    field: SCORE,
                    problem: "must be between 0 and 5",
                });
            }
            // In range 0..=5, so the scaled value fits a u32 without truncation.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let micros = (score * SCORE_SCALE as f64).round() as u32;
            Some(micros.min(MAX_SCORE_MICROS))
        }
        Some(_) => {
            return Err(EventError::WrongType {
                field: SCORE,
                expected: "a number",
            });
        }
    };
    Ok(Service {
        id: optional_text(service, "id", "service.id")?,
        service_type: optional_text(service, "type", "service.type")?,
        satisfaction_micros,
    })
}

fn parse_property(property: &Map<String, Value>) -> Result<PropertyInfo, EventError> {
    const YEAR: &str = "property_info.year_built";
    let year_built = optional_count(property, "year_built", YEAR)?
        .map(|year| {
            u16::try_from(year)
                .ok()
                .filter(|y| (1000..=2100).contains(y))
                .ok_or(EventError::Invalid {
                    field: YEAR,
                    problem: "must be a year between 1000 and 2100",
                })
        })
        .transpose()?;
    Ok(PropertyInfo {
        property_type: optional_text(property, "type", "property_info.type")?,
        square_feet: optional_count(property, "square_feet", "property_info.square_feet")?,
        year_built,
        pest_issues: parse_pest_issues(property)?,
    })
}

fn parse_pest_issues(property: &Map<String, Value>) -> Result<Option<Vec<String>>, EventError> {
    const FIELD: &str = "property_info.pest_issues";
    let Some(value) = present(property, "pest_issues") else {
        return Ok(None);
    };
    let wrong_type = EventError::WrongType {
        field: FIELD,
        expected: "an array of strings",
    };
    let items = value.as_array().ok_or(wrong_type.clone())?;
    if items.len() > MAX_PEST_ISSUES {
        return Err(EventError::Invalid {
            field: FIELD,
            problem: "has more than 32 entries",
        });
    }
    let mut issues = items
        .iter()
        .map(|item| {
            let text = item.as_str().ok_or(wrong_type.clone())?;
            check_text(text.trim(), FIELD).map(str::to_owned)
        })
        .collect::<Result<Vec<_>, _>>()?;
    issues.retain(|issue| !issue.is_empty());
    Ok(Some(issues))
}

/// `null` counts as absent: senders commonly serialise a missing optional that way.
fn present<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|value| !value.is_null())
}

fn required_str<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<&'a str, EventError> {
    match present(object, key) {
        None => Err(EventError::Missing { field }),
        Some(Value::String(text)) => Ok(text),
        Some(_) => Err(EventError::WrongType {
            field,
            expected: "a string",
        }),
    }
}

fn optional_text(
    object: &Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<Option<String>, EventError> {
    match present(object, key) {
        None => Ok(None),
        Some(Value::String(text)) => {
            let text = check_text(text.trim(), field)?;
            Ok((!text.is_empty()).then(|| text.to_owned()))
        }
        Some(_) => Err(EventError::WrongType {
            field,
            expected: "a string",
        }),
    }
}

fn check_text<'a>(text: &'a str, field: &'static str) -> Result<&'a str, EventError> {
    if text.len() > MAX_TEXT_LEN {
        return Err(EventError::Invalid {
            field,
            problem: "is longer than 256 bytes",
        });
    }
    Ok(text)
}

fn optional_object<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<Option<&'a Map<String, Value>>, EventError> {
    match present(object, key) {
        None => Ok(None),
        Some(Value::Object(inner)) => Ok(Some(inner)),
        Some(_) => Err(EventError::WrongType {
            field,
            expected: "an object",
        }),
    }
}

fn optional_count(
    object: &Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<Option<u64>, EventError> {
    match present(object, key) {
        None => Ok(None),
        Some(Value::Number(number)) => number.as_u64().map(Some).ok_or(EventError::Invalid {
            field,
            problem: "must be a non-negative whole number",
        }),
        Some(_) => Err(EventError::WrongType {
            field,
            expected: "a non-negative whole number",
        }),
    }
}

/// Where the JSON broke, without quoting the body (it may hold an e-mail address).
fn json_error_position(err: &serde_json::Error) -> String {
    let class = match err.classify() {
        serde_json::error::Category::Eof => "unexpected end of input",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected data",
        serde_json::error::Category::Io => "read error",
    };
    format!("{class} at line {} column {}", err.line(), err.column())
}

fn content_hash(event: &ServiceEvent) -> String {
    // Serialising a struct is deterministic (field order is declaration order), so equal
    // validated content always hashes the same, whatever the sender's key order or spacing.
    match serde_json::to_vec(event) {
        Ok(bytes) => short_hash(&bytes),
        // Serialising plain owned data cannot fail; an empty hash only weakens the
        // conflicting-duplicate diagnostic, never correctness.
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid() -> Value {
        json!({
            "event_id": "evt_1",
            "event_type": "service.completed",
            "occurred_at": "2026-11-20T15:04:05-05:00",
            "customer": {"email": "  Jane.Doe@Example.com ", "name": "Jane Doe",
                          "address": {"city": "Austin", "state": "TX", "zip": "78701"}},
            "service": {"id": "svc_1", "type": "pest_control", "satisfaction_score": 4.5},
            "property_info": {"type": "single_family", "square_feet": 2500, "year_built": 1998,
                              "pest_issues": ["ants"]},
            "services_count": 8,
            "unknown": {"ignored": true}
        })
    }

    fn reject(value: Value) -> EventError {
        match parse_webhook_value(&value) {
            Err(rejection) => rejection.error,
            Ok(webhook) => panic!("expected a rejection, got {webhook:?}"),
        }
    }

    #[test]
    fn parses_the_design_example() {
        let Ok(Webhook::ServiceCompleted(event)) = parse_webhook_value(&valid()) else {
            panic!("valid event refused");
        };
        assert_eq!(event.customer.email, "jane.doe@example.com");
        assert_eq!(event.occurred_at.to_rfc3339(), "2026-11-20T20:04:05+00:00");
        assert_eq!(
            event.service.as_ref().and_then(|s| s.satisfaction_micros),
            Some(4_500_000)
        );
        assert_eq!(event.services_count, Some(8));
        assert_eq!(event.content_hash.len(), 16);
    }

    #[test]
    fn the_hash_ignores_key_order_spacing_and_email_case() {
        let a = parse_webhook(&valid().to_string()).map(|w| match w {
            Webhook::ServiceCompleted(e) => e.content_hash,
            Webhook::Other { .. } => String::new(),
        });
        let mut other = valid();
        other["customer"]["email"] = json!("jane.doe@example.com");
        let pretty = serde_json::to_string_pretty(&other).unwrap_or_default();
        let b = parse_webhook(&pretty).map(|w| match w {
            Webhook::ServiceCompleted(e) => e.content_hash,
            Webhook::Other { .. } => String::new(),
        });
        assert_eq!(a, b);
        other["service"]["satisfaction_score"] = json!(4.0);
        let c = parse_webhook_value(&other).map(|w| match w {
            Webhook::ServiceCompleted(e) => e.content_hash,
            Webhook::Other { .. } => String::new(),
        });
        assert_ne!(a, c);
    }

    #[test]
    fn other_event_types_are_not_validated_further() {
        let parsed =
            parse_webhook_value(&json!({"event_id": "e", "event_type": "customer.updated"}));
        assert_eq!(
            parsed,
            Ok(Webhook::Other {
                event_id: "e".into(),
                event_type: "customer.updated".into()
            })
        );
    }

    #[test]
    fn null_optionals_are_absent_but_null_required_fields_are_missing() {
        let mut event = valid();
        event["service"] = Value::Null;
        event["services_count"] = Value::Null;
        assert!(parse_webhook_value(&event).is_ok());
        event["occurred_at"] = Value::Null;
        assert_eq!(
            reject(event),
            EventError::Missing {
                field: "occurred_at"
            }
        );
    }

    #[test]
    fn each_rejection_names_its_field() {
        let cases: Vec<(&str, Value, &str)> = vec![
            ("event_id", json!(""), "event_id"),
            ("event_id", json!(7), "event_id"),
            ("occurred_at", json!("2026-11-20T15:04:05"), "occurred_at"),
            ("occurred_at", json!("yesterday"), "occurred_at"),
            ("services_count", json!(-1), "services_count"),
            ("services_count", json!(2.5), "services_count"),
            ("services_count", json!("3"), "services_count"),
            ("customer", json!("jane"), "customer"),
            ("service", json!([]), "service"),
        ];
        for (key, bad, field) in cases {
            let mut event = valid();
            event[key] = bad;
            assert_eq!(reject(event).field(), field, "{key}");
        }
        let nested: Vec<(&str, &str, Value, &str)> = vec![
            (
                "customer",
                "email",
                json!("jane.example.com"),
                "customer.email",
            ),
            (
                "customer",
                "email",
                json!("a@b@example.com"),
                "customer.email",
            ),
            (
                "customer",
                "email",
                json!("jane@localhost"),
                "customer.email",
            ),
            (
                "customer",
                "email",
                json!("jane doe@example.com"),
                "customer.email",
            ),
            ("customer", "address", json!("1 Elm St"), "customer.address"),
            (
                "service",
                "satisfaction_score",
                json!("4.5"),
                "service.satisfaction_score",
            ),
            (
                "service",
                "satisfaction_score",
                json!(5.01),
                "service.satisfaction_score",
            ),
            (
                "service",
                "satisfaction_score",
                json!(-0.5),
                "service.satisfaction_score",
            ),
            (
                "property_info",
                "square_feet",
                json!("2500"),
                "property_info.square_feet",
            ),
            (
                "property_info",
                "year_built",
                json!(98),
                "property_info.year_built",
            ),
            (
                "property_info",
                "pest_issues",
                json!("ants"),
                "property_info.pest_issues",
            ),
            (
                "property_info",
                "pest_issues",
                json!([1]),
                "property_info.pest_issues",
            ),
        ];
        for (parent, key, bad, field) in nested {
            let mut event = valid();
            event[parent][key] = bad;
            assert_eq!(reject(event).field(), field, "{parent}.{key}");
        }
    }

    #[test]
    fn rejections_keep_the_event_id_when_known_and_never_echo_values() {
        let mut event = valid();
        event["customer"]["email"] = json!("secret person@example.com");
        let Err(rejection) = parse_webhook_value(&event) else {
            panic!("accepted an e-mail with a space");
        };
        assert_eq!(rejection.event_id.as_deref(), Some("evt_1"));
        assert!(!rejection.to_string().contains("secret"));
        let not_json = parse_webhook("{\"event_id\": \"jane@example.com\",");
        let Err(rejection) = not_json else {
            panic!("accepted truncated JSON");
        };
        assert_eq!(rejection.error.field(), "body");
        assert!(!rejection.to_string().contains("jane"));
    }

    #[test]
    fn boundaries_of_the_score_are_inclusive() {
        for score in [0.0, 5.0] {
            let mut event = valid();
            event["service"]["satisfaction_score"] = json!(score);
            assert!(parse_webhook_value(&event).is_ok(), "{score}");
        }
    }
}
