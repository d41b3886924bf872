//! `--filter EXPR`: which dead letters a replay takes. The grammar is in [`HELP`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use referral_domain::event::normalise_email;
use referral_domain::redact::{customer_ref, mask_email, mask_emails};
use serde_json::Value;

use super::origin::QueueRole;
use super::queue::DlqMessage;
use super::stream::StreamFailure;

/// The grammar, shown by `referral dlq replay --help`.
pub const HELP: &str = "\
Filter expressions (--filter EXPR):
  EXPR  := TERM [ ',' TERM ]...       every term must hold (AND)
  TERM  := KEY '=' VALUES | KEY '!=' VALUES | AGE
  VALUES:= VALUE [ '|' VALUE ]...     any one of the values (OR)
  AGE   := 'older-than=' DURATION | 'newer-than=' DURATION
  DURATION: a number and a unit, repeated: 90s, 10m, 2h30m, 7d (units ms, s, m, h, d)

Keys:
  kind      error kind: the enricher's `error_kind` attribute (malformed_json, missing_field,
            wrong_type, invalid_value, ...); `redriven` for messages SQS moved after
            maxReceiveCount (no reason attributes); `stream_failure` for the orchestrator's
            stream failure records
  type      event type: the `event_type` attribute, else the body's `event_type`
  customer  an e-mail address: matches the `customer_ref` attribute (the hash of the
            address, keyed with CUSTOMER_REF_KEY when the functions have one: export the
            same value) or the body's customer.email, both after trimming and lower-casing
  event     event id: the `event_id` attribute, else the body's `event_id`
  field     the enricher's `error_field` attribute (e.g. customer.email)
  older-than / newer-than   age since the message was first sent (SQS SentTimestamp)

A key absent from a message does not equal any value (so `!=` matches it).
Examples:
  --filter kind=malformed_json
  --filter 'kind=redriven|invalid_value,type=service.completed,older-than=10m'
  --filter customer=jane.doe@example.com
  --filter 'kind!=malformed_json,newer-than=1d'";

/// A `--filter` that cannot be used. The text never repeats an e-mail address in clear.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error(
        "--filter term {term:?} has no '=': write KEY=VALUE (see `referral dlq replay --help`)"
    )]
    NoEquals { term: String },
    #[error(
        "--filter key {key:?} is unknown: use kind, type, customer, event, field, older-than or \
         newer-than"
    )]
    UnknownKey { key: String },
    #[error("--filter term {term:?} has an empty value")]
    EmptyValue { term: String },
    #[error("--filter customer value {masked} is not an e-mail address: {problem}")]
    BadEmail { masked: String, problem: String },
    #[error(
        "--filter {key}={value:?} is not a duration: write a number and a unit, e.g. 90s, 10m, \
         2h30m, 7d"
    )]
    BadDuration { key: &'static str, value: String },
    #[error("--filter {key} takes '=' only, not '!='")]
    NegatedAge { key: &'static str },
    #[error("--filter is empty: leave it out to take every message")]
    Empty,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Kind,
    Type,
    Customer,
    Event,
    Field,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Values {
        key: Key,
        /// For `customer`: the normalised addresses.
        values: Vec<String>,
        negated: bool,
    },
    OlderThan(Duration),
    NewerThan(Duration),
}

/// A parsed filter: every term must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    terms: Vec<Term>,
    /// The expression as given, e-mails masked: for output.
    shown: String,
}

/// What a filter looks at in a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub kind: String,
    pub event_type: Option<String>,
    pub customer_ref: Option<String>,
    /// Normalised, from the body.
    pub customer_email: Option<String>,
    pub event_id: Option<String>,
    pub field: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// The kind shown for messages that reached the DLQ through the redrive policy, which
/// carry no reason attributes.
pub const REDRIVEN: &str = "redriven";
/// The kind shown for the orchestrator's stream failure records.
pub const STREAM_FAILURE: &str = "stream_failure";

impl Facts {
    /// What a message of a queue in `role` shows a filter.
    pub fn of(message: &DlqMessage, role: QueueRole) -> Self {
        let body: Option<Value> = serde_json::from_str(&message.body).ok();
        let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_owned);
        let kind = if StreamFailure::recognise(message, role).is_some() {
            STREAM_FAILURE.to_owned()
        } else {
            message
                .attribute("error_kind")
                .unwrap_or(REDRIVEN)
                .to_owned()
        };
        let customer_email = text(
            body.as_ref()
                .and_then(|body| body.pointer("/customer/email")),
        )
        // A refused address has no key; matched as sent, with ASCII case only folded.
        .map(|email| normalise_email(&email).unwrap_or_else(|_| email.trim().to_ascii_lowercase()));
        Facts {
            kind,
            event_type: message
                .attribute("event_type")
                .map(str::to_owned)
                .or_else(|| text(body.as_ref().and_then(|body| body.get("event_type")))),
            customer_ref: message.attribute("customer_ref").map(str::to_owned),
            customer_email,
            event_id: message
                .attribute("event_id")
                .map(str::to_owned)
                .or_else(|| text(body.as_ref().and_then(|body| body.get("event_id")))),
            field: message.attribute("error_field").map(str::to_owned),
            sent_at: message.sent_at,
        }
    }
}

impl Filter {
    pub fn parse(expression: &str) -> Result<Self, FilterError> {
        let mut terms = Vec::new();
        let mut shown = Vec::new();
        for raw in expression
            .split(',')
            .map(str::trim)
            .filter(|term| !term.is_empty())
        {
            let (key, negated, value) = match raw.split_once('=') {
                Some((key, value)) => match key.strip_suffix('!') {
                    Some(key) => (key.trim(), true, value.trim()),
                    None => (key.trim(), false, value.trim()),
                },
                None => {
                    return Err(FilterError::NoEquals {
                        term: mask_emails(raw),
                    });
                }
            };
            if value.is_empty() {
                return Err(FilterError::EmptyValue {
                    term: mask_emails(raw),
                });
            }
            let key = key.to_ascii_lowercase();
            let term = match key.as_str() {
                "older-than" | "newer-than" => {
                    let name = if key == "older-than" {
                        "older-than"
                    } else {
                        "newer-than"
                    };
                    if negated {
                        return Err(FilterError::NegatedAge { key: name });
                    }
                    let age = parse_duration(value).ok_or_else(|| FilterError::BadDuration {
                        key: name,
                        value: value.to_owned(),
                    })?;
                    if name == "older-than" {
                        Term::OlderThan(age)
                    } else {
                        Term::NewerThan(age)
                    }
                }
                "kind" | "type" | "customer" | "event" | "field" => {
                    let key = match key.as_str() {
                        "kind" => Key::Kind,
                        "type" => Key::Type,
                        "customer" => Key::Customer,
                        "event" => Key::Event,
                        _ => Key::Field,
                    };
                    let mut values = Vec::new();
                    for value in value.split('|').map(str::trim) {
                        if value.is_empty() {
                            return Err(FilterError::EmptyValue {
                                term: mask_emails(raw),
                            });
                        }
                        values.push(if key == Key::Customer {
                            normalise_email(value).map_err(|error| FilterError::BadEmail {
                                masked: mask_email(value),
                                problem: error.to_string(),
                            })?
                        } else {
                            value.to_owned()
                        });
                    }
                    Term::Values {
                        key,
                        values,
                        negated,
                    }
                }
                _ => {
                    return Err(FilterError::UnknownKey {
                        key: mask_emails(&key),
                    });
                }
            };
            shown.push(format!(
                "{key}{}={}",
                if negated { "!" } else { "" },
                mask_emails(value)
            ));
            terms.push(term);
        }
        if terms.is_empty() {
            return Err(FilterError::Empty);
        }
        Ok(Filter {
            terms,
            shown: shown.join(","),
        })
    }

    /// The expression for output, e-mails masked.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    pub fn matches(&self, facts: &Facts, now: DateTime<Utc>) -> bool {
        self.terms.iter().all(|term| term.matches(facts, now))
    }
}

impl Term {
    fn matches(&self, facts: &Facts, now: DateTime<Utc>) -> bool {
        let age = || {
            facts
                .sent_at
                .and_then(|sent| (now - sent).to_std().ok())
                .unwrap_or(Duration::ZERO)
        };
        match self {
            // A message with no send time counts as new: it is never taken for old.
            Term::OlderThan(limit) => facts.sent_at.is_some() && age() >= *limit,
            Term::NewerThan(limit) => age() < *limit,
            Term::Values {
                key,
                values,
                negated,
            } => {
                let hit = values.iter().any(|value| match key {
                    Key::Kind => facts.kind == *value,
                    Key::Type => facts.event_type.as_deref() == Some(value.as_str()),
                    Key::Event => facts.event_id.as_deref() == Some(value.as_str()),
                    Key::Field => facts.field.as_deref() == Some(value.as_str()),
                    Key::Customer => {
                        facts.customer_email.as_deref() == Some(value.as_str())
                            || facts.customer_ref.as_deref() == Some(customer_ref(value).as_str())
                    }
                });
                hit != *negated
            }
        }
    }
}

pub use referral_domain::duration::parse_duration;

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            kind: "malformed_json".to_owned(),
            event_type: Some("service.completed".to_owned()),
            customer_ref: Some(customer_ref("ann@example.com")),
            customer_email: None,
            event_id: Some("evt-1".to_owned()),
            field: Some("body".to_owned()),
            sent_at: Some(Utc::now() - chrono::Duration::minutes(30)),
        }
    }

    #[test]
    fn terms_are_anded_and_values_ored() {
        let now = Utc::now();
        let matches = |expression: &str| Filter::parse(expression).unwrap().matches(&facts(), now);
        assert!(matches("kind=malformed_json"));
        assert!(matches(
            "kind=redriven|malformed_json, type=service.completed"
        ));
        assert!(!matches("kind=malformed_json,type=customer.updated"));
        assert!(matches("customer= Ann@Example.com "));
        assert!(!matches("customer=bob@example.com"));
        assert!(matches("kind!=missing_field,event=evt-1,field=body"));
        assert!(matches("older-than=10m"));
        assert!(!matches("older-than=1h"));
        assert!(matches("newer-than=1h"));
        assert!(!matches("newer-than=10m"));
    }

    #[test]
    fn the_body_email_matches_when_there_is_no_customer_ref() {
        let mut facts = facts();
        facts.customer_ref = None;
        facts.customer_email = Some("ann@example.com".to_owned());
        let filter = Filter::parse("customer=ANN@example.com").unwrap();
        assert!(filter.matches(&facts, Utc::now()));
        assert_eq!(filter.shown(), "customer=A***@example.com");
    }

    #[test]
    fn bad_expressions_say_what_is_wrong_without_the_address() {
        assert!(matches!(
            Filter::parse("kind"),
            Err(FilterError::NoEquals { .. })
        ));
        assert!(matches!(
            Filter::parse("colour=red"),
            Err(FilterError::UnknownKey { .. })
        ));
        assert!(matches!(
            Filter::parse("older-than=soon"),
            Err(FilterError::BadDuration { .. })
        ));
        assert!(matches!(Filter::parse(" , "), Err(FilterError::Empty)));
        assert!(matches!(
            Filter::parse("kind=a||b"),
            Err(FilterError::EmptyValue { .. })
        ));
        let error = Filter::parse("customer=jane doe@example.com").unwrap_err();
        assert!(!error.to_string().contains("jane"), "{error}");
        let error = Filter::parse("jane@example.com").unwrap_err();
        assert!(!error.to_string().contains("jane@"), "{error}");
    }
}
