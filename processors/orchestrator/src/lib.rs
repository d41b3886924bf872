//! The orchestrator Lambda's handler: DynamoDB stream records of `CustomerFeatures` in, at
//! most one referral message per change out, and the stream's partial batch response.
//!
//! Every record of the batch is handled (a message is keyed by the version it is for, so
//! one stuck record need not hold up the customers after it), and the earliest that must be
//! retried (message store trouble, a live claim held by another invocation) is reported by
//! its sequence number: Lambda delivers again from there, and what is done already is found
//! done. After the mapping's retry budget a failed batch goes to its on-failure destination,
//! from which `referral dlq replay` recovers it. A record whose image cannot be decoded is
//! not retried: it is quarantined on that destination at once ([`quarantine`]), and only
//! reported for retry when even that send fails.
//!
//! Near the invocation's deadline (closer than a model call and a few writes) no new record
//! is started; the first one left is reported, so Lambda delivers it and the rest again
//! instead of the invocation timing out with claims held.

pub mod quarantine;

use std::time::Duration;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use chrono::{DateTime, Utc};
use referral_aws::bedrock::{self, BedrockConfig, BedrockGenerator};
use referral_aws::dynamo::{DynamoMessageStore, MESSAGE_WRITE_IAM_ACTIONS};
use referral_aws::sqs::SqsQueue;
use referral_aws::stream_record::{RecordError, change_record};
use referral_domain::env::{EnvError, Vars};
use referral_domain::fallback::FallbackGenerator;
use referral_domain::orchestrator::policy::{self, MessagePolicy};
use referral_domain::orchestrator::{
    Deadline, Orchestrator, OrchestratorConfig, StreamCounters, ThrottlePolicy,
};
use referral_domain::ports::{
    ENV_MESSAGE_RETENTION_DAYS, MessageGenerator, MessageRetention, MessageStore, WorkQueue,
};
use referral_domain::redact::{CUSTOMER_REF_KEY_ARN_VAR, check_customer_ref_key, mask_emails};
use referral_domain::template::TemplateGenerator;

const ENV_MESSAGES_TABLE: &str = "MESSAGES_TABLE";
const ENV_CLAIM_LEASE_SECONDS: &str = "CLAIM_LEASE_SECONDS";
pub const ENV_THROTTLE_RETRY_SECONDS: &str = "BEDROCK_THROTTLE_RETRY_SECONDS";

/// The `service` dimension of this function's metrics ([`StreamCounters`] and the
/// generator's [`referral_domain::fallback::FallbackCounters`]).
pub const METRICS_SERVICE: &str = "orchestrator";

/// The metrics that mean a person must look, alarmed in the template (`fallbacks` as a share
/// of `created`: the template-fallback rate); see `ALARMED_METRICS` of the enricher.
pub const ALARMED_METRICS: &[&str] = &["fallbacks", "quarantined"];

/// Time kept free before the deadline beyond the model's timeout: the claim and the final
/// write, each at most a couple of seconds when DynamoDB is slow.
pub const DEADLINE_SLACK: Duration = Duration::from_secs(4);

/// Environment variables the binary reads (the template sets exactly these).
pub fn env_vars() -> Vec<&'static str> {
    let mut vars = vec![
        ENV_MESSAGES_TABLE,
        ENV_CLAIM_LEASE_SECONDS,
        ENV_THROTTLE_RETRY_SECONDS,
        ENV_MESSAGE_RETENTION_DAYS,
        quarantine::ENV_STREAM_FAILURE_QUEUE_URL,
        CUSTOMER_REF_KEY_ARN_VAR,
    ];
    vars.extend_from_slice(bedrock::ENV_VARS);
    vars.extend_from_slice(policy::ENV_VARS);
    vars
}

/// IAM actions of the SDK calls this function's code makes.
pub fn iam_actions() -> Vec<&'static str> {
    let mut actions = MESSAGE_WRITE_IAM_ACTIONS.to_vec();
    actions.extend_from_slice(bedrock::IAM_ACTIONS);
    actions.extend_from_slice(referral_aws::secrets::SECRETS_IAM_ACTIONS);
    // Quarantined records, on the stream mapping's failure destination.
    actions.push("sqs:SendMessage");
    actions
}

/// The production generator: Bedrock, with the template whenever it cannot answer.
pub type ProductionGenerator = FallbackGenerator<BedrockGenerator, TemplateGenerator>;

impl OrchestratorHandler<ProductionGenerator, DynamoMessageStore> {
    /// The production wiring, from the function's environment.
    pub fn from_sdk(
        sdk: &aws_config::SdkConfig,
        config: &Config,
        bedrock_config: BedrockConfig,
    ) -> Self {
        let margin = bedrock_config.timeout + DEADLINE_SLACK;
        let generator = FallbackGenerator::over_template(BedrockGenerator::from_sdk_config(
            sdk,
            bedrock_config,
        ));
        let handler = OrchestratorHandler::new(Orchestrator::new(
            generator,
            config.message_store(sdk),
            config.orchestrator_config(),
        ))
        .with_deadline_margin(margin);
        match &config.stream_failure_queue_url {
            Some(url) => {
                handler.with_quarantine(SqsQueue::new(aws_sdk_sqs::Client::new(sdk), url.clone()))
            }
            None => handler,
        }
    }
}

/// The template's `BedrockThrottleRetrySeconds` allows the same at most.
pub const MAX_THROTTLE_RETRY_SECONDS: u64 = 3_600;

/// Settings of the function, from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The `ReferralMessages` table.
    pub messages_table: String,
    /// How long a claim protects a generation in progress (default 300 s; keep it above the
    /// function's timeout so a live invocation never loses its claim).
    pub claim_lease: Duration,
    /// How long after its write a change whose model call is throttled is handed back to
    /// the stream to try again (default 0: the template writes its message at once).
    pub throttle_retry: Duration,
    /// Cooldown, satisfaction floors and the daily model budget (default: all off).
    pub policy: MessagePolicy,
    /// How long messages and suppressions are kept (default a year; 0 days: for good).
    pub retention: MessageRetention,
    /// Where records that cannot be decoded are set aside (the stream mapping's on-failure
    /// destination; the template always sets it). Without it such a record is retried like
    /// any failure, holding up its shard until the mapping gives up.
    pub stream_failure_queue_url: Option<String>,
}

impl Config {
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from_vars(&Vars::process())
    }

    pub fn from_vars(vars: &Vars<impl Fn(&str) -> Option<String>>) -> Result<Self, EnvError> {
        let default_lease = OrchestratorConfig::default().claim_lease.as_secs();
        check_customer_ref_key(vars)?;
        Ok(Config {
            messages_table: vars
                .required(ENV_MESSAGES_TABLE, "the ReferralMessages table's name")?,
            claim_lease: Duration::from_secs(vars.parsed(
                ENV_CLAIM_LEASE_SECONDS,
                default_lease,
                "a whole number of seconds, at least 1",
                |seconds| *seconds >= 1,
            )?),
            throttle_retry: Duration::from_secs(vars.parsed(
                ENV_THROTTLE_RETRY_SECONDS,
                0,
                "a whole number of seconds, 0 (fall back to the template at once) to 3600",
                // Each hand-back holds up the shard behind it: an hour is already long.
                |seconds| *seconds <= MAX_THROTTLE_RETRY_SECONDS,
            )?),
            policy: MessagePolicy::from_vars(vars)?,
            retention: MessageRetention::from_vars(vars)?,
            stream_failure_queue_url: vars.get(quarantine::ENV_STREAM_FAILURE_QUEUE_URL),
        })
    }

    pub fn orchestrator_config(&self) -> OrchestratorConfig {
        OrchestratorConfig {
            claim_lease: self.claim_lease,
            throttle: if self.throttle_retry.is_zero() {
                ThrottlePolicy::FallBack
            } else {
                ThrottlePolicy::RetryFor(self.throttle_retry)
            },
            policy: self.policy,
        }
    }

    pub fn message_store(&self, sdk: &aws_config::SdkConfig) -> DynamoMessageStore {
        DynamoMessageStore::new(
            aws_sdk_dynamodb::Client::new(sdk),
            self.messages_table.clone(),
        )
        .with_retention(self.retention)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamOutcome {
    pub response: DynamoDbEventResponse,
    pub counters: StreamCounters,
}

/// The handler with its dependencies, built once per execution environment.
#[derive(Debug)]
pub struct OrchestratorHandler<G, M, Q = SqsQueue> {
    orchestrator: Orchestrator<G, M>,
    deadline_margin: Duration,
    /// The failure destination, for records that cannot be decoded.
    quarantine: Option<Q>,
}

/// What an invocation has left until `deadline` (Lambda's, in milliseconds since the epoch).
pub fn time_left(deadline_epoch_millis: u64, now: DateTime<Utc>) -> Duration {
    let now = u64::try_from(now.timestamp_millis()).unwrap_or(0);
    Duration::from_millis(deadline_epoch_millis.saturating_sub(now))
}

impl<G: MessageGenerator, M: MessageStore> OrchestratorHandler<G, M> {
    /// A handler whose deadline margin covers a model call of the default timeout, with no
    /// quarantine (see [`OrchestratorHandler::with_quarantine`]).
    pub fn new(orchestrator: Orchestrator<G, M>) -> Self {
        OrchestratorHandler {
            orchestrator,
            deadline_margin: bedrock::default_timeout() + DEADLINE_SLACK,
            quarantine: None,
        }
    }

    /// Sets records that cannot be decoded aside on `queue` (the stream mapping's failure
    /// destination) instead of reporting them for retry.
    pub fn with_quarantine<Q: WorkQueue>(self, queue: Q) -> OrchestratorHandler<G, M, Q> {
        OrchestratorHandler {
            orchestrator: self.orchestrator,
            deadline_margin: self.deadline_margin,
            quarantine: Some(queue),
        }
    }
}

impl<G: MessageGenerator, M: MessageStore, Q: WorkQueue> OrchestratorHandler<G, M, Q> {
    /// How close to the deadline a record may still be started.
    pub fn with_deadline_margin(mut self, margin: Duration) -> Self {
        self.deadline_margin = margin;
        self
    }

    pub fn deadline_margin(&self) -> Duration {
        self.deadline_margin
    }

    pub fn orchestrator(&self) -> &Orchestrator<G, M> {
        &self.orchestrator
    }

    /// Handles one stream batch with no deadline; the response names the record to resume
    /// from.
    pub async fn handle(&self, event: &Event, now: DateTime<Utc>) -> StreamOutcome {
        self.handle_until(event, now, None).await
    }

    /// Handles one stream batch of an invocation with `time_left` before its deadline (see
    /// [`time_left`]); records it cannot start in time are reported for another delivery.
    pub async fn handle_until(
        &self,
        event: &Event,
        now: DateTime<Utc>,
        time_left: Option<Duration>,
    ) -> StreamOutcome {
        let deadline = time_left.map(|left| Deadline::after(left, self.deadline_margin));
        let mut changes = Vec::with_capacity(event.records.len());
        let mut undecodable: Option<&str> = None;
        let mut counters = StreamCounters::default();
        for record in &event.records {
            match change_record(record) {
                Ok(change) => changes.push(change),
                Err(error) => {
                    counters.records += 1;
                    counters.undecodable += 1;
                    if self.quarantine_record(record, &error, now).await {
                        counters.quarantined += 1;
                    } else {
                        undecodable.get_or_insert(position_of(record));
                    }
                }
            }
        }
        let batch = self
            .orchestrator
            .handle_batch_until(&changes, now, deadline)
            .await;
        counters.add(&batch.counters);
        // The earliest record to deliver again, by its place in the batch.
        let resume_from = event.records.iter().find_map(|record| {
            let position = record.change.sequence_number.as_deref()?;
            let failed =
                batch.resume_from.as_deref() == Some(position) || undecodable == Some(position);
            failed.then(|| position.to_owned())
        });
        let resume_from = resume_from.or_else(|| undecodable.map(str::to_owned));
        counters.log_batch(&changes);
        let mut response = DynamoDbEventResponse::default();
        response.batch_item_failures = resume_from
            .into_iter()
            .map(|sequence_number| {
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = Some(sequence_number);
                failure
            })
            .collect();
        StreamOutcome { response, counters }
    }

    /// Sets `record` aside on the failure destination; false when there is none or the
    /// send failed, and the record must be retried instead.
    async fn quarantine_record(
        &self,
        record: &EventRecord,
        error: &RecordError,
        now: DateTime<Utc>,
    ) -> bool {
        // A decoding error may quote a value of the image.
        let reason = mask_emails(&referral_domain::error_chain(error));
        let position = position_of(record);
        let Some(queue) = &self.quarantine else {
            tracing::error!(
                sequence_number = position,
                error = %reason,
                "stream record refused; no failure destination to quarantine it on, so it is \
                 left to the retry budget"
            );
            return false;
        };
        let message = quarantine::failure_message(record, &reason, now);
        match queue.send(vec![message]).await {
            Ok(()) => {
                tracing::error!(
                    sequence_number = position,
                    error = %reason,
                    "stream record quarantined on the failure destination; the shard goes on"
                );
                true
            }
            Err(send_error) => {
                tracing::error!(
                    sequence_number = position,
                    error = %reason,
                    send_error = %referral_domain::error_chain(&send_error),
                    "stream record refused and could not be quarantined; left to the retry budget"
                );
                false
            }
        }
    }
}

/// Where a record sits in its shard (its event id when it lacks a sequence number).
fn position_of(record: &EventRecord) -> &str {
    record
        .change
        .sequence_number
        .as_deref()
        .unwrap_or(&record.event_id)
}
