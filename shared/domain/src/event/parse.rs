//! Parsing and validating a body: the known fields as raw fragments first, then each read
//! as the type its field requires.

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::fields::*;
use super::hash::content_hash;
use super::*;
use crate::shapes::is_hidden_or_not_text;

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
    refuse_near_miss_event_type(&event_type)?;
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
        .map(|property| parse_property(&property, occurred_at.year()))
        .transpose()?;
    let services_count = bounded(
        count(wire.services_count, "services_count")?,
        "services_count",
        0..=MAX_SERVICES_COUNT,
        "must be at most 100000",
    )?;

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

/// Other event types are acknowledged and ignored; a misspelt `service.completed` must not
/// be, or the service it reports is lost without a trace.
fn refuse_near_miss_event_type(event_type: &str) -> Result<(), EventError> {
    if event_type.trim() != event_type || event_type.chars().any(is_hidden_or_not_text) {
        return Err(EventError::Invalid {
            field: "event_type",
            problem: "must not have white space or invisible characters",
        });
    }
    let spelt_loosely: String = event_type
        .chars()
        .map(|c| match c {
            '_' | '-' | ' ' | ':' | '/' => '.',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    if event_type != SERVICE_COMPLETED && spelt_loosely == SERVICE_COMPLETED {
        return Err(EventError::Invalid {
            field: "event_type",
            problem: "must be exactly `service.completed` (lower case, with a dot)",
        });
    }
    Ok(())
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
    // `evt-1 ` or `evt-1` with a zero-width space would be a second service of the same
    // visit; the sender's retry must carry exactly the same id.
    if id.trim() != id {
        return Err(EventError::Invalid {
            field: "event_id",
            problem: "must not start or end with white space",
        });
    }
    if id.chars().any(is_hidden_or_not_text) {
        return Err(EventError::Invalid {
            field: "event_id",
            problem: "must not contain control, invisible or bidi characters",
        });
    }
    Ok(id)
}

fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, EventError> {
    let at = DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| EventError::Invalid {
            field: "occurred_at",
            problem: "must be an RFC 3339 timestamp with an offset, e.g. 2026-11-20T15:04:05Z",
        })?;
    if at.timestamp() < EARLIEST_OCCURRED_AT_UNIX {
        return Err(EventError::Invalid {
            field: "occurred_at",
            problem: "is before 2000-01-01",
        });
    }
    // chrono reads `:60` as a leap second, a nanosecond count of a billion or more, which
    // no stored form (ours, DynamoDB's, JSON's) can write back: the item would never decode.
    if at.nanosecond() >= 1_000_000_000 {
        return Err(EventError::Invalid {
            field: "occurred_at",
            problem: "must not have a 60th second (leap seconds are not kept)",
        });
    }
    // `9999-12-31T23:59:59-01:00` is in year 10000 in UTC, which RFC 3339 cannot write.
    if at.year() > MAX_OCCURRED_AT_YEAR {
        return Err(EventError::Invalid {
            field: "occurred_at",
            problem: "must be before year 10000 in UTC",
        });
    }
    Ok(at)
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

/// `year` is the year the event occurred: a house is not built later than the year after.
fn parse_property(property: &WireProperty<'_>, year: i32) -> Result<PropertyInfo, EventError> {
    const YEAR: &str = "property_info.year_built";
    let latest_year = u64::try_from(year.saturating_add(1)).unwrap_or(0);
    let year_built = bounded(
        count(property.year_built, YEAR)?,
        YEAR,
        u64::from(OLDEST_YEAR_BUILT)..=latest_year,
        "must be a year from 1600 to the year after the event",
    )?
    .map(|year| {
        u16::try_from(year).map_err(|_| EventError::Invalid {
            field: YEAR,
            problem: "must be a year from 1600 to the year after the event",
        })
    })
    .transpose()?;
    const SQUARE_FEET: &str = "property_info.square_feet";
    Ok(PropertyInfo {
        property_type: text(property.property_type, "property_info.type")?,
        square_feet: bounded(
            count(property.square_feet, SQUARE_FEET)?,
            SQUARE_FEET,
            MIN_SQUARE_FEET..=MAX_SQUARE_FEET,
            "must be from 100 to 100000",
        )?,
        year_built,
        pest_issues: pest_issues(property.pest_issues)?,
    })
}

/// `value` when absent or within `range`; else the field's error.
fn bounded(
    value: Option<u64>,
    field: &'static str,
    range: std::ops::RangeInclusive<u64>,
    problem: &'static str,
) -> Result<Option<u64>, EventError> {
    match value {
        Some(value) if !range.contains(&value) => Err(EventError::Invalid { field, problem }),
        value => Ok(value),
    }
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
