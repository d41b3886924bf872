//! The `service.completed` webhook: typed values, parsed and validated as DESIGN.md says.
//!
//! Every rejection must name the dotted path of the offending field, which serde's own
//! messages do not. So the body is first split into borrowed raw JSON fragments per known
//! field (one pass, no allocation, unknown fields skipped), and each fragment is then read
//! as the type its field requires, with an error naming the field when it is not.

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use thiserror::Error;

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

type Fragment<'a> = Option<&'a RawValue>;

/// The known top-level fields, as raw JSON fragments (`null` reads as absent).
#[derive(Deserialize)]
struct WireEvent<'a> {
    #[serde(borrow)]
    event_id: Fragment<'a>,
    #[serde(borrow)]
    event_type: Fragment<'a>,
    #[serde(borrow)]
    occurred_at: Fragment<'a>,
    #[serde(borrow)]
    customer: Fragment<'a>,
    #[serde(borrow)]
    service: Fragment<'a>,
    #[serde(borrow)]
    property_info: Fragment<'a>,
    #[serde(borrow)]
    services_count: Fragment<'a>,
}

#[derive(Deserialize)]
struct WireCustomer<'a> {
    #[serde(borrow)]
    email: Fragment<'a>,
    #[serde(borrow)]
    name: Fragment<'a>,
    #[serde(borrow)]
    address: Fragment<'a>,
}

#[derive(Deserialize)]
struct WireAddress<'a> {
    #[serde(borrow)]
    street: Fragment<'a>,
    #[serde(borrow)]
    city: Fragment<'a>,
    #[serde(borrow)]
    state: Fragment<'a>,
    #[serde(borrow)]
    zip: Fragment<'a>,
}

#[derive(Deserialize)]
struct WireService<'a> {
    #[serde(borrow)]
    id: Fragment<'a>,
    #[serde(borrow, rename = "type")]
    service_type: Fragment<'a>,
    #[serde(borrow)]
    satisfaction_score: Fragment<'a>,
}

#[derive(Deserialize)]
struct WireProperty<'a> {
    #[serde(borrow, rename = "type")]
    property_type: Fragment<'a>,
    #[serde(borrow)]
    square_feet: Fragment<'a>,
    #[serde(borrow)]
    year_built: Fragment<'a>,
    #[serde(borrow)]
    pest_issues: Fragment<'a>,
}

/// Parses and validates one webhook body.
pub fn parse_webhook(body: &str) -> Result<Webhook, Rejection> {
    let wire: WireEvent<'_> = serde_json::from_str(body).map_err(|err| Rejection {
        event_id: None,
        error: body_error(body, &err),
    })?;
    let event_id = match required_str(wire.event_id, "event_id").and_then(validate_event_id) {
        Ok(id) => id,
        Err(error) => {
            return Err(Rejection {
                event_id: None,
                error,
            });
        }
    };
    parse_after_id(&wire, &event_id).map_err(|error| Rejection {
        event_id: Some(event_id.into_owned()),
        error,
    })
}

/// Validates a body that is already a JSON value (tests, fixture arrays).
pub fn parse_webhook_value(value: &Value) -> Result<Webhook, Rejection> {
    parse_webhook(&value.to_string())
}

/// Tells malformed JSON from well-formed JSON of the wrong shape.
fn body_error(body: &str, err: &serde_json::Error) -> EventError {
    if !err.is_data() {
        return EventError::NotJson {
            detail: json_error_position(err),
        };
    }
    if body.trim_start().starts_with('{') {
        // The only data error an object of raw fragments can raise.
        EventError::Invalid {
            field: "body",
            problem: "has the same key twice",
        }
    } else {
        EventError::WrongType {
            field: "body",
            expected: "a JSON object",
        }
    }
}

fn parse_after_id(wire: &WireEvent<'_>, event_id: &str) -> Result<Webhook, EventError> {
    let event_type = required_str(wire.event_type, "event_type")?;
    if event_type != SERVICE_COMPLETED {
        return Ok(Webhook::Other {
            event_id: event_id.to_owned(),
            event_type: event_type.into_owned(),
        });
    }
    let occurred_at = parse_timestamp(&required_str(wire.occurred_at, "occurred_at")?)?;
    let customer = parse_customer(wire.customer)?;
    let service = object::<WireService<'_>>(wire.service, "service")?
        .map(|service| parse_service(&service))
        .transpose()?;
    let property = object::<WireProperty<'_>>(wire.property_info, "property_info")?
        .map(|property| parse_property(&property))
        .transpose()?;
    let services_count = count(wire.services_count, "services_count")?;

    let mut event = ServiceEvent {
        event_id: Arc::from(event_id),
        occurred_at,
        customer,
        service,
        property,
        services_count,
        content_hash: 0,
    };
    event.content_hash = content_hash(&event);
    Ok(Webhook::ServiceCompleted(Box::new(event)))
}

fn validate_event_id(id: Cow<'_, str>) -> Result<Cow<'_, str>, EventError> {
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

fn parse_customer(fragment: Fragment<'_>) -> Result<Customer, EventError> {
    let customer = object::<WireCustomer<'_>>(fragment, "customer")?
        .ok_or(EventError::Missing { field: "customer" })?;
    let email = normalise_email(&required_str(customer.email, "customer.email")?)?;
    let name = text(customer.name, "customer.name")?;
    let address = object::<WireAddress<'_>>(customer.address, "customer.address")?
        .map(|address| -> Result<Address, EventError> {
            Ok(Address {
                street: text(address.street, "customer.address.street")?,
                city: text(address.city, "customer.address.city")?,
                state: text(address.state, "customer.address.state")?,
                zip: text(address.zip, "customer.address.zip")?,
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

fn parse_service(service: &WireService<'_>) -> Result<Service, EventError> {
    const SCORE: &str = "service.satisfaction_score";
    let satisfaction_micros = match service.satisfaction_score {
        None => None,
        Some(raw) => {
            let score: f64 = match serde_json::from_str(raw.get()) {
                Ok(score) => score,
                Err(_) if looks_numeric(raw) => {
                    return Err(EventError::Invalid {
                        field: SCORE,
                        problem: "must be a finite number",
                    });
                }
                Err(_) => {
                    return Err(EventError::WrongType {
                        field: SCORE,
                        expected: "a number",
                    });
                }
            };
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
    };
    Ok(Service {
        id: text(service.id, "service.id")?,
        service_type: text(service.service_type, "service.type")?,
        satisfaction_micros,
    })
}

fn parse_property(property: &WireProperty<'_>) -> Result<PropertyInfo, EventError> {
    const YEAR: &str = "property_info.year_built";
    let year_built = count(property.year_built, YEAR)?
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
        property_type: text(property.property_type, "property_info.type")?,
        square_feet: count(property.square_feet, "property_info.square_feet")?,
        year_built,
        pest_issues: pest_issues(property.pest_issues)?,
    })
}

fn pest_issues(fragment: Fragment<'_>) -> Result<Option<Vec<String>>, EventError> {
    const FIELD: &str = "property_info.pest_issues";
    let Some(raw) = fragment else {
        return Ok(None);
    };
    let items: Vec<Cow<'_, str>> =
        serde_json::from_str(raw.get()).map_err(|_| EventError::WrongType {
            field: FIELD,
            expected: "an array of strings",
        })?;
    if items.len() > MAX_PEST_ISSUES {
        return Err(EventError::Invalid {
            field: FIELD,
            problem: "has more than 32 entries",
        });
    }
    let mut issues = Vec::with_capacity(items.len());
    for item in &items {
        let item = check_text(item.trim(), FIELD)?;
        if !item.is_empty() {
            issues.push(item.to_owned());
        }
    }
    Ok(Some(issues))
}

fn required_str<'a>(
    fragment: Fragment<'a>,
    field: &'static str,
) -> Result<Cow<'a, str>, EventError> {
    let raw = fragment.ok_or(EventError::Missing { field })?;
    serde_json::from_str(raw.get()).map_err(|_| EventError::WrongType {
        field,
        expected: "a string",
    })
}

/// Optional free text: trimmed, capped, and absent when empty.
fn text(fragment: Fragment<'_>, field: &'static str) -> Result<Option<String>, EventError> {
    let Some(raw) = fragment else {
        return Ok(None);
    };
    let value: Cow<'_, str> =
        serde_json::from_str(raw.get()).map_err(|_| EventError::WrongType {
            field,
            expected: "a string",
        })?;
    let value = check_text(value.trim(), field)?;
    Ok((!value.is_empty()).then(|| value.to_owned()))
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

fn object<'a, T: Deserialize<'a>>(
    fragment: Fragment<'a>,
    field: &'static str,
) -> Result<Option<T>, EventError> {
    let Some(raw) = fragment else {
        return Ok(None);
    };
    if !raw.get().starts_with('{') {
        return Err(EventError::WrongType {
            field,
            expected: "an object",
        });
    }
    serde_json::from_str(raw.get())
        .map(Some)
        .map_err(|_| EventError::Invalid {
            field,
            problem: "has the same key twice",
        })
}

fn count(fragment: Fragment<'_>, field: &'static str) -> Result<Option<u64>, EventError> {
    let Some(raw) = fragment else {
        return Ok(None);
    };
    match serde_json::from_str::<u64>(raw.get()) {
        Ok(count) => Ok(Some(count)),
        Err(_) if looks_numeric(raw) => Err(EventError::Invalid {
            field,
            problem: "must be a non-negative whole number",
        }),
        Err(_) => Err(EventError::WrongType {
            field,
            expected: "a non-negative whole number",
        }),
    }
}

fn looks_numeric(raw: &RawValue) -> bool {
    raw.get()
        .starts_with(|c: char| c == '-' || c.is_ascii_digit())
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

/// The first 64 bits of SHA-256 over the validated fields, each length-prefixed (or marked
/// absent) in a fixed order: equal content always hashes the same, whatever the sender's
/// key order, spacing or e-mail case, and no two different contents feed the same bytes.
fn content_hash(event: &ServiceEvent) -> u64 {
    // The fields are gathered first and hashed in one call: the same bytes, so the same
    // hash, without SHA-256's buffering overhead on each of some forty tiny updates.
    let mut feed = HashFeed(Vec::with_capacity(512));
    feed.text(Some(&event.event_id));
    feed.number(event.occurred_at.timestamp_nanos_opt().map(|n| n as u64));
    let customer = &event.customer;
    feed.text(Some(&customer.email));
    feed.text(customer.name.as_deref());
    let address = customer.address.as_ref();
    feed.text(address.and_then(|a| a.street.as_deref()));
    feed.text(address.and_then(|a| a.city.as_deref()));
    feed.text(address.and_then(|a| a.state.as_deref()));
    feed.text(address.and_then(|a| a.zip.as_deref()));
    let service = event.service.as_ref();
    feed.text(service.and_then(|s| s.id.as_deref()));
    feed.text(service.and_then(|s| s.service_type.as_deref()));
    feed.number(service.and_then(|s| s.satisfaction_micros).map(u64::from));
    let property = event.property.as_ref();
    feed.text(property.and_then(|p| p.property_type.as_deref()));
    feed.number(property.and_then(|p| p.square_feet));
    feed.number(property.and_then(|p| p.year_built).map(u64::from));
    match property.and_then(|p| p.pest_issues.as_ref()) {
        Some(issues) => {
            feed.number(Some(issues.len() as u64));
            issues.iter().for_each(|issue| feed.text(Some(issue)));
        }
        None => feed.number(None),
    }
    feed.number(event.services_count);
    let digest = Sha256::digest(&feed.0);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

struct HashFeed(Vec<u8>);

impl HashFeed {
    fn text(&mut self, value: Option<&str>) {
        match value {
            Some(text) => {
                self.0.push(1);
                self.0.extend_from_slice(&(text.len() as u64).to_le_bytes());
                self.0.extend_from_slice(text.as_bytes());
            }
            None => self.0.push(0),
        }
    }

    fn number(&mut self, value: Option<u64>) {
        match value {
            Some(number) => {
                self.0.push(1);
                self.0.extend_from_slice(&number.to_le_bytes());
            }
            None => self.0.push(0),
        }
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
        assert_ne!(event.content_hash, 0);
    }

    #[test]
    fn the_hash_ignores_key_order_spacing_and_email_case() {
        let a = parse_webhook(&valid().to_string()).map(|w| match w {
            Webhook::ServiceCompleted(e) => e.content_hash,
            Webhook::Other { .. } => 0,
        });
        let mut other = valid();
        other["customer"]["email"] = json!("jane.doe@example.com");
        let pretty = serde_json::to_string_pretty(&other).unwrap_or_default();
        let b = parse_webhook(&pretty).map(|w| match w {
            Webhook::ServiceCompleted(e) => e.content_hash,
            Webhook::Other { .. } => 0,
        });
        assert_eq!(a, b);
        other["service"]["satisfaction_score"] = json!(4.0);
        let c = parse_webhook_value(&other).map(|w| match w {
            Webhook::ServiceCompleted(e) => e.content_hash,
            Webhook::Other { .. } => 0,
        });
        assert_ne!(a, c);
    }

    #[test]
    fn the_stored_hash_format_is_stable() {
        // Items keep these hashes: a change of the fed bytes or the digest would make every
        // redelivery look like a conflicting duplicate.
        let Ok(Webhook::ServiceCompleted(event)) = parse_webhook_value(&valid()) else {
            panic!("valid event refused");
        };
        assert_eq!(format!("{:016x}", event.content_hash), "6038a8590fbbbbba");
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
