//! The orchestrator's stream failures. When the stream event-source mapping gives up on a
//! batch it sends its on-failure destination a record of *where* the batch was (shard,
//! first and last sequence numbers), not the data:
//!
//! ```json
//! {"requestContext": {"requestId": "…", "functionArn": "…", "condition": "RetryAttemptsExhausted",
//!                     "approximateInvokeCount": 4},
//!  "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
//!  "version": "1.0", "timestamp": "2025-06-05T18:22:26.479Z",
//!  "DDBStreamBatchInfo": {"shardId": "shardId-…", "startSequenceNumber": "…",
//!                         "endSequenceNumber": "…", "approximateArrivalOfFirstRecord": "…",
//!                         "approximateArrivalOfLastRecord": "…", "batchSize": 1,
//!                         "streamArn": "arn:aws:dynamodb:…:table/T/stream/…"}}
//! ```
//!
//! The orchestrator itself sends a record of the same shape, with a `quarantine` object
//! (the customer's key and why), for one record whose image it could not decode. Its stream
//! record would never decode, so its replay checks that customer's current item instead,
//! once it has been repaired, and writes the message of its current version.
//!
//! Moving such a record back to a queue would achieve nothing, so a replay re-runs the
//! orchestrator instead: it reads the batch's records from the stream while the stream still
//! retains them (24 hours on DynamoDB) and hands each to the orchestrator's handler, which
//! is idempotent (a record whose message exists is a no-op). Without the records the
//! customers concerned are unknown, so such a failure record is reported and left in place.

mod batch;

use std::sync::Arc;
use std::sync::atomic::{self, AtomicBool};

use chrono::Utc;

use aws_config::SdkConfig;
use referral_aws::bedrock::{BedrockConfig, BedrockGenerator, MODEL_ID_VAR};
use referral_aws::dynamo::{DynamoFeatureStore, DynamoMessageStore};
use referral_aws::stream_record::{RecordError, change_record};
use referral_domain::env::Vars;
use referral_domain::fallback::FallbackGenerator;
use referral_domain::features::CustomerFeatures;
use referral_domain::orchestrator::{Orchestrator, OrchestratorConfig, StreamCounters};
use referral_domain::ports::{
    AdapterError, ChangeKind, ChangeRecord, FeatureStore, Generated, GenerationError,
    GenerationRequest, MessageGenerator, MessageRetention,
};
use referral_domain::redact::{mask_email, mask_emails};
use referral_domain::template::TemplateGenerator;
use referral_local::mapping::{RecordsFeed, StreamMapping};
use referral_local::pipeline::StreamConsumer;
use referral_orchestrator::ProductionGenerator;
use referral_orchestrator::quarantine::Quarantine;
use serde::Deserialize;

use referral_aws_local::stream_reader::event_record;

use super::DlqError;
use super::origin::{QueueRole, from_a_stream_mapping};
use super::queue::DlqMessage;
use batch::ReadError;

/// Where a failed stream batch was.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchInfo {
    pub shard_id: String,
    pub start_sequence_number: String,
    pub end_sequence_number: String,
    pub stream_arn: String,
    #[serde(default)]
    pub batch_size: Option<u64>,
    #[serde(default)]
    pub approximate_arrival_of_first_record: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StreamFailure {
    #[serde(rename = "DDBStreamBatchInfo")]
    pub info: BatchInfo,
    /// Set by the orchestrator for a record it set aside (see the module's doc).
    #[serde(default)]
    pub quarantine: Option<Quarantine>,
}

impl StreamFailure {
    /// The failure record a message is, if it came from a stream mapping (by its queue and
    /// attributes, see `dlq::origin`) and its body is one.
    pub fn recognise(message: &DlqMessage, role: QueueRole) -> Option<Self> {
        if !from_a_stream_mapping(message, role) {
            return None;
        }
        Self::parse(&message.body)
    }

    /// The failure record in a message body, if that is what the body is.
    fn parse(body: &str) -> Option<Self> {
        // Cheap test first: most dead letters are webhooks.
        if !body.contains("DDBStreamBatchInfo") {
            return None;
        }
        serde_json::from_str(body).ok()
    }

    /// The table whose stream this is: `arn:…:table/NAME/stream/LABEL`.
    pub fn table(&self) -> Option<&str> {
        let rest = self.info.stream_arn.split_once(":table/")?.1;
        Some(rest.split_once("/stream/").map_or(rest, |(table, _)| table))
    }

    pub fn describe(&self) -> String {
        if let Some(quarantine) = &self.quarantine {
            return format!(
                "table {} record {} quarantined ({}) for customer {}",
                self.table().unwrap_or("?"),
                self.info.start_sequence_number,
                quarantine.reason,
                quarantine
                    .customer_email
                    .as_deref()
                    .map_or_else(|| "?".to_owned(), mask_email)
            );
        }
        format!(
            "table {} shard {} records {}..{}",
            self.table().unwrap_or("?"),
            self.info.shard_id,
            self.info.start_sequence_number,
            self.info.end_sequence_number
        )
    }
}

/// The message generator of re-runs: the template, or Bedrock with the template behind it
/// when the process is configured for Bedrock (`BEDROCK_MODEL_ID`), like the Lambda.
#[derive(Debug)]
pub enum Generator {
    Template(TemplateGenerator),
    Bedrock(Box<ProductionGenerator>),
}

impl Generator {
    pub fn from_env(sdk: &SdkConfig) -> Result<Self, DlqError> {
        let vars = Vars::process();
        if vars.get(MODEL_ID_VAR).is_none() {
            return Ok(Generator::Template(TemplateGenerator));
        }
        let config = BedrockConfig::from_vars(&vars)?;
        Ok(Generator::Bedrock(Box::new(
            FallbackGenerator::over_template(BedrockGenerator::from_sdk_config(sdk, config)),
        )))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Generator::Template(_) => "template generator",
            Generator::Bedrock(_) => "Bedrock with the template as fallback",
        }
    }
}

impl MessageGenerator for Generator {
    async fn generate(&self, request: GenerationRequest<'_>) -> Result<Generated, GenerationError> {
        match self {
            Generator::Template(generator) => generator.generate(request).await,
            Generator::Bedrock(generator) => generator.generate(request).await,
        }
    }
}

/// What re-running one failure record did.
#[derive(Debug)]
pub enum Rerun {
    /// Every record was handled (messages created, or found to exist already).
    Done {
        records: usize,
        counters: StreamCounters,
    },
    /// The stream no longer holds the batch, so its customers are unknown: every customer's
    /// current features were checked instead, and the message of each current version
    /// written where it was missing. `customers` is 0 when this run had reconciled already.
    Reconciled {
        customers: u64,
        counters: StreamCounters,
        /// Masked keys of the items that do not decode, which were skipped.
        undecodable: Vec<String>,
    },
    /// Dry run: the records are there and would be handed to the orchestrator.
    WouldRun { records: usize },
    /// Dry run: the records are gone; every customer would be checked.
    WouldReconcile,
    /// The message must stay: why, and what to do.
    Failed(RerunFailure),
}

/// Why a failure record stays in the queue; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum RerunFailure {
    #[error(
        "the record is from the stream of table {record_table}, not of --features-table \
         {features_table}: pass --features-table (and the matching --messages-table) of that \
         pipeline"
    )]
    OtherTable {
        record_table: String,
        features_table: String,
    },
    #[error("reading the batch's records failed; run the replay again later")]
    Read(#[source] AdapterError),
    #[error("a record of the batch cannot be read as a change of CustomerFeatures")]
    Undecodable(#[source] RecordError),
    #[error(
        "the quarantined customer's item still does not decode: repair or restore it (see the \
         README, Runbook), then replay again"
    )]
    StillUndecodable(#[source] AdapterError),
    #[error(
        "the orchestrator could not handle {failed} of the {records} record(s) (table \
         {messages_table}): {created} message(s) created; run the replay again later"
    )]
    Unhandled {
        failed: u64,
        records: usize,
        messages_table: String,
        created: u64,
    },
    #[error(
        "the batch's records are gone ({why}) and scanning {features_table} to check every \
         customer failed; run the replay again later"
    )]
    Scan {
        why: String,
        features_table: String,
        #[source]
        source: AdapterError,
    },
    #[error(
        "the batch's records are gone ({why}); of {customers} customers checked, {failed} \
         message(s) could not be written ({created} created); run the replay again later"
    )]
    Reconcile {
        why: String,
        customers: u64,
        failed: u64,
        created: u64,
    },
}

/// Re-runs the orchestrator for failure records.
#[derive(Debug)]
pub struct Rerunner {
    streams: aws_sdk_dynamodbstreams::Client,
    orchestrator: Orchestrator<Generator, DynamoMessageStore>,
    features: DynamoFeatureStore,
    features_table: String,
    messages_table: String,
    /// Whether this run has reconciled every customer already: once covers every failure
    /// record whose batch is gone, since those changes are older than the reconciliation.
    reconciled: AtomicBool,
}

impl Rerunner {
    pub fn new(
        sdk: &SdkConfig,
        features_table: &str,
        messages_table: &str,
    ) -> Result<Self, DlqError> {
        // Messages written by a replay expire as the orchestrator's do, by its variable.
        let store = DynamoMessageStore::new(
            aws_sdk_dynamodb::Client::new(sdk),
            messages_table.to_owned(),
        )
        .with_retention(MessageRetention::from_vars(&Vars::process())?);
        Ok(Rerunner {
            streams: aws_sdk_dynamodbstreams::Client::new(sdk),
            orchestrator: Orchestrator::new(
                Generator::from_env(sdk)?,
                store,
                OrchestratorConfig::default(),
            ),
            features: DynamoFeatureStore::new(
                aws_sdk_dynamodb::Client::new(sdk),
                features_table.to_owned(),
            ),
            features_table: features_table.to_owned(),
            messages_table: messages_table.to_owned(),
            reconciled: AtomicBool::new(false),
        })
    }

    pub fn generator_name(&self) -> &'static str {
        self.orchestrator.generator().name()
    }

    pub async fn rerun(&self, failure: &StreamFailure, dry_run: bool) -> Rerun {
        // A record of another table's stream handed to this orchestrator would write
        // messages for the wrong pipeline.
        if failure.table() != Some(self.features_table.as_str()) {
            return Rerun::Failed(RerunFailure::OtherTable {
                record_table: failure.table().unwrap_or("?").to_owned(),
                features_table: self.features_table.clone(),
            });
        }
        if let Some(quarantine) = &failure.quarantine {
            match &quarantine.customer_email {
                Some(customer) => return self.recheck_customer(customer, dry_run).await,
                // Without a key, nothing but every customer can be checked.
                None if dry_run => return Rerun::WouldReconcile,
                None => return self.reconcile("the quarantined record has no key").await,
            }
        }
        let records = match batch::read(&self.streams, &failure.info).await {
            Ok(records) => records,
            Err(ReadError::Other(error)) => return Rerun::Failed(RerunFailure::Read(error)),
            Err(ReadError::Gone(_)) if dry_run => return Rerun::WouldReconcile,
            Err(ReadError::Gone(why)) => return self.reconcile(&why).await,
        };
        if dry_run {
            return Rerun::WouldRun {
                records: records.len(),
            };
        }
        let count = records.len();
        // Decoded by the Lambda function's own decoder, as its event-source mapping would
        // deliver them.
        let changes = match records
            .iter()
            .map(|record| change_record(&event_record(record, &failure.info.stream_arn)))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(changes) => changes,
            Err(error) => return Rerun::Failed(RerunFailure::Undecodable(error)),
        };
        let mapping = StreamMapping::new(RecordsFeed::new(changes), &self.orchestrator);
        let mut counters = StreamCounters::default();
        loop {
            match mapping.consume(count.max(1), &mut counters).await {
                Ok(0) => break,
                Ok(_) => {}
                Err(error) => return Rerun::Failed(RerunFailure::Read(error)),
            }
        }
        if counters.failed > 0 {
            return Rerun::Failed(RerunFailure::Unhandled {
                failed: counters.failed,
                records: count,
                messages_table: self.messages_table.clone(),
                created: counters.created,
            });
        }
        Rerun::Done {
            records: count,
            counters,
        }
    }

    /// Writes the message of one customer's current features where it is missing: what a
    /// quarantined record's change comes to once its item has been repaired (the change
    /// itself is unreadable, and a repair writes a newer version anyway).
    async fn recheck_customer(&self, customer: &str, dry_run: bool) -> Rerun {
        let features = match self.features.load(customer).await {
            Ok(features) => features,
            Err(error @ AdapterError::Corrupt { .. }) => {
                return Rerun::Failed(RerunFailure::StillUndecodable(error));
            }
            Err(error) => return Rerun::Failed(RerunFailure::Read(error)),
        };
        if dry_run {
            return Rerun::WouldRun {
                records: usize::from(features.is_some()),
            };
        }
        let mut counters = StreamCounters::default();
        if let Some(features) = features {
            counters.count(
                &self
                    .orchestrator
                    .handle(&current_version_change(features), Utc::now())
                    .await,
            );
        }
        if counters.failed > 0 {
            return Rerun::Failed(RerunFailure::Unhandled {
                failed: counters.failed,
                records: 1,
                messages_table: self.messages_table.clone(),
                created: counters.created,
            });
        }
        Rerun::Done {
            records: usize::try_from(counters.records).unwrap_or(1),
            counters,
        }
    }

    /// Writes the message of every customer's current features where it is missing: the
    /// only way to cover a batch whose records the stream no longer holds. A message for a
    /// superseded version cannot be written faithfully (its features are gone); the
    /// customer's current version gets one.
    async fn reconcile(&self, why: &str) -> Rerun {
        if self.reconciled.load(atomic::Ordering::Relaxed) {
            return Rerun::Reconciled {
                customers: 0,
                counters: StreamCounters::default(),
                undecodable: Vec::new(),
            };
        }
        tracing::info!(
            table = %self.features_table,
            reason = why,
            "stream records gone; checking every customer's current features"
        );
        let mut customers = 0;
        let mut counters = StreamCounters::default();
        let mut undecodable = Vec::new();
        let mut start = None;
        loop {
            let page = match self.features.scan_page(start).await {
                Ok(page) => page,
                Err(source) => {
                    return Rerun::Failed(RerunFailure::Scan {
                        why: why.to_owned(),
                        features_table: self.features_table.clone(),
                        source,
                    });
                }
            };
            for (key, error) in page.undecodable {
                // Quarantined, not fatal: one item no release can read must not keep every
                // other customer from their message.
                let customer = mask_email(&key);
                tracing::error!(
                    customer = %customer,
                    error = %mask_emails(&referral_domain::error_chain(&error)),
                    "item does not decode; skipped by the check of every customer"
                );
                undecodable.push(customer);
            }
            for features in page.items {
                customers += 1;
                let change = current_version_change(features);
                counters.count(&self.orchestrator.handle(&change, Utc::now()).await);
            }
            match page.next {
                Some(key) => start = Some(key),
                None => break,
            }
        }
        if counters.failed > 0 {
            return Rerun::Failed(RerunFailure::Reconcile {
                why: why.to_owned(),
                customers,
                failed: counters.failed,
                created: counters.created,
            });
        }
        self.reconciled.store(true, atomic::Ordering::Relaxed);
        Rerun::Reconciled {
            customers,
            counters,
            undecodable,
        }
    }
}

/// The change that made a customer's current item, rebuilt from the item.
fn current_version_change(features: CustomerFeatures) -> ChangeRecord {
    ChangeRecord {
        sequence_number: format!("reconcile-v{}", features.version),
        kind: ChangeKind::Modify,
        customer_email: features.customer_email.clone(),
        old_image: None,
        new_image: Some(Arc::new(features)),
        // Rebuilt from the current item: when it was written is not known.
        written_at: None,
    }
}

#[cfg(test)]
mod tests;
