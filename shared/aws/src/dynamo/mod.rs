//! DynamoDB adapters: the feature store (`CustomerFeatures`, here) and the message store
//! (`ReferralMessages`, in `messages.rs`).
//!
//! ## Writes of `CustomerFeatures`
//! One `PutItem` per customer and batch, conditioned on `attribute_not_exists(customerEmail)`
//! when the writer knows no item and on `version = :expected` otherwise. The version guard is
//! what keeps an event from being applied twice: the fold that produced the item started
//! from exactly that version and skipped every id it remembers, so a write that passes the
//! guard applies only new events. A refused write returns the item as it is
//! (`ReturnValuesOnConditionCheckFailure::ALL_OLD`): the writer folds again from it, with no
//! read. What the item remembers of applied events is the domain's `AppliedMemory`: a few
//! bytes an event for recent ones; the rest goes to the event archive (`archive.rs`).

mod archive;
mod messages;
mod policy_state;
pub mod size;

pub use archive::{ARCHIVE_IAM_ACTIONS, BUCKET_KEY, DynamoEventArchive, ERASURE_KEY_PREFIX};
pub use messages::DynamoMessageStore;
pub use policy_state::{BUDGET_PARTITION, SLOT_ID};
pub use size::{item_size, put_write_units};

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use aws_smithy_runtime_api::client::result::SdkError;

use crate::error::{adapter_error, corrupt};
use referral_domain::features::CustomerFeatures;
use referral_domain::ports::{AdapterError, FeatureStore, FeatureWrite, WriteOutcome};

/// Partition key of both tables.
pub const CUSTOMER_KEY: &str = "customerEmail";
/// Sort key of `ReferralMessages`.
pub const MESSAGE_KEY: &str = "message_id";
/// `ReferralMessages`' one TTL attribute (DynamoDB allows one per table), in epoch seconds:
/// the end of an abandoned claim's lease, of a decision's retention
/// (`MESSAGE_RETENTION_DAYS`), of a model-budget day's keeping. Named for its first use;
/// renaming it would leave the rows already written without expiry.
pub const CLAIM_TTL_ATTRIBUTE: &str = "claim_expires_at";

/// SDK operations of the feature store, for the IAM policy (one list, checked against the
/// template by a test).
pub const FEATURE_STORE_IAM_ACTIONS: &[&str] = &["dynamodb:GetItem", "dynamodb:PutItem"];
/// SDK operations of the message store's writes (claim, draft, record, release, and the
/// message policy's slot and budget), all the orchestrator makes. `decisions` (Query) and
/// the policy's reads (GetItem) are for operators' tools, which no function role needs.
pub const MESSAGE_WRITE_IAM_ACTIONS: &[&str] = &["dynamodb:PutItem", "dynamodb:UpdateItem"];

type Item = HashMap<String, AttributeValue>;

/// Variables naming the pipeline's tables, as the template sets them.
pub const ENV_FEATURES_TABLE: &str = "FEATURES_TABLE";
pub const ENV_ARCHIVE_TABLE: &str = "ARCHIVE_TABLE";
pub const ENV_MESSAGES_TABLE: &str = "MESSAGES_TABLE";
/// What [`Tables::from_vars`] reads.
pub const TABLES_ENV_VARS: [&str; 3] = [ENV_FEATURES_TABLE, ENV_ARCHIVE_TABLE, ENV_MESSAGES_TABLE];

/// The pipeline's three tables by name: what a backfill writes and an erasure deletes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    pub features: String,
    pub archive: String,
    pub messages: String,
}

impl Tables {
    pub fn from_vars(
        vars: &referral_domain::env::Vars<impl Fn(&str) -> Option<String>>,
    ) -> Result<Self, referral_domain::env::EnvError> {
        Ok(Tables {
            features: vars.required(ENV_FEATURES_TABLE, "the CustomerFeatures table's name")?,
            archive: vars.required(
                ENV_ARCHIVE_TABLE,
                "the CustomerFeaturesArchive table's name",
            )?,
            messages: vars.required(ENV_MESSAGES_TABLE, "the ReferralMessages table's name")?,
        })
    }
}

/// One page of a feature-table scan.
#[derive(Debug, Default)]
pub struct ScanPage {
    pub items: Vec<CustomerFeatures>,
    /// Items that do not decode (corrupted, or written by a newer release): their key (empty
    /// when even that is unreadable) and why.
    pub undecodable: Vec<(String, AdapterError)>,
    /// Where the next page starts; `None` after the last.
    pub next: Option<HashMap<String, AttributeValue>>,
}

fn key_of(email: &str) -> (String, AttributeValue) {
    (CUSTOMER_KEY.to_owned(), AttributeValue::S(email.to_owned()))
}

/// The item under `key`, read strongly consistent: every read here decides a conditional
/// write (a fold's version, a cooldown, an erasure), which must start from the latest write.
async fn get_latest(client: &Client, table: &str, key: Item) -> Result<Option<Item>, AdapterError> {
    let output = client
        .get_item()
        .table_name(table)
        .set_key(Some(key))
        .consistent_read(true)
        .send()
        .await
        .map_err(|error| adapter_error("GetItem", error))?;
    Ok(output.item)
}

/// The `CustomerFeatures` table.
#[derive(Debug, Clone)]
pub struct DynamoFeatureStore {
    client: Client,
    table: String,
}

impl DynamoFeatureStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoFeatureStore {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// One page of a scan of the whole table. For operators' tools that must visit every
    /// customer, never the functions: a scan reads the whole table. An item that does not
    /// decode is handed back by key, not as an error, so that one cannot stop a visit of all.
    pub async fn scan_page(
        &self,
        start: Option<HashMap<String, AttributeValue>>,
    ) -> Result<ScanPage, AdapterError> {
        self.scan_segment_page(start, None).await
    }

    /// [`Self::scan_page`] of one segment `(segment, total_segments)` of a parallel scan, so
    /// that a tool may read the table with several requests at once.
    pub async fn scan_segment_page(
        &self,
        start: Option<HashMap<String, AttributeValue>>,
        segment: Option<(i32, i32)>,
    ) -> Result<ScanPage, AdapterError> {
        let output = self
            .client
            .scan()
            .table_name(&self.table)
            .set_segment(segment.map(|(segment, _)| segment))
            .set_total_segments(segment.map(|(_, total)| total))
            .set_exclusive_start_key(start)
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| adapter_error("Scan", error))?;
        let mut page = ScanPage {
            next: output.last_evaluated_key.filter(|key| !key.is_empty()),
            ..ScanPage::default()
        };
        for item in output.items.unwrap_or_default() {
            let key = match item.get(CUSTOMER_KEY) {
                Some(AttributeValue::S(key)) => key.clone(),
                _ => String::new(),
            };
            match Self::decode("Scan", item) {
                Ok(features) => page.items.push(features),
                Err(error) => page.undecodable.push((key, error)),
            }
        }
        Ok(page)
    }

    fn decode(operation: &'static str, item: Item) -> Result<CustomerFeatures, AdapterError> {
        serde_dynamo::aws_sdk_dynamodb_1::from_item(item).map_err(|error| corrupt(operation, error))
    }
}

impl FeatureStore for DynamoFeatureStore {
    async fn load(&self, customer_email: &str) -> Result<Option<CustomerFeatures>, AdapterError> {
        let key = Item::from([key_of(customer_email)]);
        get_latest(&self.client, &self.table, key)
            .await?
            .map(|item| Self::decode("GetItem", item))
            .transpose()
    }

    async fn save(&self, write: FeatureWrite) -> Result<WriteOutcome, AdapterError> {
        let item: Item = serde_dynamo::aws_sdk_dynamodb_1::to_item(write.item.as_ref())
            .map_err(|error| corrupt("PutItem", error))?;
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let request = match write.expected_version {
            None => request
                .condition_expression("attribute_not_exists(#key)")
                .expression_attribute_names("#key", CUSTOMER_KEY),
            Some(version) => request
                .condition_expression("#version = :expected")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":expected", AttributeValue::N(version.to_string())),
        };
        match request.send().await {
            Ok(_) => Ok(WriteOutcome::Applied),
            Err(SdkError::ServiceError(context)) => match context.err() {
                PutItemError::ConditionalCheckFailedException(refused) => {
                    let current = refused
                        .item()
                        .map(|item| Self::decode("PutItem", item.clone()))
                        .transpose()?;
                    Ok(WriteOutcome::refused(current, &write.applied_ids))
                }
                _ => Err(adapter_error("PutItem", SdkError::ServiceError(context))),
            },
            Err(error) => Err(adapter_error("PutItem", error)),
        }
    }
}
