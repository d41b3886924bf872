//! SQS batches as the enricher's event-source mapping delivers them: each webhook as ingest
//! put it on the queue (body as signed, the message attributes ingest sets).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use referral_ingest::queue_message;
use serde_json::{Map, Value, json};

use super::md5;
use super::wire::{ACCOUNT, REGION, SentWebhook, hex_of, seed, uuid};

/// The ingest function's role session, as SQS reports the sender.
const SENDER_ID: &str = "AROAY4EXAMPLEQ7ZK2WMB:referral-dev-ingest";
/// Time between two sends, and from a send to the poller's first receive.
const SEND_SPACING_MS: i64 = 10;
const RECEIVE_LAG_MS: i64 = 40;

#[derive(Debug, Clone)]
pub struct SqsOptions {
    /// Messages per event, like the mapping's `BatchSize`.
    pub batch_size: usize,
    /// `ApproximateReceiveCount` of every message: above 1 for a redelivery.
    pub receive_count: u32,
    pub queue: String,
    pub sent_at: DateTime<Utc>,
}

/// The batches, in input order.
pub fn batches(webhooks: &[SentWebhook], options: &SqsOptions) -> Vec<Value> {
    let records: Vec<Value> = webhooks
        .iter()
        .enumerate()
        .map(|(index, webhook)| record(index, webhook, options))
        .collect();
    records
        .chunks(options.batch_size.max(1))
        .map(|chunk| json!({ "Records": chunk }))
        .collect()
}

/// The attributes ingest sets on the message. A body ingest refuses (not JSON, an invalid
/// field) never passes through it: such a message reached the queue another way (an older
/// ingest, a hand-made import) and carries none.
fn attributes(webhook: &SentWebhook) -> Vec<(String, String)> {
    match &webhook.parsed {
        Ok(parsed) => queue_message(String::new(), parsed)
            .attributes
            .into_iter()
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn record(index: usize, webhook: &SentWebhook, options: &SqsOptions) -> Value {
    let sent_ms = options.sent_at.timestamp_millis() + SEND_SPACING_MS * index as i64;
    let id_seed = seed(&[b"sqs", webhook.body.as_bytes(), &sent_ms.to_be_bytes()]);
    let handle_bytes: Vec<u8> = (0u8..4)
        .flat_map(|part| seed(&[b"receipt", &id_seed, &[part]]))
        .collect();
    let attributes = attributes(webhook);
    let mut message_attributes = Map::new();
    for (name, value) in &attributes {
        message_attributes.insert(
            name.clone(),
            json!({
                "stringValue": value,
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "String",
            }),
        );
    }
    let mut record = json!({
        "messageId": uuid(&id_seed),
        "receiptHandle": STANDARD.encode(handle_bytes),
        "body": webhook.body,
        "attributes": {
            "ApproximateReceiveCount": options.receive_count.to_string(),
            "AWSTraceHeader": format!(
                "Root=1-{:08x}-{};Parent={};Sampled=0",
                sent_ms / 1000,
                hex_of(&id_seed, 24),
                &hex_of(&id_seed, 40)[24..]
            ),
            "SentTimestamp": sent_ms.to_string(),
            "SenderId": SENDER_ID,
            "ApproximateFirstReceiveTimestamp": (sent_ms + RECEIVE_LAG_MS).to_string(),
        },
        "messageAttributes": message_attributes,
        "md5OfBody": md5::hex_digest(webhook.body.as_bytes()),
    });
    if let Value::Object(map) = &mut record {
        if !attributes.is_empty() {
            let pairs: Vec<(&str, &str)> = attributes
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str()))
                .collect();
            map.insert(
                "md5OfMessageAttributes".to_owned(),
                Value::String(md5::string_attributes_digest(&pairs)),
            );
        }
        map.insert("eventSource".to_owned(), json!("aws:sqs"));
        map.insert(
            "eventSourceARN".to_owned(),
            json!(format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{}", options.queue)),
        );
        map.insert("awsRegion".to_owned(), json!(REGION));
    }
    record
}
