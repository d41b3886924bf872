//! `ReferralMessages` (key `customerEmail` + `message_id`): one row per change of a
//! customer's features, a claim while its message is being written, then the decision (the
//! message, or a suppression) for good.
//!
//! Every write is conditional, so that two invocations on one change can never both
//! decide it: a claim is taken where there is no row, or over the taker's own claim, or over
//! a claim whose lease ran out (`claim_expires_at`, epoch seconds, also the table's TTL for
//! abandoned claims); a decision is recorded on the same terms; a draft is kept, and a claim
//! released, only by its holder. A claim is updated in place, not replaced, so the draft a
//! failed holder kept survives a takeover.
//!
//! A decision is written with the same TTL attribute set to the end of its retention
//! ([`MessageRetention`]), so DynamoDB deletes messages and suppressions after it; the
//! message policy's slot and budget rows (`policy_state.rs`) are separate and outlive them.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, NaiveDate, Utc};
use referral_domain::ports::{
    AdapterError, Claim, Decision, Holder, MessageKey, MessageRetention, MessageSlot, MessageStore,
    Recorded, ReferralMessage, SlotTaken, Suppression,
};
use serde::{Deserialize, Serialize};

use super::{CLAIM_TTL_ATTRIBUTE, CUSTOMER_KEY, MESSAGE_KEY};
use crate::error::{adapter_error, corrupt};

type Item = HashMap<String, AttributeValue>;

pub(super) const STATUS: &str = "status";
const CLAIMED: &str = "in_progress";
const HOLDER: &str = "holder";
const DRAFT: &str = "draft";
/// Where there is no decision yet: no row, the holder's own claim, or a claim that expired.
const OPEN_TO_HOLDER: &str =
    "attribute_not_exists(#key) OR (#status = :claimed AND (#holder = :me OR #expiry <= :now))";

/// A row as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
enum Row {
    InProgress {
        #[serde(rename = "customerEmail")]
        customer_email: String,
        message_id: String,
        /// Absent on claims the first release wrote, which any holder may take when expired.
        #[serde(default)]
        holder: Option<Holder>,
        #[serde(with = "referral_domain::features::rfc3339")]
        expires_at: DateTime<Utc>,
        claim_expires_at: i64,
        #[serde(default)]
        draft: Option<ReferralMessage>,
    },
    Completed(ReferralMessage),
    Suppressed(Suppression),
    /// The message policy's rows (`policy_state.rs`): no decision.
    MessageSlot {},
    ModelBudget {},
}

impl Row {
    fn decision(self) -> Option<Decision> {
        match self {
            Row::InProgress { .. } | Row::MessageSlot {} | Row::ModelBudget {} => None,
            Row::Completed(message) => Some(Decision::Message(message)),
            Row::Suppressed(suppression) => Some(Decision::Suppressed(suppression)),
        }
    }
}

/// The `ReferralMessages` table.
#[derive(Debug, Clone)]
pub struct DynamoMessageStore {
    pub(super) client: Client,
    pub(super) table: String,
    retention: MessageRetention,
}

impl DynamoMessageStore {
    /// The table, keeping decisions for the default retention (a year).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoMessageStore {
            client,
            table: table.into(),
            retention: MessageRetention::default(),
        }
    }

    pub fn with_retention(mut self, retention: MessageRetention) -> Self {
        self.retention = retention;
        self
    }

    fn decode(operation: &'static str, item: Item) -> Result<Row, AdapterError> {
        serde_dynamo::aws_sdk_dynamodb_1::from_item(item).map_err(|error| corrupt(operation, error))
    }

    fn key(key: &MessageKey) -> Item {
        HashMap::from([
            (
                CUSTOMER_KEY.to_owned(),
                AttributeValue::S(key.customer_email.clone()),
            ),
            (
                MESSAGE_KEY.to_owned(),
                AttributeValue::S(key.message_id.clone()),
            ),
        ])
    }

    /// The row a refused conditional write found, or `None` when it returned none.
    fn refused_row(
        operation: &'static str,
        item: Option<&Item>,
    ) -> Result<Option<Row>, AdapterError> {
        item.map(|item| Self::decode(operation, item.clone()))
            .transpose()
    }
}

fn epoch(at: DateTime<Utc>) -> AttributeValue {
    AttributeValue::N(at.timestamp().to_string())
}

/// `update` only while the claim is `holder`'s own and still in progress: once taken over
/// or decided, the row is not the holder's to touch.
fn while_held_by(update: UpdateItemFluentBuilder, holder: &Holder) -> UpdateItemFluentBuilder {
    update
        .condition_expression("#status = :claimed AND #holder = :me")
        .expression_attribute_names("#status", STATUS)
        .expression_attribute_names("#holder", HOLDER)
        .expression_attribute_values(":claimed", AttributeValue::S(CLAIMED.into()))
        .expression_attribute_values(":me", AttributeValue::S(holder.as_str().into()))
}

fn expiry(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
    now.checked_add_signed(lease)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl MessageStore for DynamoMessageStore {
    async fn claim(
        &self,
        key: &MessageKey,
        holder: &Holder,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Claim, AdapterError> {
        let expires_at = expiry(now, lease);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .update_expression(
                "SET #status = :claimed, #holder = :me, expires_at = :expires, #expiry = :ttl",
            )
            .condition_expression(OPEN_TO_HOLDER)
            .expression_attribute_names("#key", CUSTOMER_KEY)
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_names("#holder", HOLDER)
            .expression_attribute_names("#expiry", CLAIM_TTL_ATTRIBUTE)
            .expression_attribute_values(":claimed", AttributeValue::S(CLAIMED.into()))
            .expression_attribute_values(":me", AttributeValue::S(holder.as_str().into()))
            .expression_attribute_values(
                ":expires",
                AttributeValue::S(referral_domain::features::rfc3339::format(&expires_at)),
            )
            .expression_attribute_values(":ttl", epoch(expires_at))
            .expression_attribute_values(":now", epoch(now))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => match Self::refused_row("UpdateItem", output.attributes.as_ref())? {
                Some(Row::InProgress { draft, .. }) => Ok(Claim::Acquired {
                    draft: draft.map(Box::new),
                }),
                _ => Err(corrupt(
                    "UpdateItem",
                    "a claim did not read back as a claim",
                )),
            },
            Err(error) => match error.as_service_error() {
                Some(refused) if refused.is_conditional_check_failed_exception() => {
                    let item = match refused {
                        aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(
                            failure,
                        ) => failure.item(),
                        _ => None,
                    };
                    match Self::refused_row("UpdateItem", item)? {
                        Some(Row::InProgress { expires_at, .. }) => Ok(Claim::Held { expires_at }),
                        Some(_) => Ok(Claim::Decided),
                        None => Err(corrupt(
                            "UpdateItem",
                            "claim refused but no current row was returned",
                        )),
                    }
                }
                _ => Err(adapter_error("UpdateItem", error)),
            },
        }
    }

    async fn keep_draft(
        &self,
        holder: &Holder,
        draft: &ReferralMessage,
    ) -> Result<bool, AdapterError> {
        let value = serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value(draft)
            .map_err(|error| corrupt("UpdateItem", error))?;
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(&draft.key())))
            .update_expression("SET #draft = :draft")
            .expression_attribute_names("#draft", DRAFT)
            .expression_attribute_values(":draft", value);
        let result = while_held_by(update, holder).send().await;
        match result {
            Ok(_) => Ok(true),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|refused| refused.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(error) => Err(adapter_error("UpdateItem", error)),
        }
    }

    async fn record(
        &self,
        decision: Decision,
        holder: &Holder,
        now: DateTime<Utc>,
    ) -> Result<Recorded, AdapterError> {
        let row = match decision {
            Decision::Message(message) => Row::Completed(message),
            Decision::Suppressed(suppression) => Row::Suppressed(suppression),
        };
        let mut item: Item = serde_dynamo::aws_sdk_dynamodb_1::to_item(row)
            .map_err(|error| corrupt("PutItem", error))?;
        if let Some(expiry) = self.retention.expiry(now) {
            item.insert(CLAIM_TTL_ATTRIBUTE.to_owned(), epoch(expiry));
        }
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(OPEN_TO_HOLDER)
            .expression_attribute_names("#key", CUSTOMER_KEY)
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_names("#holder", HOLDER)
            .expression_attribute_names("#expiry", CLAIM_TTL_ATTRIBUTE)
            .expression_attribute_values(":claimed", AttributeValue::S(CLAIMED.into()))
            .expression_attribute_values(":me", AttributeValue::S(holder.as_str().into()))
            .expression_attribute_values(":now", epoch(now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Recorded::Recorded),
            Err(error) => match error.as_service_error() {
                Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(
                    refused,
                )) => match Self::refused_row("PutItem", refused.item())? {
                    Some(Row::InProgress { .. }) => Ok(Recorded::ClaimHeldElsewhere),
                    _ => Ok(Recorded::AlreadyDecided),
                },
                _ => Err(adapter_error("PutItem", error)),
            },
        }
    }

    async fn release(
        &self,
        key: &MessageKey,
        holder: &Holder,
        now: DateTime<Utc>,
    ) -> Result<(), AdapterError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .update_expression("SET expires_at = :now_text, #expiry = :now")
            .expression_attribute_names("#expiry", CLAIM_TTL_ATTRIBUTE)
            .expression_attribute_values(
                ":now_text",
                AttributeValue::S(referral_domain::features::rfc3339::format(&now)),
            )
            .expression_attribute_values(":now", epoch(now));
        let result = while_held_by(update, holder).send().await;
        match result {
            // Not the holder's any more (taken over, or decided): nothing to give up.
            Err(error)
                if !error
                    .as_service_error()
                    .is_some_and(|refused| refused.is_conditional_check_failed_exception()) =>
            {
                Err(adapter_error("UpdateItem", error))
            }
            _ => Ok(()),
        }
    }

    async fn decisions(&self, customer_email: &str) -> Result<Vec<Decision>, AdapterError> {
        let mut decisions = Vec::new();
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
                decisions.extend(Self::decode("Query", item)?.decision());
            }
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(decisions),
            }
        }
    }

    async fn take_message_slot(
        &self,
        customer_email: &str,
        wanted: MessageSlot,
        cooldown: Duration,
    ) -> Result<SlotTaken, AdapterError> {
        self.take_slot(customer_email, wanted, cooldown).await
    }

    async fn message_slot(
        &self,
        customer_email: &str,
    ) -> Result<Option<MessageSlot>, AdapterError> {
        self.read_slot(customer_email).await
    }

    async fn spend_model_call(&self, day: NaiveDate, limit: u64) -> Result<bool, AdapterError> {
        self.spend_call(day, limit).await
    }

    async fn model_calls(&self, day: NaiveDate) -> Result<u64, AdapterError> {
        self.calls_on(day).await
    }
}
