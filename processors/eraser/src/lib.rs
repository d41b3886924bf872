//! The eraser Lambda: erasure by API. An operator invokes it with
//! `{"emails": ["..."], "dry_run": false}`; each address is erased by the erasure core that
//! `referral customers forget` runs (`referral_aws::erasure`), and the answer says what was
//! removed per place, keyed by customer ref. No address is logged or answered: a bad entry is
//! named by its position (`emails[2]`), a customer by ref.
//!
//! A bad entry does not stop the good ones; a customer whose erasure failed (an AWS error)
//! does not stop the others either, but fails the invocation once all were tried, so that
//! the operator (and the Errors alarm) sees it. Erasure is idempotent: invoke again.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::SdkConfig;
use referral_aws::dynamo::{TABLES_ENV_VARS, Tables};
use referral_aws::erasure::{self, Eraser, Removed};
use referral_aws::sqs::SqsQueue;
use referral_aws::telemetry;
use referral_domain::env::{EnvError, Vars};
use referral_domain::event::{EventError, normalise_email};
use referral_domain::ports::ERASURE_SETTLE;
use referral_domain::redact::{CUSTOMER_REF_KEY_ARN_VAR, check_customer_ref_key, customer_ref};
use serde::Serialize;
use serde_json::Value;

/// Environment variables the binary reads (the template sets exactly these).
pub const ENV_VARS: &[&str] = &[
    TABLES_ENV_VARS[0],
    TABLES_ENV_VARS[1],
    TABLES_ENV_VARS[2],
    ENV_WEBHOOK_QUEUE_URL,
    ENV_DEAD_LETTER_QUEUE_URL,
    ENV_STREAM_FAILURE_QUEUE_URL,
    ENV_SETTLE_SECONDS,
    // Set on every function by the template's Globals: refs and erasure markers are keyed
    // hashes, and must match those of the other functions.
    CUSTOMER_REF_KEY_ARN_VAR,
];
pub const ENV_WEBHOOK_QUEUE_URL: &str = "WEBHOOK_QUEUE_URL";
pub const ENV_DEAD_LETTER_QUEUE_URL: &str = "DEAD_LETTER_QUEUE_URL";
pub const ENV_STREAM_FAILURE_QUEUE_URL: &str = "STREAM_FAILURE_QUEUE_URL";
/// Seconds between recording the markers and deleting (`referral_aws::erasure`); the
/// template's value must exceed the enricher's timeout and its filter TTL (checked).
pub const ENV_SETTLE_SECONDS: &str = "ERASURE_SETTLE_SECONDS";

/// Seconds a queued webhook stays hidden while a queue is searched, as the CLI's default:
/// others' webhooks are released at once after each queue's sweep anyway.
pub const LEASE_SECONDS: u32 = 60;

/// The fields of the event.
const EMAILS: &str = "emails";
const DRY_RUN: &str = "dry_run";

/// IAM actions of the SDK calls this function's code makes, whatever the resource.
pub fn iam_actions() -> Vec<&'static str> {
    let mut actions: Vec<&'static str> = erasure::FEATURES_IAM_ACTIONS.to_vec();
    actions.extend(erasure::ARCHIVE_IAM_ACTIONS);
    actions.extend(erasure::MESSAGES_IAM_ACTIONS);
    actions.extend(erasure::QUEUE_IAM_ACTIONS);
    actions.extend(referral_aws::secrets::SECRETS_IAM_ACTIONS);
    actions.sort_unstable();
    actions.dedup();
    actions
}

/// Settings of the function, from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub tables: Tables,
    /// The webhook queue, its dead-letter queue and the stream failures, by URL.
    pub queue_urls: [String; 3],
    pub settle: Duration,
}

impl Config {
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from_vars(&Vars::process())
    }

    pub fn from_vars(vars: &Vars<impl Fn(&str) -> Option<String>>) -> Result<Self, EnvError> {
        check_customer_ref_key(vars)?;
        Ok(Config {
            tables: Tables::from_vars(vars)?,
            queue_urls: [
                vars.required(ENV_WEBHOOK_QUEUE_URL, "the webhook queue's URL")?,
                vars.required(ENV_DEAD_LETTER_QUEUE_URL, "the dead-letter queue's URL")?,
                vars.required(
                    ENV_STREAM_FAILURE_QUEUE_URL,
                    "the stream failure queue's URL",
                )?,
            ],
            settle: Duration::from_secs(vars.parsed(
                ENV_SETTLE_SECONDS,
                ERASURE_SETTLE.as_secs(),
                "whole seconds, at most 600 (the function's timeout is 900)",
                |seconds| *seconds <= 600,
            )?),
        })
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EraseError {
    #[error(
        "the event must be a JSON object: {{\"{EMAILS}\": [\"ADDRESS\", ...], \"{DRY_RUN}\": false}}"
    )]
    NotAnObject,
    #[error("{field}: {problem}")]
    Field {
        field: String,
        problem: &'static str,
    },
    #[error(
        "{count} customer(s) not erased (the others were; see the logs), invoke again: {details}"
    )]
    Failed { count: usize, details: String },
}

fn field(field: &str, problem: &'static str) -> EraseError {
    EraseError::Field {
        field: field.to_owned(),
        problem,
    }
}

/// The `service` dimension of the eraser's metrics.
pub const METRICS_SERVICE: &str = "eraser";

/// What one invocation did, emitted as metrics (EMF; Powertools' `ColdStart` once a
/// process), so that the dashboard draws the eraser like every other function.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Customers erased (or, in a dry run, looked at).
    pub erased: u64,
    /// Entries that were not addresses.
    pub rejected: u64,
    /// Customers whose erasure failed: the invocation fails, and invoking again is safe.
    pub failed: u64,
}

/// The answer of an invocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Response {
    pub dry_run: bool,
    /// Per customer ref: what was (or would be) removed where.
    pub customers: BTreeMap<String, Removed>,
    /// Per entry of the event (`emails[2]`): why it was not erased.
    pub rejected: BTreeMap<String, String>,
}

/// A well-formed event: the canonical addresses, the entries refused and why.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    emails: Vec<String>,
    rejected: BTreeMap<String, String>,
    dry_run: bool,
}

/// Reads the event by hand rather than through serde: serde's messages quote the value that
/// did not fit, and here that value may be an address.
fn request(event: &Value) -> Result<Request, EraseError> {
    let object = event.as_object().ok_or(EraseError::NotAnObject)?;
    if let Some(unknown) = object
        .keys()
        .find(|key| ![EMAILS, DRY_RUN].contains(&key.as_str()))
    {
        return Err(field(unknown, "unknown field (expected emails, dry_run)"));
    }
    let dry_run = match object.get(DRY_RUN) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(dry_run)) => *dry_run,
        Some(_) => return Err(field(DRY_RUN, "must be true or false")),
    };
    let entries = match object.get(EMAILS) {
        None => return Err(field(EMAILS, "missing: name the addresses to erase")),
        Some(Value::Array(entries)) => entries,
        Some(_) => return Err(field(EMAILS, "must be a list of addresses")),
    };
    if entries.is_empty() {
        return Err(field(
            EMAILS,
            "the list is empty: name at least one address",
        ));
    }
    let mut emails = Vec::new();
    let mut rejected = BTreeMap::new();
    for (index, entry) in entries.iter().enumerate() {
        let name = format!("{EMAILS}[{index}]");
        match entry.as_str().map(normalise_email) {
            Some(Ok(email)) => emails.push(email),
            // The address's own field is `emails[i]` here, not a webhook's `customer.email`.
            Some(Err(EventError::Invalid { problem, .. })) => {
                rejected.insert(name, problem.to_owned());
            }
            Some(Err(error)) => {
                rejected.insert(name, error.to_string());
            }
            None => {
                rejected.insert(name, "must be a string".to_owned());
            }
        }
    }
    emails.sort();
    emails.dedup();
    Ok(Request {
        emails,
        rejected,
        dry_run,
    })
}

#[derive(Debug)]
pub struct EraserHandler {
    eraser: Eraser,
}

impl EraserHandler {
    pub fn from_sdk(sdk: &SdkConfig, config: Config) -> Self {
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let queues = config
            .queue_urls
            .into_iter()
            .map(|url| SqsQueue::new(sqs.clone(), url))
            .collect();
        EraserHandler {
            eraser: Eraser::new(
                aws_sdk_dynamodb::Client::new(sdk),
                config.tables,
                queues,
                LEASE_SECONDS,
            )
            .with_settle(config.settle),
        }
    }

    pub async fn handle(&self, event: &Value) -> Result<Response, EraseError> {
        let request = request(event).inspect_err(|error| {
            tracing::warn!(error = %error, "erasure refused");
        })?;
        for (entry, problem) in &request.rejected {
            tracing::warn!(entry = %entry, problem = %problem, "entry refused, not erased");
        }
        let mut response = Response {
            dry_run: request.dry_run,
            customers: BTreeMap::new(),
            rejected: request.rejected,
        };
        let mut failed = Vec::new();
        let answers = self.eraser.erase(&request.emails, request.dry_run).await;
        for (email, answer) in request.emails.iter().zip(answers) {
            match answer {
                Ok(removed) => {
                    tracing::info!(
                        customer_ref = %removed.customer_ref,
                        dry_run = removed.dry_run,
                        features_item = removed.features_item,
                        messages_rows = removed.messages_rows,
                        archive_items = removed.archive_items,
                        queued_webhooks = ?removed.queued_webhooks,
                        marker_last_version = removed.marker_last_version,
                        "customer erased"
                    );
                    response
                        .customers
                        .insert(removed.customer_ref.clone(), removed);
                }
                Err(error) => {
                    let customer = customer_ref(email);
                    tracing::error!(customer_ref = %customer, error = %error, "customer not erased");
                    failed.push(format!("{customer}: {error}"));
                }
            }
        }
        let counters = Counters {
            erased: response.customers.len() as u64,
            rejected: response.rejected.len() as u64,
            failed: failed.len() as u64,
        };
        telemetry::emit_metrics(telemetry::NAMESPACE, METRICS_SERVICE, &counters);
        if failed.is_empty() {
            Ok(response)
        } else {
            Err(EraseError::Failed {
                count: failed.len(),
                details: failed.join("; "),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused(event: Value) -> String {
        match request(&event) {
            Err(error) => error.to_string(),
            Ok(request) => panic!("accepted: {request:?}"),
        }
    }

    #[test]
    fn a_malformed_event_is_refused_naming_the_field() {
        assert!(refused(json!(["jane@example.com"])).contains("JSON object"));
        assert_eq!(
            refused(json!({})),
            "emails: missing: name the addresses to erase"
        );
        assert_eq!(
            refused(json!({"emails": []})),
            "emails: the list is empty: name at least one address"
        );
        assert_eq!(
            refused(json!({"emails": "jane@example.com"})),
            "emails: must be a list of addresses"
        );
        assert_eq!(
            refused(json!({"emails": ["a@b.c"], "dry_run": "yes"})),
            "dry_run: must be true or false"
        );
        assert_eq!(
            refused(json!({"emails": ["a@b.c"], "dryRun": true})),
            "dryRun: unknown field (expected emails, dry_run)"
        );
    }

    #[test]
    fn a_bad_entry_is_named_by_position_and_the_good_ones_are_kept() {
        let request = request(&json!({
            "emails": [" Jane.Doe@Example.com", "not-an-address", 7, "jane.doe@example.com"],
            "dry_run": true,
        }));
        let Ok(request) = request else {
            panic!("refused: {request:?}")
        };
        assert_eq!(request.emails, ["jane.doe@example.com"]);
        assert!(request.dry_run);
        let names: Vec<&str> = request.rejected.keys().map(String::as_str).collect();
        assert_eq!(names, ["emails[1]", "emails[2]"]);
        assert!(
            !request
                .rejected
                .values()
                .any(|problem| problem.contains("not-an-address")),
            "a refusal quotes the entry: {:?}",
            request.rejected
        );
    }
}
