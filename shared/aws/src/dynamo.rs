//! DynamoDB adapters: the feature store (`CustomerFeatures`) and the message store
//! (`ReferralMessages`), plus table creation for local runs and tests.
//!
//! ## Writes of `CustomerFeatures`
//! One `PutItem` per customer and batch, conditioned on `attribute_not_exists(customerEmail)`
//! when the writer knows no item and on `version = :expected` otherwise. The version guard is
//! what keeps an event from being applied twice: the fold that produced the item started
//! from exactly that version and skipped every id it remembers, so a write that passes the
//! guard applies only new events. A refused write returns the item as it is
//! (`ReturnValuesOnConditionCheckFailure::ALL_OLD`): the writer folds again from it, with no
//! read. What the item remembers of applied events, and for how long, is the domain's
//! `AppliedMemory`: a few bytes an event, bounded by time, not by history.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use aws_smithy_runtime_api::client::result::SdkError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{adapter_error, corrupt};
use referral_domain::features::CustomerFeatures;
use referral_domain::ports::{
    AdapterError, Claim, FeatureStore, FeatureWrite, MessageKey, MessageStore, ReferralMessage,
    WriteOutcome,
};

/// Partition key of both tables.
pub const CUSTOMER_KEY: &str = "customerEmail";
/// Sort key of `ReferralMessages`.
pub const MESSAGE_KEY: &str = "message_id";
/// Epoch seconds after which DynamoDB's TTL may delete an abandoned claim.
pub const CLAIM_TTL_ATTRIBUTE: &str = "claim_expires_at";

/// SDK operations of the feature store, for the IAM policy (one list, checked against the
/// template by a test).
pub const FEATURE_STORE_IAM_ACTIONS: &[&str] = &["dynamodb:GetItem", "dynamodb:PutItem"];
/// SDK operations of the message store's writes (`claim` and `complete`), all the
/// orchestrator makes. `list` (Query) is for operators' tools, which no function role needs.
pub const MESSAGE_WRITE_IAM_ACTIONS: &[&str] = &["dynamodb:PutItem"];

type Item = HashMap<String, AttributeValue>;

fn key_of(email: &str) -> (String, AttributeValue) {
    (CUSTOMER_KEY.to_owned(), AttributeValue::S(email.to_owned()))
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

    /// One page of a scan of the whole table, and where the next page starts (`None`: this
    /// was the last). For operators' tools that must visit every customer, never the
    /// functions: a scan reads the whole table.
    pub async fn scan_page(
        &self,
        start: Option<HashMap<String, AttributeValue>>,
    ) -> Result<
        (
            Vec<CustomerFeatures>,
            Option<HashMap<String, AttributeValue>>,
        ),
        AdapterError,
    > {
        let output = self
            .client
            .scan()
            .table_name(&self.table)
            .set_exclusive_start_key(start)
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| adapter_error("Scan", error))?;
        let items = output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| Self::decode("Scan", item))
            .collect::<Result<_, _>>()?;
        Ok((
            items,
            output.last_evaluated_key.filter(|key| !key.is_empty()),
        ))
    }

    fn decode(operation: &'static str, item: Item) -> Result<CustomerFeatures, AdapterError> {
        serde_dynamo::aws_sdk_dynamodb_1::from_item(item).map_err(|error| corrupt(operation, error))
    }
}

impl FeatureStore for DynamoFeatureStore {
    async fn load(&self, customer_email: &str) -> Result<Option<CustomerFeatures>, AdapterError> {
        let (name, value) = key_of(customer_email);
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(name, value)
            // The fold must start from the latest write, or its guard fails needlessly.
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| adapter_error("GetItem", error))?;
        output
            .item
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

/// A row of `ReferralMessages`: a claim while the message is being generated, the message
/// once it is complete.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
enum MessageRow {
    InProgress {
        #[serde(rename = "customerEmail")]
        customer_email: String,
        message_id: String,
        #[serde(with = "referral_domain::features::rfc3339")]
        expires_at: DateTime<Utc>,
        claim_expires_at: i64,
    },
    Completed(ReferralMessage),
}

/// The `ReferralMessages` table: key `customerEmail` + `message_id`.
#[derive(Debug, Clone)]
pub struct DynamoMessageStore {
    client: Client,
    table: String,
}

impl DynamoMessageStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoMessageStore {
            client,
            table: table.into(),
        }
    }

    fn decode(operation: &'static str, item: Item) -> Result<MessageRow, AdapterError> {
        serde_dynamo::aws_sdk_dynamodb_1::from_item(item).map_err(|error| corrupt(operation, error))
    }
}

impl MessageStore for DynamoMessageStore {
    async fn claim(
        &self,
        key: &MessageKey,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Claim, AdapterError> {
        let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
        let expires_at = now
            .checked_add_signed(lease)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let row = MessageRow::InProgress {
            customer_email: key.customer_email.clone(),
            message_id: key.message_id.clone(),
            expires_at,
            claim_expires_at: expires_at.timestamp(),
        };
        let item: Item = serde_dynamo::aws_sdk_dynamodb_1::to_item(&row)
            .map_err(|error| corrupt("PutItem", error))?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            // Free, or claimed by a holder whose lease ran out (it crashed): take it.
            .condition_expression(
                "attribute_not_exists(#key) OR (#status = :in_progress AND #expiry < :now)",
            )
            .expression_attribute_names("#key", CUSTOMER_KEY)
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#expiry", CLAIM_TTL_ATTRIBUTE)
            .expression_attribute_values(":in_progress", AttributeValue::S("in_progress".into()))
            .expression_attribute_values(":now", AttributeValue::N(now.timestamp().to_string()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Claim::Acquired),
            Err(SdkError::ServiceError(context)) => match context.err() {
                PutItemError::ConditionalCheckFailedException(refused) => {
                    match refused
                        .item()
                        .map(|item| Self::decode("PutItem", item.clone()))
                    {
                        Some(Ok(MessageRow::Completed(_))) => Ok(Claim::Completed),
                        Some(Ok(MessageRow::InProgress { expires_at, .. })) => {
                            Ok(Claim::InProgress { expires_at })
                        }
                        Some(Err(error)) => Err(error),
                        None => Err(corrupt(
                            "PutItem",
                            "claim refused but no current row was returned",
                        )),
                    }
                }
                _ => Err(adapter_error("PutItem", SdkError::ServiceError(context))),
            },
            Err(error) => Err(adapter_error("PutItem", error)),
        }
    }

    async fn complete(&self, message: ReferralMessage) -> Result<(), AdapterError> {
        let item: Item = serde_dynamo::aws_sdk_dynamodb_1::to_item(MessageRow::Completed(message))
            .map_err(|error| corrupt("PutItem", error))?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            // A holder whose lease ran out must not overwrite the message of the one that
            // took the claim over and finished first.
            .condition_expression("attribute_not_exists(#key) OR #status = :in_progress")
            .expression_attribute_names("#key", CUSTOMER_KEY)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":in_progress", AttributeValue::S("in_progress".into()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(context))
                if matches!(
                    context.err(),
                    PutItemError::ConditionalCheckFailedException(_)
                ) =>
            {
                Ok(())
            }
            Err(error) => Err(adapter_error("PutItem", error)),
        }
    }

    async fn list(&self, customer_email: &str) -> Result<Vec<ReferralMessage>, AdapterError> {
        let mut messages = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#key = :email")
                .expression_attribute_names("#key", CUSTOMER_KEY)
                .expression_attribute_values(":email", AttributeValue::S(customer_email.into()))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|error| adapter_error("Query", error))?;
            for item in output.items.unwrap_or_default() {
                if let MessageRow::Completed(message) = Self::decode("Query", item)? {
                    messages.push(message);
                }
            }
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(messages),
            }
        }
    }
}
