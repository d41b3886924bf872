//! `referral customers forget`: erases customers everywhere the pipeline keeps them, leaving
//! only an erasure marker with no personal data (see `referral_domain::ports::ErasureLog`).
//!
//! The marker is written first, so that an event racing the erasure cannot recreate the
//! customer from old data: once it is there, the enricher drops every event of before the
//! erasure. Then the features item, the messages, the archive and the queued webhooks go.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::Client as Dynamo;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::Utc;
use referral_aws::dynamo::{BUCKET_KEY, CUSTOMER_KEY, DynamoEventArchive, MESSAGE_KEY};
use referral_aws::error::adapter_error;
use referral_dlq::{DlqError, Queue, Scan};
use referral_domain::event::normalise_email;
use referral_domain::ports::{AdapterError, ErasureLog, ErasureMarker};
use referral_domain::redact::{customer_ref, erasure_hash};
use serde::Serialize;
use serde_json::Value;

/// What `referral customers forget` was asked.
#[derive(Debug, Clone)]
pub struct ForgetOptions {
    /// The addresses to erase.
    pub emails: Vec<String>,
    /// A file of addresses, one a line (blank lines and `#` comments skipped).
    pub from_file: Option<PathBuf>,
    /// Say what would be removed; remove nothing and leave no marker.
    pub dry_run: bool,
    /// One JSON object per customer instead of text.
    pub json: bool,
    /// Seconds a queued webhook stays hidden while the queues are searched.
    pub lease_seconds: u32,
    pub resources: ForgetResources,
}

/// Where the pipeline keeps a customer.
#[derive(Debug, Clone)]
pub struct ForgetResources {
    pub features_table: String,
    pub archive_table: String,
    pub messages_table: String,
    /// The webhook queue and its dead-letter queue, by name or URL.
    pub queue: String,
    pub dlq: String,
    /// The stream mapping's failure destination: a quarantined record names its customer
    /// by address.
    pub stream_failures: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ForgetError {
    #[error("{path}:{line}: {problem}")]
    BadAddress {
        path: String,
        line: usize,
        problem: String,
    },
    #[error("argument {position}: {problem}")]
    BadArgument { position: usize, problem: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no address given: name them, or --from-file")]
    Nothing,
    #[error(transparent)]
    Aws(#[from] AdapterError),
    #[error(transparent)]
    Queue(#[from] DlqError),
    #[error("cannot print the report: {0}")]
    Output(#[from] serde_json::Error),
}

/// What was (or, with `--dry-run`, would be) removed of one customer, per place.
#[derive(Debug, Default, Serialize)]
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

pub async fn forget_all(args: &ForgetOptions, sdk: &SdkConfig) -> Result<ExitCode, ForgetError> {
    let emails = addresses(args)?;
    let dynamo = Dynamo::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let log = DynamoEventArchive::new(dynamo.clone(), &args.resources.archive_table);
    let mut queues = Vec::new();
    for name in [
        &args.resources.queue,
        &args.resources.dlq,
        &args.resources.stream_failures,
    ] {
        queues.push(Queue::resolve(&sqs, name).await?);
    }
    for email in &emails {
        let removed = forget(args, &dynamo, &log, &queues, email).await?;
        if args.json {
            println!("{}", serde_json::to_string(&removed)?);
        } else {
            let verb = if args.dry_run {
                "would remove"
            } else {
                "removed"
            };
            println!(
                "customer {}: {verb} features item {}, ReferralMessages rows {}, archive items \
                 {}, queued webhooks {:?}; marker after version {}",
                removed.customer_ref,
                removed.features_item,
                removed.messages_rows,
                removed.archive_items,
                removed.queued_webhooks,
                removed.marker_last_version,
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn addresses(args: &ForgetOptions) -> Result<Vec<String>, ForgetError> {
    let mut emails = Vec::new();
    for (index, raw) in args.emails.iter().enumerate() {
        emails.push(
            normalise_email(raw).map_err(|error| ForgetError::BadArgument {
                position: index + 1,
                problem: error.to_string(),
            })?,
        );
    }
    if let Some(path) = &args.from_file {
        let text = std::fs::read_to_string(path).map_err(|source| ForgetError::Read {
            path: path.display().to_string(),
            source,
        })?;
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            emails.push(
                normalise_email(line).map_err(|error| ForgetError::BadAddress {
                    path: path.display().to_string(),
                    line: index + 1,
                    problem: error.to_string(),
                })?,
            );
        }
    }
    emails.sort();
    emails.dedup();
    if emails.is_empty() {
        return Err(ForgetError::Nothing);
    }
    Ok(emails)
}

async fn forget(
    args: &ForgetOptions,
    dynamo: &Dynamo,
    log: &DynamoEventArchive,
    queues: &[Queue],
    email: &str,
) -> Result<Removed, ForgetError> {
    let resources = &args.resources;
    let hash = erasure_hash(email);
    let previous = log.find(&hash).await?;
    let item_version = features_version(dynamo, &resources.features_table, email).await?;
    let mut removed = Removed {
        customer_ref: customer_ref(email),
        dry_run: args.dry_run,
        features_item: u64::from(item_version.is_some()),
        marker_last_version: item_version
            .into_iter()
            .chain(previous.as_ref().map(|marker| marker.last_version))
            .max()
            .unwrap_or(0),
        ..Removed::default()
    };
    let message_keys =
        partition_keys(dynamo, &resources.messages_table, email, MESSAGE_KEY).await?;
    let archive_keys = partition_keys(dynamo, &resources.archive_table, email, BUCKET_KEY).await?;
    removed.messages_rows = message_keys.len() as u64;
    removed.archive_items = archive_keys.len() as u64;
    if args.dry_run {
        for queue in queues {
            let found = sweep(queue, email, args.lease_seconds, false).await?;
            removed
                .queued_webhooks
                .insert(queue.name().to_owned(), found);
        }
        return Ok(removed);
    }

    let mut marker = ErasureMarker {
        hash,
        last_version: removed.marker_last_version,
        erased_at: Utc::now(),
    };
    log.record(&marker).await?;
    if let Some(deleted) = delete_features(dynamo, &resources.features_table, email).await?
        && deleted > marker.last_version
    {
        // A write landed between the read and the delete: the marker must cover it too.
        marker.last_version = deleted;
        log.record(&marker).await?;
        removed.marker_last_version = deleted;
        removed.features_item = 1;
    }
    for key in message_keys {
        delete_item(dynamo, &resources.messages_table, key).await?;
    }
    for key in archive_keys {
        delete_item(dynamo, &resources.archive_table, key).await?;
    }
    for queue in queues {
        let deleted = sweep(queue, email, args.lease_seconds, true).await?;
        removed
            .queued_webhooks
            .insert(queue.name().to_owned(), deleted);
    }
    Ok(removed)
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
fn version_of(item: &std::collections::HashMap<String, AttributeValue>) -> u64 {
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

type Key = std::collections::HashMap<String, AttributeValue>;

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

/// Receives every message of a queue, counts (and with `delete`, deletes) those that carry
/// the address, and makes the others visible again at once.
async fn sweep(
    queue: &Queue,
    email: &str,
    lease_seconds: u32,
    delete: bool,
) -> Result<u64, DlqError> {
    let mut scan = Scan::new(queue, lease_seconds);
    let mut found = 0;
    let outcome = async {
        loop {
            let batch = scan.next(10).await?;
            if batch.is_empty() {
                return Ok::<(), DlqError>(());
            }
            for message in batch {
                if !carries(&message.body, email) {
                    continue;
                }
                found += 1;
                if delete {
                    queue
                        .delete(&message.receipt)
                        .await
                        .map_err(|source| queue.error(source))?;
                    scan.forget(&message.message_id);
                }
            }
        }
    }
    .await;
    // Whatever happened, nobody else's webhook stays hidden for the lease.
    scan.release_all().await?;
    outcome.map(|()| found)
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
