//! The `CustomerFeatures` stream records the enricher's writes produce, as the
//! orchestrator's event-source mapping delivers them. The items are computed by the real
//! fold, batch by batch as the enricher writes them: one write per customer per batch that
//! applied something, an INSERT for a new item and a MODIFY after, each carrying the new
//! image only (the table's `StreamViewType` is `NEW_IMAGE`).

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use referral_aws::dynamo::CUSTOMER_KEY;
use referral_domain::enricher::MAX_FUTURE_SKEW;
use referral_domain::event::{ServiceEvent, Webhook};
use referral_domain::features::{CustomerFeatures, MemoryLimits, fold_events};
use serde_dynamo::{AttributeValue, Item};
use serde_json::{Value, json};

use super::EventsError;
use super::wire::{ACCOUNT, REGION, SentWebhook, hex_of, item_size, seed};

#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// Webhooks per enricher invocation: what one write of a customer may fold together.
    pub batch_size: usize,
    /// Records per orchestrator invocation, like the mapping's `BatchSize`.
    pub records_per_event: usize,
    pub table: String,
    pub sent_at: DateTime<Utc>,
}

/// One write of the enricher.
#[derive(Debug)]
struct Write {
    batch: usize,
    created: bool,
    item: CustomerFeatures,
}

/// The stream events, records in write order.
pub fn events(
    webhooks: &[SentWebhook],
    options: &StreamOptions,
) -> Result<Vec<Value>, EventsError> {
    let records = writes(webhooks, options)
        .iter()
        .enumerate()
        .map(|(index, write)| record(index, write, options))
        .collect::<Result<Vec<Value>, EventsError>>()?;
    Ok(records
        .chunks(options.records_per_event.max(1))
        .map(|chunk| json!({ "Records": chunk }))
        .collect())
}

/// The enricher's writes: per batch, customers in order of first appearance, each
/// customer's new events folded into the item the previous batches left.
fn writes(webhooks: &[SentWebhook], options: &StreamOptions) -> Vec<Write> {
    // Like the enricher, refuse events dated further ahead of the clock than it accepts.
    let latest_accepted = options.sent_at + MAX_FUTURE_SKEW;
    let mut items: HashMap<String, CustomerFeatures> = HashMap::new();
    let mut writes = Vec::new();
    for (batch, chunk) in webhooks.chunks(options.batch_size.max(1)).enumerate() {
        let mut groups: Vec<(&str, Vec<&ServiceEvent>)> = Vec::new();
        for webhook in chunk {
            let Ok(Webhook::ServiceCompleted(event)) = &webhook.parsed else {
                continue;
            };
            if event.occurred_at > latest_accepted {
                continue;
            }
            let email = event.customer.email.as_str();
            match groups.iter_mut().find(|(customer, _)| *customer == email) {
                Some((_, events)) => events.push(event.as_ref()),
                None => groups.push((email, vec![event.as_ref()])),
            }
        }
        for (email, events) in groups {
            let created = !items.contains_key(email);
            let fold = fold_events(items.remove(email), &events, MemoryLimits::default());
            let changed = fold.changed();
            // Unchanged (all duplicates): no write, so no record, and the item stays.
            if let Some(item) = fold.item {
                if changed {
                    writes.push(Write {
                        batch,
                        created,
                        item: item.clone(),
                    });
                }
                items.insert(email.to_owned(), item);
            }
        }
    }
    writes
}

fn record(index: usize, write: &Write, options: &StreamOptions) -> Result<Value, EventsError> {
    let email = &write.item.customer_email;
    let keys: Item =
        HashMap::from([(CUSTOMER_KEY.to_owned(), AttributeValue::S(email.clone()))]).into();
    let image: Item = serde_dynamo::to_item(&write.item)?;
    let size_bytes = item_size(&keys) + item_size(&image);
    let image = serde_json::to_value(&image)?;
    // Shard sequence numbers: 21 digits, increasing in write order.
    let sent = u64::try_from(options.sent_at.timestamp()).unwrap_or_default();
    let sequence_number = format!("1{:020}", sent * 1_000_000 + 100 * (index as u64 + 1));
    // The enricher writes a batch a moment after it was sent.
    let written_at = options.sent_at + TimeDelta::seconds(write.batch as i64 + 1);
    let stream_label = options.sent_at.format("%Y-%m-%dT00:00:00.000");
    Ok(json!({
        "eventID": hex_of(&seed(&[b"stream", sequence_number.as_bytes()]), 32),
        "eventName": if write.created { "INSERT" } else { "MODIFY" },
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "dynamodb": {
            "ApproximateCreationDateTime": written_at.timestamp(),
            "Keys": { CUSTOMER_KEY: { "S": email } },
            "NewImage": image,
            "SequenceNumber": sequence_number,
            "SizeBytes": size_bytes,
            "StreamViewType": "NEW_IMAGE",
        },
        "eventSourceARN": format!(
            "arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{}/stream/{stream_label}",
            options.table
        ),
    }))
}
