//! Erasure of a customer everywhere the pipeline keeps them, leaving only an erasure marker
//! with no personal data (see `referral_domain::ports::ErasureLog`). `referral customers
//! forget` and the eraser Lambda both run [`Eraser::erase`].
//!
//! An erasure runs in two passes. The first records every customer's marker (and with it the
//! erasure filter's new generation): from then on, an enricher that reads the generation
//! drops every event of before the erasure. An enricher may still act for a while on a
//! generation read before, and create a customer it holds no item of without looking for a
//! marker; so the second pass waits [`ERASURE_SETTLE`], past the longest such invocation,
//! and only then deletes the features items, the messages, the archive and the queued
//! webhooks. A create from an old generation thus lands before the delete, which takes it
//! with the rest; a write after the delete comes from a batch that saw the marker.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_dynamodb::Client as Dynamo;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::Utc;
use referral_domain::event::normalise_email;
use referral_domain::ports::{AdapterError, ERASURE_SETTLE, ErasureLog, ErasureMarker};
use referral_domain::redact::{customer_ref, erasure_hash};
use serde::Serialize;
use serde_json::Value;

use crate::dynamo::{BUCKET_KEY, CUSTOMER_KEY, DynamoEventArchive, MESSAGE_KEY, Tables};
use crate::error::adapter_error;
use crate::sqs::SqsQueue;
use crate::sqs::scan::Scan;

/// SDK operations of an erasure on the features table (its IAM policy; checked against the
/// template).
pub const FEATURES_IAM_ACTIONS: &[&str] = &["dynamodb:DeleteItem", "dynamodb:GetItem"];
/// On the archive table: the customer's buckets (Query, DeleteItem) and the marker with the
/// erasure filter it joins (GetItem, PutItem, UpdateItem).
pub const ARCHIVE_IAM_ACTIONS: &[&str] = &[
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:UpdateItem",
];
pub const MESSAGES_IAM_ACTIONS: &[&str] = &["dynamodb:DeleteItem", "dynamodb:Query"];
/// On each of the three queues: the sweep receives, deletes what carries the address and
/// releases the rest at once (ChangeMessageVisibilityBatch is granted as
/// `sqs:ChangeMessageVisibility`). Queues are given by URL: no GetQueueUrl.
pub const QUEUE_IAM_ACTIONS: &[&str] = &[
    "sqs:ChangeMessageVisibility",
    "sqs:DeleteMessage",
    "sqs:ReceiveMessage",
];

#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    #[error(transparent)]
    Store(#[from] AdapterError),
    #[error("queue {queue}: {source}")]
    Queue {
        queue: String,
        #[source]
        source: AdapterError,
    },
}

/// What was (or, in a dry run, would be) removed of one customer, per place.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Removed {
    /// The customer's ref (as in logs), never the address.
    pub customer_ref: String,
    pub dry_run: bool,
    pub features_item: u64,
    /// Messages, suppressions, claims and the message slot.
    pub messages_rows: u64,
    pub archive_items: u64,
    /// Per queue name: webhooks carrying the address.
    pub queued_webhooks: BTreeMap<String, u64>,
    /// The version the marker holds: a returning customer's versions start after it.
    pub marker_last_version: u64,
}

/// Where the pipeline keeps customers, and how long a queued webhook stays hidden while
/// the queues are searched.
#[derive(Debug, Clone)]
pub struct Eraser {
    dynamo: Dynamo,
    log: DynamoEventArchive,
    tables: Tables,
    /// The webhook queue, its dead-letter queue and the stream mapping's failure
    /// destination (a quarantined record names its customer by address).
    queues: Vec<SqsQueue>,
    lease_seconds: u32,
    /// The wait between the two passes: [`ERASURE_SETTLE`] unless a test has no enricher
    /// running.
    settle: Duration,
}

impl Eraser {
    pub fn new(dynamo: Dynamo, tables: Tables, queues: Vec<SqsQueue>, lease_seconds: u32) -> Self {
        Eraser {
            log: DynamoEventArchive::new(dynamo.clone(), &tables.archive),
            dynamo,
            tables,
            queues,
            lease_seconds,
            settle: ERASURE_SETTLE,
        }
    }

    /// Waits `settle` instead of [`ERASURE_SETTLE`] between recording the markers and
    /// deleting. Below it, an enricher that read the erasure filter just before may recreate
    /// a customer from a redelivered event after the delete.
    pub fn with_settle(mut self, settle: Duration) -> Self {
        self.settle = settle;
        self
    }

    /// Erases customers, by canonical address (`normalise_email`), in the two passes the
    /// module describes; one answer per address, in order. A customer whose first pass failed
    /// is left for a new run (erasure is idempotent) and does not stop the others.
    pub async fn erase(
        &self,
        emails: &[String],
        dry_run: bool,
    ) -> Vec<Result<Removed, ErasureError>> {
        let mut marked = Vec::with_capacity(emails.len());
        for email in emails {
            marked.push(self.mark(email, dry_run).await);
        }
        if dry_run {
            return marked.into_iter().map(|mark| Ok(mark?.0)).collect();
        }
        if marked.iter().any(Result::is_ok) && !self.settle.is_zero() {
            tokio::time::sleep(self.settle).await;
        }
        let mut answers = Vec::with_capacity(emails.len());
        for (email, mark) in emails.iter().zip(marked) {
            answers.push(match mark {
                Ok((removed, marker)) => self.remove(email, removed, marker).await,
                Err(error) => Err(error),
            });
        }
        answers
    }

    /// The first pass: what the customer has, and (unless a dry run) the marker recorded.
    /// A dry run counts everything here, the queues included, since it has no second pass.
    async fn mark(
        &self,
        email: &str,
        dry_run: bool,
    ) -> Result<(Removed, ErasureMarker), ErasureError> {
        let tables = &self.tables;
        let dynamo = &self.dynamo;
        let hash = erasure_hash(email);
        let previous = self.log.find(&hash).await?;
        let item_version = features_version(dynamo, &tables.features, email).await?;
        let mut removed = Removed {
            customer_ref: customer_ref(email),
            dry_run,
            features_item: u64::from(item_version.is_some()),
            marker_last_version: item_version
                .into_iter()
                .chain(previous.as_ref().map(|marker| marker.last_version))
                .max()
                .unwrap_or(0),
            ..Removed::default()
        };
        let marker = ErasureMarker {
            hash,
            last_version: removed.marker_last_version,
            erased_at: Utc::now(),
        };
        if dry_run {
            removed.messages_rows = partition_keys(dynamo, &tables.messages, email, MESSAGE_KEY)
                .await?
                .len() as u64;
            removed.archive_items = partition_keys(dynamo, &tables.archive, email, BUCKET_KEY)
                .await?
                .len() as u64;
            for queue in &self.queues {
                let found = self.sweep(queue, email, false).await?;
                removed
                    .queued_webhooks
                    .insert(queue.name().to_owned(), found);
            }
        } else {
            self.log.record(&marker).await?;
        }
        Ok((removed, marker))
    }

    /// The second pass, after the settle: everything of the customer goes, including what
    /// was written while the markers settled.
    async fn remove(
        &self,
        email: &str,
        mut removed: Removed,
        mut marker: ErasureMarker,
    ) -> Result<Removed, ErasureError> {
        let tables = &self.tables;
        let dynamo = &self.dynamo;
        if let Some(deleted) = delete_features(dynamo, &tables.features, email).await? {
            removed.features_item = 1;
            if deleted > marker.last_version {
                // A write landed after the first pass: the marker must cover it, and its
                // events, too, or a redelivery of one would bring it back.
                marker.last_version = deleted;
                marker.erased_at = Utc::now();
                self.log.record(&marker).await?;
                removed.marker_last_version = deleted;
            }
        }
        let message_keys = partition_keys(dynamo, &tables.messages, email, MESSAGE_KEY).await?;
        let archive_keys = partition_keys(dynamo, &tables.archive, email, BUCKET_KEY).await?;
        removed.messages_rows = message_keys.len() as u64;
        removed.archive_items = archive_keys.len() as u64;
        for key in message_keys {
            delete_item(dynamo, &tables.messages, key).await?;
        }
        for key in archive_keys {
            delete_item(dynamo, &tables.archive, key).await?;
        }
        for queue in &self.queues {
            let deleted = self.sweep(queue, email, true).await?;
            removed
                .queued_webhooks
                .insert(queue.name().to_owned(), deleted);
        }
        Ok(removed)
    }

    /// Receives every message of a queue, counts (and with `delete`, deletes) those that
    /// carry the address, and makes the others visible again at once.
    async fn sweep(
        &self,
        queue: &SqsQueue,
        email: &str,
        delete: bool,
    ) -> Result<u64, ErasureError> {
        let mut scan = Scan::new(queue, self.lease_seconds);
        let mut found = 0;
        let outcome = async {
            loop {
                let batch = scan.next(10).await?;
                if batch.is_empty() {
                    return Ok::<(), AdapterError>(());
                }
                for message in batch {
                    if !carries(message.body().unwrap_or_default(), email) {
                        continue;
                    }
                    found += 1;
                    if delete {
                        queue
                            .delete_one(message.receipt_handle().unwrap_or_default())
                            .await?;
                        scan.forget(message.message_id().unwrap_or_default());
                    }
                }
            }
        }
        .await;
        // Whatever happened, nobody else's webhook stays hidden for the lease.
        let released = scan.release_all().await;
        let queue_error = |source| ErasureError::Queue {
            queue: queue.name().to_owned(),
            source,
        };
        outcome.map_err(queue_error)?;
        released.map_err(queue_error)?;
        Ok(found)
    }
}

async fn features_version(
    dynamo: &Dynamo,
    table: &str,
    email: &str,
) -> Result<Option<u64>, AdapterError> {
    let output = dynamo
        .get_item()
        .table_name(table)
        .key(CUSTOMER_KEY, AttributeValue::S(email.to_owned()))
        .consistent_read(true)
        .projection_expression("#version")
        .expression_attribute_names("#version", "version")
        .send()
        .await
        .map_err(|error| adapter_error("GetItem", error))?;
    Ok(output.item.map(|item| version_of(&item)))
}

/// An item without a readable version (corrupted) still goes; its version counts as 0.
fn version_of(item: &HashMap<String, AttributeValue>) -> u64 {
    match item.get("version") {
        Some(AttributeValue::N(number)) => number.parse().unwrap_or(0),
        _ => 0,
    }
}

async fn delete_features(
    dynamo: &Dynamo,
    table: &str,
    email: &str,
) -> Result<Option<u64>, AdapterError> {
    let output = dynamo
        .delete_item()
        .table_name(table)
        .key(CUSTOMER_KEY, AttributeValue::S(email.to_owned()))
        .return_values(ReturnValue::AllOld)
        .send()
        .await
        .map_err(|error| adapter_error("DeleteItem", error))?;
    Ok(output.attributes.map(|item| version_of(&item)))
}

type Key = HashMap<String, AttributeValue>;

/// The keys of every item of a customer's partition.
async fn partition_keys(
    dynamo: &Dynamo,
    table: &str,
    email: &str,
    sort_key: &str,
) -> Result<Vec<Key>, AdapterError> {
    let mut keys = Vec::new();
    let mut start: Option<Key> = None;
    loop {
        let output = dynamo
            .query()
            .table_name(table)
            .key_condition_expression("#key = :customer")
            .expression_attribute_names("#key", CUSTOMER_KEY)
            .expression_attribute_names("#sort", sort_key)
            .expression_attribute_values(":customer", AttributeValue::S(email.to_owned()))
            .projection_expression("#key, #sort")
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|error| adapter_error("Query", error))?;
        keys.extend(output.items.unwrap_or_default());
        match output.last_evaluated_key.filter(|key| !key.is_empty()) {
            Some(key) => start = Some(key),
            None => return Ok(keys),
        }
    }
}

async fn delete_item(dynamo: &Dynamo, table: &str, key: Key) -> Result<(), AdapterError> {
    dynamo
        .delete_item()
        .table_name(table)
        .set_key(Some(key))
        .send()
        .await
        .map_err(|error| adapter_error("DeleteItem", error))?;
    Ok(())
}

/// Whether a webhook body carries the address: as its canonical `customer.email` when it has
/// one, else (a body that does not parse, or has no such field) as a whole word anywhere in
/// its text in any case, so that `ann@x.org` does not match `joann@x.org`.
fn carries(body: &str, email: &str) -> bool {
    let canonical = serde_json::from_str::<Value>(body).ok().and_then(|value| {
        value
            .pointer("/customer/email")
            .and_then(Value::as_str)
            .map(normalise_email)
    });
    match canonical {
        Some(Ok(canonical)) => canonical == email,
        _ => contains_address(&body.to_lowercase(), email),
    }
}

fn contains_address(text: &str, email: &str) -> bool {
    let part_of_address =
        |c: char| c.is_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-' | '@');
    text.match_indices(email).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + email.len()..].chars().next();
        !before.is_some_and(part_of_address) && !after.is_some_and(part_of_address)
    })
}

#[cfg(test)]
mod tests {
    use super::carries;

    #[test]
    fn a_body_carries_the_address_canonically_or_in_its_text() {
        let email = "jane.doe@example.com";
        assert!(carries(
            r#"{"customer":{"email":" Jane.Doe@EXAMPLE.com "}}"#,
            email
        ));
        assert!(carries("{broken JANE.DOE@example.com", email));
        assert!(!carries(
            r#"{"customer":{"email":"john@example.com"}}"#,
            email
        ));
        assert!(!carries("{broken", email));
        assert!(!carries("{broken xjane.doe@example.com", email));
        assert!(!carries("{broken jane.doe@example.com.au", email));
        assert!(carries(
            r#"{"customer":{"email":"jane.doe@example.com"#,
            email
        ));
    }
}
