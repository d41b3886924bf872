//! The message policy's state in `ReferralMessages`, beside the decisions, so it needs no
//! table and no grant of its own (the orchestrator writes it with `UpdateItem` only):
//!
//! - a customer's **message slot**: `(customerEmail, "message_slot")`, the change that last
//!   got a message (`slot_version`) and its trigger's time (`slot_at_ns`, epoch
//!   nanoseconds, compared in the condition; `slot_at`, the same as text for people). It
//!   lives in the customer's partition, so erasing a customer erases it too. One
//!   conditional `UpdateItem` takes it: no read first, a refusal returns the holder.
//! - the **model budget** of a UTC day: `("#model-budget", "<YYYY-MM-DD>")`, `calls` counted
//!   by `ADD` under the condition `calls < :limit`, so concurrent invocations never spend
//!   past it. No customer e-mail can be `#model-budget` (it has no `@`). The table's TTL
//!   attribute lets DynamoDB delete it a month after its day.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, NaiveDate, Utc};
use referral_domain::features::rfc3339;
use referral_domain::ports::{AdapterError, MessageSlot, SlotTaken};

use super::messages::STATUS;
use super::{CLAIM_TTL_ATTRIBUTE, CUSTOMER_KEY, DynamoMessageStore, MESSAGE_KEY, get_latest};
use crate::error::{adapter_error, corrupt};

type Item = HashMap<String, AttributeValue>;

/// Sort key of a customer's message slot (decisions are `v<version>`).
pub const SLOT_ID: &str = "message_slot";
/// Partition key of the model budget's day counters.
pub const BUDGET_PARTITION: &str = "#model-budget";
/// The `status` of the policy's rows, which the decisions' reader passes over.
pub(super) const SLOT_STATUS: &str = "message_slot";
pub(super) const BUDGET_STATUS: &str = "model_budget";
/// How long a day's counter is kept after the day, for previews and audits.
const BUDGET_KEPT_DAYS: i64 = 31;

fn key(partition: &str, sort: &str) -> Item {
    HashMap::from([
        (
            CUSTOMER_KEY.to_owned(),
            AttributeValue::S(partition.to_owned()),
        ),
        (MESSAGE_KEY.to_owned(), AttributeValue::S(sort.to_owned())),
    ])
}

/// Epoch nanoseconds, saturating outside the years 1677–2262 (no event is dated there).
fn nanos(at: DateTime<Utc>) -> i64 {
    at.timestamp_nanos_opt().unwrap_or(if at.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

fn number<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
    match item.get(name) {
        Some(AttributeValue::N(text)) => text.parse().ok(),
        _ => None,
    }
}

fn slot_of(operation: &'static str, item: &Item) -> Result<MessageSlot, AdapterError> {
    let version = number(item, "slot_version");
    let at = number::<i64>(item, "slot_at_ns").map(DateTime::from_timestamp_nanos);
    match (version, at) {
        (Some(version), Some(at)) => Ok(MessageSlot { version, at }),
        _ => Err(corrupt(
            operation,
            "a message slot without its version or time",
        )),
    }
}

impl DynamoMessageStore {
    pub(super) async fn take_slot(
        &self,
        customer_email: &str,
        wanted: MessageSlot,
        cooldown: Duration,
    ) -> Result<SlotTaken, AdapterError> {
        // The holder yields when `holder.at + cooldown <= wanted.at`, i.e. when it is at or
        // before `wanted.at - cooldown` (see `MessageSlot::yields_to`).
        let free_before = chrono::Duration::from_std(cooldown)
            .ok()
            .and_then(|cooldown| wanted.at.checked_sub_signed(cooldown))
            .map_or(i64::MIN, nanos);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(customer_email, SLOT_ID)))
            .update_expression(
                "SET #status = :status, slot_version = :version, slot_at_ns = :at, slot_at = :at_text",
            )
            .condition_expression(
                "attribute_not_exists(#key) OR slot_version = :version OR slot_at_ns <= :free_before",
            )
            .expression_attribute_names("#key", CUSTOMER_KEY)
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_values(":status", AttributeValue::S(SLOT_STATUS.into()))
            .expression_attribute_values(":version", AttributeValue::N(wanted.version.to_string()))
            .expression_attribute_values(":at", AttributeValue::N(nanos(wanted.at).to_string()))
            .expression_attribute_values(":at_text", AttributeValue::S(rfc3339::format(&wanted.at)))
            .expression_attribute_values(":free_before", AttributeValue::N(free_before.to_string()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(SlotTaken::Taken),
            Err(error) => match error.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(refused)) => {
                    let item = refused.item().ok_or_else(|| {
                        corrupt(
                            "UpdateItem",
                            "slot refused but no current slot was returned",
                        )
                    })?;
                    Ok(SlotTaken::Cooling {
                        holder: slot_of("UpdateItem", item)?,
                    })
                }
                _ => Err(adapter_error("UpdateItem", error)),
            },
        }
    }

    pub(super) async fn read_slot(
        &self,
        customer_email: &str,
    ) -> Result<Option<MessageSlot>, AdapterError> {
        get_latest(&self.client, &self.table, key(customer_email, SLOT_ID))
            .await?
            .map(|item| slot_of("GetItem", &item))
            .transpose()
    }

    pub(super) async fn spend_call(
        &self,
        day: NaiveDate,
        limit: u64,
    ) -> Result<bool, AdapterError> {
        // The condition below can only compare a count that exists: without this, a zero
        // budget would let the day's first call through.
        if limit == 0 {
            return Ok(false);
        }
        let kept_until = day
            .succ_opt()
            .and_then(|next| next.and_hms_opt(0, 0, 0))
            .map(|end| end.and_utc() + chrono::Duration::days(BUDGET_KEPT_DAYS))
            .map_or(i64::MAX, |until| until.timestamp());
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(BUDGET_PARTITION, &day.to_string())))
            .update_expression("SET #status = :status, #expiry = :kept ADD calls :one")
            .condition_expression("attribute_not_exists(calls) OR calls < :limit")
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_names("#expiry", CLAIM_TTL_ATTRIBUTE)
            .expression_attribute_values(":status", AttributeValue::S(BUDGET_STATUS.into()))
            .expression_attribute_values(":kept", AttributeValue::N(kept_until.to_string()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":limit", AttributeValue::N(limit.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(UpdateItemError::is_conditional_check_failed_exception) =>
            {
                Ok(false)
            }
            Err(error) => Err(adapter_error("UpdateItem", error)),
        }
    }

    pub(super) async fn calls_on(&self, day: NaiveDate) -> Result<u64, AdapterError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(BUDGET_PARTITION, &day.to_string())))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| adapter_error("GetItem", error))?;
        Ok(output
            .item
            .and_then(|item| number(&item, "calls"))
            .unwrap_or(0))
    }
}
