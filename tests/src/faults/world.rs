//! Reading the [`World`] back: from moto's tables and queues, or from the embedded adapters.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use referral_aws::dynamo::DynamoFeatureStore;
use referral_aws::sqs::{SqsQueue, attributes_of, receive_count_of};
use referral_domain::event::{Webhook, parse_webhook};
use referral_domain::features::{ArchivedEvent, CustomerFeatures};
use referral_domain::ports::{Decision, EventArchive, QueueMessage};
use referral_enricher::dead_letter::{ERROR_KIND, EVENT_ID};

use super::invariants::{DeadLetter, DecisionRow, Sent};

/// A body as the test sends it: with its event when it is a valid service event.
pub fn sent(body: String) -> Sent {
    let event = match parse_webhook(&body) {
        Ok(Webhook::ServiceCompleted(event)) => Some(*event),
        _ => None,
    };
    Sent {
        event_id: event_id_of(&body),
        event,
        body,
    }
}

fn event_id_of(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    value.get("event_id")?.as_str().map(str::to_owned)
}

/// A dead letter's reason: the enricher's `error_kind`, or the queue's redrive, which moves
/// a message only after it was received `maxReceiveCount` times (so it arrives with a
/// receive count above one, where a message sent straight to the DLQ has one).
pub fn dead_letter_of(message: &QueueMessage) -> DeadLetter {
    let reason = match message.attributes.get(ERROR_KIND) {
        Some(kind) => Some(kind.clone()),
        None if message.receive_count > 1 => Some("redriven".to_owned()),
        None => None,
    };
    DeadLetter {
        event_id: message
            .attributes
            .get(EVENT_ID)
            .cloned()
            .or_else(|| event_id_of(&message.body)),
        body: message.body.clone(),
        reason,
    }
}

pub fn decision_row(decision: &Decision) -> DecisionRow {
    match decision {
        Decision::Message(message) => DecisionRow {
            customer: message.customer_email.clone(),
            message_id: message.message_id.clone(),
            version: message.features_version,
            generator: Some(message.generator.clone()),
            fallback_reason: message.fallback_reason.clone(),
        },
        Decision::Suppressed(suppression) => DecisionRow {
            customer: suppression.customer_email.clone(),
            message_id: suppression.message_id.clone(),
            version: suppression.features_version,
            generator: None,
            fallback_reason: None,
        },
    }
}

/// Every item of the feature table.
pub async fn read_features(store: &DynamoFeatureStore) -> BTreeMap<String, CustomerFeatures> {
    let mut items = BTreeMap::new();
    let mut start = None;
    loop {
        let page = store
            .scan_page(start)
            .await
            .unwrap_or_else(|error| panic!("scanning the feature table: {error}"));
        assert!(
            page.undecodable.is_empty(),
            "items that do not decode: {:?}",
            page.undecodable
        );
        items.extend(
            page.items
                .into_iter()
                .map(|item| (item.customer_email.clone(), item)),
        );
        match page.next {
            Some(key) => start = Some(key),
            None => return items,
        }
    }
}

/// The archive buckets of `customers`.
pub async fn read_archive<'a, A: EventArchive>(
    archive: &A,
    customers: impl IntoIterator<Item = &'a String>,
) -> BTreeMap<String, BTreeMap<u32, Vec<ArchivedEvent>>> {
    let mut all = BTreeMap::new();
    for customer in customers {
        let buckets = archive
            .buckets(customer)
            .await
            .unwrap_or_else(|error| panic!("reading the archive of a customer: {error}"));
        if !buckets.is_empty() {
            all.insert(customer.clone(), buckets.into_iter().collect());
        }
    }
    all
}

/// The message table's rows: decisions, and the keys of rows that are still claims. Read
/// raw, so that a claim (which the message store never lists) is seen too.
pub async fn read_messages(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> (Vec<DecisionRow>, Vec<String>) {
    let (mut decisions, mut claims) = (Vec::new(), Vec::new());
    let mut start: Option<HashMap<String, AttributeValue>> = None;
    loop {
        let output = client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .unwrap_or_else(|error| panic!("scanning {table}: {error:?}"));
        for item in output.items.unwrap_or_default() {
            let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
            let customer = text("customerEmail").unwrap_or_default();
            let message_id = text("message_id").unwrap_or_default();
            let version = item
                .get("features_version")
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            match text("status").as_deref() {
                Some("completed") => decisions.push(DecisionRow {
                    customer,
                    message_id,
                    version,
                    generator: text("generator"),
                    fallback_reason: text("fallback_reason"),
                }),
                Some("suppressed") => decisions.push(DecisionRow {
                    customer,
                    message_id,
                    version,
                    generator: None,
                    fallback_reason: None,
                }),
                _ => claims.push(format!("{customer}/{message_id}")),
            }
        }
        match output.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return (decisions, claims),
        }
    }
}

/// Every message of a dead-letter queue, each received once (hidden for the rest of the
/// test).
pub async fn read_dead_letters(queue: &SqsQueue) -> Vec<DeadLetter> {
    let mut letters = Vec::new();
    loop {
        let batch = queue
            .receive_raw(10, 0, Some(600))
            .await
            .unwrap_or_else(|error| panic!("reading the dead-letter queue: {error}"));
        if batch.is_empty() {
            return letters;
        }
        letters.extend(batch.iter().map(|message| {
            dead_letter_of(&QueueMessage {
                message_id: message.message_id.clone().unwrap_or_default(),
                receipt: String::new(),
                body: message.body.clone().unwrap_or_default(),
                attributes: attributes_of(message),
                receive_count: receive_count_of(message),
            })
        }));
    }
}
