//! The enricher Lambda's handler: an SQS batch in, the partial batch response out.
//!
//! Valid events are folded into `CustomerFeatures` by the enricher core. Transient
//! failures (throttling past the SDK's retries, conflicts past the retry bound) go back to
//! SQS through `batchItemFailures`. Permanent ones (malformed JSON, invalid events) are sent
//! straight to the dead-letter queue with attributes saying why and acknowledged, so a
//! poison message costs no retries; if that send fails, the message is reported as failed
//! instead: a message is never dropped.

use std::collections::BTreeMap;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, TimeZone, Utc};
use futures_util::future::join_all;
use referral_aws::dynamo::{DynamoFeatureStore, FEATURE_STORE_IAM_ACTIONS};
use referral_aws::sqs::{MAX_MESSAGE_ATTRIBUTES, SqsQueue};
use referral_domain::enricher::{
    BatchReport, EnrichCounters, Enricher, EnricherConfig, MessageReport, Outcome, RawMessage,
};
use referral_domain::env::{EnvError, Vars};
use referral_domain::event::Rejection;
use referral_domain::ports::{FeatureStore, OutgoingMessage, WorkQueue};
use referral_domain::redact::{customer_ref, mask_emails};
use serde::Serialize;

/// The enricher's version, stamped on every dead letter.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Environment variables the binary reads (the template sets exactly these).
pub const ENV_VARS: &[&str] = &[
    ENV_FEATURES_TABLE,
    ENV_DEAD_LETTER_QUEUE_URL,
    ENV_CONCURRENCY,
    ENV_MAX_WRITE_ATTEMPTS,
];
const ENV_FEATURES_TABLE: &str = "FEATURES_TABLE";
const ENV_DEAD_LETTER_QUEUE_URL: &str = "DEAD_LETTER_QUEUE_URL";
const ENV_CONCURRENCY: &str = "ENRICHER_CONCURRENCY";
const ENV_MAX_WRITE_ATTEMPTS: &str = "ENRICHER_MAX_WRITE_ATTEMPTS";

/// IAM actions of the SDK calls this function's code makes (the event-source mapping's own
/// polling permissions are the template's business).
pub fn iam_actions() -> Vec<&'static str> {
    let mut actions: Vec<&'static str> = FEATURE_STORE_IAM_ACTIONS.to_vec();
    actions.push("sqs:SendMessage");
    actions
}

/// Names of the dead-letter attributes that say why a message was refused.
pub mod dead_letter {
    pub const ERROR_KIND: &str = "error_kind";
    pub const ERROR_FIELD: &str = "error_field";
    pub const ERROR_MESSAGE: &str = "error_message";
    pub const ENRICHER_VERSION: &str = "enricher_version";
    pub const FIRST_FAILURE_AT: &str = "first_failure_at";
    pub const SOURCE_MESSAGE_ID: &str = "source_message_id";
    pub const EVENT_ID: &str = "event_id";
}

const MAX_ERROR_MESSAGE_CHARS: usize = 256;

/// Settings of the function, from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The `CustomerFeatures` table.
    pub features_table: String,
    /// Where permanently invalid messages go, with their reason.
    pub dead_letter_queue_url: String,
    /// Customers written at the same time (default 8).
    pub concurrency: usize,
    /// Conditional writes tried per customer before the messages go back to SQS (default 8).
    pub max_write_attempts: u32,
}

impl Config {
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from_vars(&Vars::process())
    }

    pub fn from_vars(vars: &Vars<impl Fn(&str) -> Option<String>>) -> Result<Self, EnvError> {
        const AT_LEAST_ONE: &str = "a whole number of at least 1";
        let defaults = EnricherConfig::default();
        Ok(Config {
            features_table: vars
                .required(ENV_FEATURES_TABLE, "the CustomerFeatures table's name")?,
            dead_letter_queue_url: vars.required(
                ENV_DEAD_LETTER_QUEUE_URL,
                "the URL of the webhook dead-letter queue",
            )?,
            concurrency: vars.parsed(ENV_CONCURRENCY, defaults.concurrency, AT_LEAST_ONE, |n| {
                *n >= 1
            })?,
            max_write_attempts: vars.parsed(
                ENV_MAX_WRITE_ATTEMPTS,
                defaults.max_write_attempts,
                AT_LEAST_ONE,
                |n| *n >= 1,
            )?,
        })
    }

    pub fn enricher_config(&self) -> EnricherConfig {
        EnricherConfig {
            concurrency: self.concurrency,
            max_write_attempts: self.max_write_attempts,
            ..EnricherConfig::default()
        }
    }
}

/// What one invocation did, beyond the response Lambda sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    pub response: SqsBatchResponse,
    pub report: BatchReport,
    pub counters: HandlerCounters,
}

/// The batch's counts as logged and published as metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HandlerCounters {
    #[serde(flatten)]
    pub enrich: EnrichCounters,
    /// Rejected messages sent to the dead-letter queue.
    pub dead_lettered: u64,
    /// Rejected messages whose dead-letter send failed: left to SQS's redrive instead.
    pub dead_letter_failures: u64,
    /// Messages reported in `batchItemFailures`.
    pub batch_item_failures: u64,
}

/// The handler with its dependencies, built once per execution environment.
#[derive(Debug, Clone)]
pub struct EnricherHandler<S, D> {
    enricher: Enricher<S>,
    dead_letters: D,
}

impl EnricherHandler<DynamoFeatureStore, SqsQueue> {
    /// The production wiring: DynamoDB feature store, SQS dead-letter queue.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, config: &Config) -> Self {
        let store = DynamoFeatureStore::new(
            aws_sdk_dynamodb::Client::new(sdk),
            config.features_table.clone(),
        );
        let dead_letters = SqsQueue::new(
            aws_sdk_sqs::Client::new(sdk),
            config.dead_letter_queue_url.clone(),
        );
        EnricherHandler::new(Enricher::new(store, config.enricher_config()), dead_letters)
    }
}

impl<S: FeatureStore, D: WorkQueue> EnricherHandler<S, D> {
    pub fn new(enricher: Enricher<S>, dead_letters: D) -> Self {
        EnricherHandler {
            enricher,
            dead_letters,
        }
    }

    pub fn enricher(&self) -> &Enricher<S> {
        &self.enricher
    }

    /// Handles one SQS batch; the response lists the messages SQS must deliver again.
    pub async fn handle(&self, event: &SqsEvent, now: DateTime<Utc>) -> BatchOutcome {
        let raw: Vec<RawMessage<'_>> = event
            .records
            .iter()
            .map(|record| RawMessage {
                message_id: record.message_id.as_deref().unwrap_or_default(),
                body: record.body.as_deref().unwrap_or_default(),
            })
            .collect();
        let report = self.enricher.process(&raw).await;

        let dead_letter_sends = event.records.iter().zip(&report.messages).filter_map(
            |(record, message)| match &message.outcome {
                Outcome::Rejected(rejection) => Some(self.dead_letter(record, rejection, now)),
                _ => None,
            },
        );
        let mut dead_letter_results = join_all(dead_letter_sends).await.into_iter();

        let mut counters = HandlerCounters {
            enrich: report.counters,
            ..HandlerCounters::default()
        };
        let mut failures = Vec::new();
        for message in &report.messages {
            let retry = match &message.outcome {
                Outcome::Failed(_) => true,
                Outcome::Rejected(_) => match dead_letter_results.next() {
                    Some(Ok(())) => {
                        counters.dead_lettered += 1;
                        false
                    }
                    _ => {
                        counters.dead_letter_failures += 1;
                        true
                    }
                },
                _ => false,
            };
            log_outcome(message, retry);
            if retry {
                failures.push(message.message_id.clone());
            }
        }
        counters.batch_item_failures = failures.len() as u64;
        tracing::info!(
            messages = counters.enrich.messages,
            customers = counters.enrich.customers,
            applied = counters.enrich.applied,
            duplicate = counters.enrich.duplicate,
            conflicting_duplicate = counters.enrich.conflicting_duplicate,
            stale = counters.enrich.stale,
            ignored = counters.enrich.ignored,
            rejected = counters.enrich.rejected,
            failed = counters.enrich.failed,
            conflicts = counters.enrich.conflicts,
            dynamodb_reads = counters.enrich.store_reads,
            dynamodb_writes = counters.enrich.store_writes,
            dead_lettered = counters.dead_lettered,
            dead_letter_failures = counters.dead_letter_failures,
            batch_item_failures = counters.batch_item_failures,
            "batch processed"
        );

        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = failures
            .into_iter()
            .map(|id| {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                failure
            })
            .collect();
        BatchOutcome {
            response,
            report,
            counters,
        }
    }

    async fn dead_letter(
        &self,
        record: &SqsMessage,
        rejection: &Rejection,
        now: DateTime<Utc>,
    ) -> Result<(), referral_domain::ports::AdapterError> {
        let letter = dead_letter_message(record, rejection, now);
        let result = self.dead_letters.send(vec![letter]).await;
        if let Err(error) = &result {
            tracing::error!(
                message_id = record.message_id.as_deref().unwrap_or_default(),
                error = %error,
                "dead-letter send failed; leaving the message to SQS"
            );
        }
        result
    }
}

/// The dead letter of a refused message: its body unchanged, its own string attributes
/// (as many as fit), and why it was refused.
pub fn dead_letter_message(
    record: &SqsMessage,
    rejection: &Rejection,
    now: DateTime<Utc>,
) -> OutgoingMessage {
    let first_failure = record
        .attributes
        .get("ApproximateFirstReceiveTimestamp")
        .and_then(|millis| millis.parse::<i64>().ok())
        .and_then(|millis| Utc.timestamp_millis_opt(millis).single())
        .unwrap_or(now);
    let error_message: String = rejection
        .error
        .to_string()
        .chars()
        .take(MAX_ERROR_MESSAGE_CHARS)
        .collect();
    let mut reason = BTreeMap::from([
        (dead_letter::ERROR_KIND, rejection.error.kind().to_owned()),
        (dead_letter::ERROR_FIELD, rejection.error.field().to_owned()),
        (dead_letter::ERROR_MESSAGE, error_message),
        (dead_letter::ENRICHER_VERSION, VERSION.to_owned()),
        (
            dead_letter::FIRST_FAILURE_AT,
            referral_domain::features::rfc3339::format(&first_failure),
        ),
        (
            dead_letter::SOURCE_MESSAGE_ID,
            record.message_id.clone().unwrap_or_default(),
        ),
    ]);
    if let Some(event_id) = &rejection.event_id {
        reason.insert(dead_letter::EVENT_ID, event_id.clone());
    }
    let room = MAX_MESSAGE_ATTRIBUTES.saturating_sub(reason.len());
    let mut attributes: BTreeMap<String, String> = record
        .message_attributes
        .iter()
        .filter(|(name, _)| !reason.contains_key(name.as_str()))
        .filter_map(|(name, value)| Some((name.clone(), value.string_value.clone()?)))
        .take(room)
        .collect();
    attributes.extend(
        reason
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value)),
    );
    OutgoingMessage {
        body: record.body.clone().unwrap_or_default(),
        attributes,
    }
}

/// One line per message: its outcome, the customer as a hash, never the e-mail or body.
fn log_outcome(message: &MessageReport, retry: bool) {
    let customer = message.customer_email.as_deref().map(customer_ref);
    let customer = customer.as_deref().unwrap_or_default();
    let event_id = message.event_id.as_deref().unwrap_or_default();
    match &message.outcome {
        Outcome::Rejected(rejection) => tracing::warn!(
            message_id = %message.message_id,
            event_id,
            outcome = "rejected",
            error_kind = rejection.error.kind(),
            field = rejection.error.field(),
            retry,
            "message refused"
        ),
        Outcome::Failed(failure) => tracing::warn!(
            message_id = %message.message_id,
            event_id,
            customer,
            outcome = "failed",
            error_kind = failure.kind(),
            // A service's error text may quote the item's key: the customer's address.
            error = %mask_emails(&failure.to_string()),
            retry,
            "message failed, SQS will deliver it again"
        ),
        outcome => tracing::info!(
            message_id = %message.message_id,
            event_id,
            customer,
            outcome = outcome.label(),
            "message processed"
        ),
    }
}
