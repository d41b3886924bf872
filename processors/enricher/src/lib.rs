//! The enricher Lambda's handler: an SQS batch in, the partial batch response out.
//!
//! Valid events are folded into `CustomerFeatures` by the enricher core. Transient
//! failures (throttling past the SDK's retries, conflicts past the retry bound) go back to
//! SQS through `batchItemFailures`. Messages refused for good (malformed JSON, invalid
//! events, an id reused with other content) are sent straight to the dead-letter queue with attributes saying why and acknowledged, so a poison message costs
//! no retries; if that send fails, the message is reported as failed instead: a message is
//! never dropped.

pub mod dead_letter;

use std::sync::Arc;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use referral_aws::dynamo::{
    ARCHIVE_IAM_ACTIONS, DynamoEventArchive, DynamoFeatureStore, FEATURE_STORE_IAM_ACTIONS,
};
use referral_aws::sqs::SqsQueue;
use referral_domain::enricher::{
    BatchReport, EnrichCounters, Enricher, EnricherConfig, Failure, MessageReport, Outcome,
    QueuedWebhook, Refusal,
};
use referral_domain::env::{EnvError, Vars};
use referral_domain::features::{LifetimeValueRule, MemoryLimits};
use referral_domain::ports::{ErasureLog, EventArchive, FeatureStore, WorkQueue};
use referral_domain::redact::{
    CUSTOMER_REF_KEY_ARN_VAR, check_customer_ref_key, customer_ref, mask_emails,
};
use referral_domain::trace::{TRACEPARENT, links};
use serde::Serialize;

/// The enricher's version, stamped on every dead letter.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The `service` dimension of this function's metrics ([`HandlerCounters`]).
pub const METRICS_SERVICE: &str = "enricher";

/// The metrics of [`HandlerCounters`] that mean a person must look; the template has an
/// alarm on each (`tests/tests/sam_alarms.rs` checks it) and the README a runbook line.
pub const ALARMED_METRICS: &[&str] = &[
    "conflicting_duplicate",
    "unprovable",
    "rejected",
    "quarantined",
    "dead_letter_failures",
];

/// Environment variables the binary reads (the template sets exactly these).
pub const ENV_VARS: &[&str] = &[
    ENV_FEATURES_TABLE,
    ENV_ARCHIVE_TABLE,
    ENV_DEAD_LETTER_QUEUE_URL,
    ENV_CONCURRENCY,
    ENV_MAX_WRITE_ATTEMPTS,
    ENV_CACHE_MB,
    ENV_MEMORY_DAYS,
    LifetimeValueRule::ENV_VARS[0],
    LifetimeValueRule::ENV_VARS[1],
    LifetimeValueRule::ENV_VARS[2],
    LifetimeValueRule::ENV_VARS[3],
    CUSTOMER_REF_KEY_ARN_VAR,
];
const ENV_FEATURES_TABLE: &str = "FEATURES_TABLE";
const ENV_ARCHIVE_TABLE: &str = "ARCHIVE_TABLE";
const ENV_DEAD_LETTER_QUEUE_URL: &str = "DEAD_LETTER_QUEUE_URL";
const ENV_CONCURRENCY: &str = "ENRICHER_CONCURRENCY";
const ENV_MAX_WRITE_ATTEMPTS: &str = "ENRICHER_MAX_WRITE_ATTEMPTS";
const ENV_CACHE_MB: &str = "ENRICHER_CACHE_MB";
const ENV_MEMORY_DAYS: &str = "ENRICHER_MEMORY_DAYS";

/// IAM actions of the SDK calls this function's code makes (the event-source mapping's own
/// polling permissions are the template's business).
pub fn iam_actions() -> Vec<&'static str> {
    let mut actions: Vec<&'static str> = FEATURE_STORE_IAM_ACTIONS.to_vec();
    actions.extend(ARCHIVE_IAM_ACTIONS);
    actions.extend(referral_aws::secrets::SECRETS_IAM_ACTIONS);
    actions.sort_unstable();
    actions.dedup();
    actions.push("sqs:SendMessage");
    actions
}

/// Settings of the function, from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The `CustomerFeatures` table.
    pub features_table: String,
    /// The event archive table (`CustomerFeaturesArchive`).
    pub archive_table: String,
    /// Where permanently invalid messages go, with their reason.
    pub dead_letter_queue_url: String,
    /// Customers written at the same time (default 8).
    pub concurrency: usize,
    /// Conditional writes tried per customer before the messages go back to SQS (default 8).
    pub max_write_attempts: u32,
    /// Mebibytes of feature items kept to write without reading first (default 32).
    pub cache_mb: usize,
    /// Days of a customer's events (before their latest) kept in the item itself, so that a
    /// redelivery within them costs no read; older ones are found in the archive (default
    /// 28; see `MemoryLimits`). A cost setting: any age is exact.
    pub memory_days: i64,
    /// The lifetime-value bands every write gives (`LTV_*`; default DESIGN.md's).
    pub lifetime_value: LifetimeValueRule,
}

impl Config {
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from_vars(&Vars::process())
    }

    pub fn from_vars(vars: &Vars<impl Fn(&str) -> Option<String>>) -> Result<Self, EnvError> {
        const AT_LEAST_ONE: &str = "a whole number of at least 1";
        let defaults = EnricherConfig::default();
        check_customer_ref_key(vars)?;
        Ok(Config {
            features_table: vars
                .required(ENV_FEATURES_TABLE, "the CustomerFeatures table's name")?,
            archive_table: vars.required(
                ENV_ARCHIVE_TABLE,
                "the CustomerFeaturesArchive table's name",
            )?,
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
            cache_mb: vars.parsed(
                ENV_CACHE_MB,
                defaults.cache_bytes >> 20,
                "a whole number of mebibytes, 1 to 4096",
                |n| (1..=4096).contains(n),
            )?,
            memory_days: vars.parsed(
                ENV_MEMORY_DAYS,
                MemoryLimits::DEFAULT_SPAN_DAYS,
                "a whole number of days, 1 to 3650",
                |n| (1..=3650).contains(n),
            )?,
            lifetime_value: LifetimeValueRule::from_vars(vars)?,
        })
    }

    pub fn enricher_config(&self) -> EnricherConfig {
        EnricherConfig {
            concurrency: self.concurrency,
            max_write_attempts: self.max_write_attempts,
            cache_bytes: self.cache_mb << 20,
            memory: MemoryLimits {
                span: chrono::Duration::days(self.memory_days),
                ..MemoryLimits::default()
            },
            lifetime_value: self.lifetime_value,
            ..EnricherConfig::default()
        }
    }
}

/// What one invocation did, beyond the response Lambda sees.
#[derive(Debug, Clone)]
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
    /// Refused messages (rejected, conflicting duplicates, unprovable, quarantined) sent to
    /// the dead-letter queue.
    pub dead_lettered: u64,
    /// Refused messages whose dead-letter send failed: left to SQS's redrive instead.
    pub dead_letter_failures: u64,
    /// Messages reported in `batchItemFailures`.
    pub batch_item_failures: u64,
}

/// The handler with its dependencies, built once per execution environment.
#[derive(Debug)]
pub struct EnricherHandler<S, A, D> {
    enricher: Enricher<S, A>,
    dead_letters: D,
}

impl EnricherHandler<DynamoFeatureStore, DynamoEventArchive, SqsQueue> {
    /// The production wiring: DynamoDB feature store and archive, SQS dead-letter queue.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, config: &Config) -> Self {
        let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
        let store = DynamoFeatureStore::new(dynamodb.clone(), config.features_table.clone());
        let archive = DynamoEventArchive::new(dynamodb, config.archive_table.clone());
        let dead_letters = SqsQueue::new(
            aws_sdk_sqs::Client::new(sdk),
            config.dead_letter_queue_url.clone(),
        );
        EnricherHandler::new(
            Enricher::new(store, archive, config.enricher_config()),
            dead_letters,
        )
    }
}

impl<S: FeatureStore, A: EventArchive + ErasureLog, D: WorkQueue> EnricherHandler<S, A, D> {
    pub fn new(enricher: Enricher<S, A>, dead_letters: D) -> Self {
        EnricherHandler {
            enricher,
            dead_letters,
        }
    }

    pub fn enricher(&self) -> &Enricher<S, A> {
        &self.enricher
    }

    /// Handles one SQS batch; the response lists the messages SQS must deliver again.
    pub async fn handle(&self, event: &SqsEvent, now: DateTime<Utc>) -> BatchOutcome {
        let webhooks: Vec<QueuedWebhook<'_>> = event.records.iter().map(queued_webhook).collect();
        let mut report = self.enricher.process(&webhooks, now).await;

        let dead_letter_sends =
            event
                .records
                .iter()
                .zip(&report.messages)
                .filter_map(|(record, message)| {
                    let refusal = message.outcome.refusal()?;
                    Some(self.dead_letter(record, message, refusal, now))
                });
        let mut dead_letter_results = join_all(dead_letter_sends).await.into_iter();

        let mut counters = HandlerCounters {
            enrich: report.counters,
            ..HandlerCounters::default()
        };
        let mut failures = Vec::new();
        for message in &mut report.messages {
            if message.outcome.refusal().is_some() {
                match dead_letter_results.next() {
                    Some(Ok(())) => counters.dead_lettered += 1,
                    Some(Err(error)) => {
                        counters.dead_letter_failures += 1;
                        message.outcome = Outcome::Failed(Failure::DeadLetterUnavailable(error));
                    }
                    None => message.outcome = Outcome::Failed(Failure::NotReached),
                }
            }
            let span = tracing::info_span!("message", message_id = %message.message_id);
            span.in_scope(|| log_outcome(message));
            if matches!(message.outcome, Outcome::Failed(_)) {
                failures.push(message.message_id.clone());
            }
        }
        counters.batch_item_failures = failures.len() as u64;
        // One span link per record, as OpenTelemetry links a batch to the traces of its
        // messages; without an OpenTelemetry SDK, a field of the batch's line.
        let links = links(report.messages.iter().map(|message| message.trace.as_ref()));
        tracing::info!(
            links,
            messages = counters.enrich.messages,
            customers = counters.enrich.customers,
            applied = counters.enrich.applied,
            duplicate = counters.enrich.duplicate,
            conflicting_duplicate = counters.enrich.conflicting_duplicate,
            applied_late = counters.enrich.applied_late,
            unprovable = counters.enrich.unprovable,
            ignored = counters.enrich.ignored,
            erased = counters.enrich.erased,
            rejected = counters.enrich.rejected,
            quarantined = counters.enrich.quarantined,
            failed = counters.enrich.failed,
            conflicts = counters.enrich.conflicts,
            cache_misses = counters.enrich.cache_misses,
            dynamodb_reads = counters.enrich.store_reads,
            dynamodb_writes = counters.enrich.store_writes,
            archive_reads = counters.enrich.archive_reads,
            archive_writes = counters.enrich.archive_writes,
            archive_splits = counters.enrich.archive_splits,
            erasure_reads = counters.enrich.erasure_reads,
            erasure_filter_reads = counters.enrich.erasure_filter_reads,
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
        message: &MessageReport,
        refusal: Refusal,
        now: DateTime<Utc>,
    ) -> Result<(), Arc<referral_domain::ports::AdapterError>> {
        let letter =
            dead_letter::dead_letter_message(record, message.event_id.as_deref(), &refusal, now);
        self.dead_letters.send(vec![letter]).await.map_err(Arc::new)
    }
}

/// The core's view of one SQS record. A record without an id or body is still handled (and
/// refused as an empty body), never skipped.
fn queued_webhook(record: &SqsMessage) -> QueuedWebhook<'_> {
    let traceparent = record
        .message_attributes
        .get(TRACEPARENT)
        .and_then(|attribute| attribute.string_value.as_deref());
    QueuedWebhook {
        message_id: record.message_id.as_deref().unwrap_or_default(),
        body: record.body.as_deref().unwrap_or_default(),
        trace: QueuedWebhook::trace_of(traceparent),
    }
}

/// One line per message, inside its span: the outcome, the customer as a hash, never the
/// e-mail or the body.
fn log_outcome(message: &MessageReport) {
    let customer = message.customer_email.as_deref().map(customer_ref);
    let customer = customer.as_deref().unwrap_or_default();
    let event_id = message.event_id.as_deref().unwrap_or_default();
    let trace_id = message.trace.map(|trace| trace.trace_id());
    let trace_id = trace_id.as_deref();
    match &message.outcome {
        Outcome::Failed(failure) => tracing::warn!(
            event_id,
            customer,
            trace_id,
            outcome = "failed",
            error_kind = failure.kind(),
            // A service's error text may quote the item's key: the customer's address.
            error = %mask_emails(&referral_domain::error_chain(failure)),
            "message failed, SQS will deliver it again"
        ),
        outcome => match outcome.refusal() {
            Some(refusal) => tracing::warn!(
                event_id,
                customer,
                trace_id,
                outcome = outcome.label(),
                error_kind = refusal.kind,
                field = refusal.field,
                "message refused and dead-lettered"
            ),
            None => tracing::info!(
                event_id,
                customer,
                trace_id,
                outcome = outcome.label(),
                "message processed"
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUIRED: [(&str, &str); 3] = [
        ("FEATURES_TABLE", "F"),
        ("ARCHIVE_TABLE", "A"),
        ("DEAD_LETTER_QUEUE_URL", "http://localhost/dlq"),
    ];

    fn config(extra: &[(&str, &str)]) -> Result<Config, EnvError> {
        let pairs: Vec<(&str, &str)> = REQUIRED.iter().chain(extra).copied().collect();
        Config::from_vars(&Vars::fixed(&pairs))
    }

    #[test]
    fn the_lifetime_value_rule_defaults_and_reaches_the_enricher() {
        let unset = config(&[]).unwrap();
        assert_eq!(
            unset.enricher_config().lifetime_value,
            LifetimeValueRule::default()
        );
        let set = config(&[
            ("LTV_HIGH_MIN_SERVICES", "8"),
            ("LTV_HIGH_MIN_SATISFACTION", "4.2"),
            ("LTV_MEDIUM_MIN_SERVICES", "4"),
            ("LTV_MEDIUM_MIN_SATISFACTION", "3.8"),
        ])
        .unwrap();
        assert_eq!(
            set.enricher_config().lifetime_value,
            LifetimeValueRule {
                high_min_services: 8,
                high_min_satisfaction_micros: 4_200_000,
                medium_min_services: 4,
                medium_min_satisfaction_micros: 3_800_000,
            }
        );
    }

    #[test]
    fn a_bad_lifetime_value_threshold_is_refused_by_name() {
        for (name, value) in [
            ("LTV_HIGH_MIN_SERVICES", "six"),
            ("LTV_HIGH_MIN_SATISFACTION", "5.5"),
            ("LTV_MEDIUM_MIN_SERVICES", "-3"),
            ("LTV_MEDIUM_MIN_SATISFACTION", "4.5"),
        ] {
            let error = config(&[(name, value)]).unwrap_err();
            assert!(
                matches!(&error, EnvError::Invalid { name: named, .. } if *named == name),
                "{name}={value}: {error}"
            );
            assert!(error.to_string().contains(name), "{error}");
        }
    }
}
