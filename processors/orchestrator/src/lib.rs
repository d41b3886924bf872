//! The orchestrator Lambda's handler: DynamoDB stream records of `CustomerFeatures` in, at
//! most one referral message per change out, and the stream's partial batch response.
//!
//! Records are handled in order. The first that must be retried (message store trouble, a
//! live claim held by another invocation, an image that cannot be decoded) is reported by
//! its sequence number and handling stops there: Lambda retries from that record, so no
//! later change of the shard overtakes it. After the mapping's retry budget a failed
//! batch goes to its on-failure destination, from which `referral dlq replay` recovers it.

use std::time::Duration;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use chrono::{DateTime, Utc};
use referral_aws::bedrock::{self, BedrockConfig, BedrockGenerator};
use referral_aws::dynamo::{CUSTOMER_KEY, DynamoMessageStore, MESSAGE_WRITE_IAM_ACTIONS};
use referral_domain::env::{EnvError, Vars};
use referral_domain::fallback::FallbackGenerator;
use referral_domain::features::CustomerFeatures;
use referral_domain::orchestrator::{Orchestrator, OrchestratorConfig, RecordOutcome};
use referral_domain::ports::{ChangeKind, ChangeRecord, MessageGenerator, MessageStore};
use referral_domain::redact::{customer_ref, mask_emails};
use referral_domain::template::TemplateGenerator;
use serde::Serialize;

const ENV_MESSAGES_TABLE: &str = "MESSAGES_TABLE";
const ENV_CLAIM_LEASE_SECONDS: &str = "CLAIM_LEASE_SECONDS";

/// Environment variables the binary reads (the template sets exactly these).
pub fn env_vars() -> Vec<&'static str> {
    let mut vars = vec![ENV_MESSAGES_TABLE, ENV_CLAIM_LEASE_SECONDS];
    vars.extend_from_slice(bedrock::ENV_VARS);
    vars
}

/// IAM actions of the SDK calls this function's code makes.
pub fn iam_actions() -> Vec<&'static str> {
    let mut actions = MESSAGE_WRITE_IAM_ACTIONS.to_vec();
    actions.extend_from_slice(bedrock::IAM_ACTIONS);
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
        let generator = FallbackGenerator::over_template(BedrockGenerator::from_sdk_config(
            sdk,
            bedrock_config,
        ));
        OrchestratorHandler::new(Orchestrator::new(
            generator,
            config.message_store(sdk),
            config.orchestrator_config(),
        ))
    }
}

/// Settings of the function, from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The `ReferralMessages` table.
    pub messages_table: String,
    /// How long a claim protects a generation in progress (default 300 s; keep it above the
    /// function's timeout so a live invocation never loses its claim).
    pub claim_lease: Duration,
}

impl Config {
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from_vars(&Vars::process())
    }

    pub fn from_vars(vars: &Vars<impl Fn(&str) -> Option<String>>) -> Result<Self, EnvError> {
        let default_lease = OrchestratorConfig::default().claim_lease.as_secs();
        Ok(Config {
            messages_table: vars
                .required(ENV_MESSAGES_TABLE, "the ReferralMessages table's name")?,
            claim_lease: Duration::from_secs(vars.parsed(
                ENV_CLAIM_LEASE_SECONDS,
                default_lease,
                "a whole number of seconds, at least 1",
                |seconds| *seconds >= 1,
            )?),
        })
    }

    pub fn orchestrator_config(&self) -> OrchestratorConfig {
        OrchestratorConfig {
            claim_lease: self.claim_lease,
        }
    }

    pub fn message_store(&self, sdk: &aws_config::SdkConfig) -> DynamoMessageStore {
        DynamoMessageStore::new(
            aws_sdk_dynamodb::Client::new(sdk),
            self.messages_table.clone(),
        )
    }
}

/// A stream record that cannot be turned into a change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("stream record has no sequence number")]
    NoSequenceNumber,
    #[error("stream record has an unknown event name {0:?}")]
    UnknownEventName(String),
    #[error("stream record has no customerEmail key")]
    NoKey,
    #[error("stream record's {image} does not decode: {detail}")]
    Undecodable { image: &'static str, detail: String },
}

/// Translates one Lambda stream record into the domain's change record.
pub fn change_record(record: &EventRecord) -> Result<ChangeRecord, RecordError> {
    let kind = match record.event_name.as_str() {
        "INSERT" => ChangeKind::Insert,
        "MODIFY" => ChangeKind::Modify,
        "REMOVE" => ChangeKind::Remove,
        other => return Err(RecordError::UnknownEventName(other.to_owned())),
    };
    let sequence_number = record
        .change
        .sequence_number
        .clone()
        .ok_or(RecordError::NoSequenceNumber)?;
    let customer_email = match record.change.keys.get(CUSTOMER_KEY) {
        Some(serde_dynamo::AttributeValue::S(email)) => email.clone(),
        _ => return Err(RecordError::NoKey),
    };
    Ok(ChangeRecord {
        sequence_number,
        kind,
        customer_email,
        old_image: decode_image(&record.change.old_image, "OldImage")?,
        new_image: decode_image(&record.change.new_image, "NewImage")?,
    })
}

/// A key-only image (emitted by emulators before a full INSERT) reads as no image.
fn decode_image(
    image: &serde_dynamo::Item,
    name: &'static str,
) -> Result<Option<std::sync::Arc<CustomerFeatures>>, RecordError> {
    if image.len() <= 1 {
        return Ok(None);
    }
    serde_dynamo::from_item::<_, CustomerFeatures>(image.clone())
        .map(|features| Some(std::sync::Arc::new(features)))
        .map_err(|error| RecordError::Undecodable {
            image: name,
            detail: error.to_string(),
        })
}

/// Counts of one invocation, for the log line and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StreamCounters {
    pub records: u64,
    pub created: u64,
    pub created_by_template: u64,
    pub already_created: u64,
    pub skipped: u64,
    pub claimed_elsewhere: u64,
    pub failed: u64,
    pub undecodable: u64,
    /// Records after the failure, left for Lambda to deliver again.
    pub not_attempted: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamOutcome {
    pub response: DynamoDbEventResponse,
    pub counters: StreamCounters,
}

/// The handler with its dependencies, built once per execution environment.
#[derive(Debug)]
pub struct OrchestratorHandler<G, M> {
    orchestrator: Orchestrator<G, M>,
}

impl<G: MessageGenerator, M: MessageStore> OrchestratorHandler<G, M> {
    pub fn new(orchestrator: Orchestrator<G, M>) -> Self {
        OrchestratorHandler { orchestrator }
    }

    pub fn orchestrator(&self) -> &Orchestrator<G, M> {
        &self.orchestrator
    }

    /// Handles one stream batch in order; the response names the record to resume from.
    pub async fn handle(&self, event: &Event, now: DateTime<Utc>) -> StreamOutcome {
        let mut counters = StreamCounters {
            records: event.records.len() as u64,
            ..StreamCounters::default()
        };
        let mut resume_from: Option<String> = None;
        for (index, record) in event.records.iter().enumerate() {
            let outcome = match change_record(record) {
                Ok(change) => self.handle_change(&change, now, &mut counters).await,
                Err(error) => {
                    counters.undecodable += 1;
                    tracing::error!(
                        event_id = %record.event_id,
                        // A decoding error may quote a value of the image.
                        error = %mask_emails(&error.to_string()),
                        "stream record refused; left to the retry budget and on-failure destination"
                    );
                    false
                }
            };
            if !outcome {
                resume_from = Some(
                    record
                        .change
                        .sequence_number
                        .clone()
                        .unwrap_or_else(|| record.event_id.clone()),
                );
                counters.not_attempted = (event.records.len() - index - 1) as u64;
                break;
            }
        }
        tracing::info!(
            records = counters.records,
            created = counters.created,
            created_by_template = counters.created_by_template,
            already_created = counters.already_created,
            skipped = counters.skipped,
            claimed_elsewhere = counters.claimed_elsewhere,
            failed = counters.failed,
            undecodable = counters.undecodable,
            not_attempted = counters.not_attempted,
            "stream batch processed"
        );
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

    /// Handles one change; `false` when it must be delivered again.
    pub async fn handle_change(
        &self,
        change: &ChangeRecord,
        now: DateTime<Utc>,
        counters: &mut StreamCounters,
    ) -> bool {
        let outcome = self.orchestrator.handle(change, now).await;
        let customer = customer_ref(&change.customer_email);
        match &outcome {
            RecordOutcome::Created {
                message_id,
                generator,
            } => {
                counters.created += 1;
                if *generator == referral_domain::template::TEMPLATE_GENERATOR {
                    counters.created_by_template += 1;
                }
                tracing::info!(sequence_number = %change.sequence_number, customer, message_id, generator, outcome = "created", "record processed");
            }
            RecordOutcome::AlreadyCreated => counters.already_created += 1,
            RecordOutcome::Skipped(_) => counters.skipped += 1,
            RecordOutcome::ClaimedElsewhere { .. } => counters.claimed_elsewhere += 1,
            RecordOutcome::Failed { .. } => counters.failed += 1,
        }
        if !matches!(outcome, RecordOutcome::Created { .. }) {
            tracing::info!(sequence_number = %change.sequence_number, customer, outcome = outcome.label(), "record processed");
        }
        !outcome.needs_retry()
    }
}
