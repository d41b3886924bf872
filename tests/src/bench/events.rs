//! The SQS batch events the enricher's event-source mapping would invoke it with.

use referral_lambda_emulator::Payload;
use serde_json::{Value, json};

use crate::corpus::Corpus;

/// One SQS event per batch of the corpus, as JSON bytes.
pub fn sqs_batches(corpus: &Corpus, queue_arn: &str) -> Vec<Vec<u8>> {
    let first_receive = "1767225600000";
    corpus
        .batches()
        .enumerate()
        .map(|(batch, deliveries)| {
            let records: Vec<Value> = deliveries
                .iter()
                .enumerate()
                .map(|(index, delivery)| {
                    let id = format!("msg-{batch:05}-{index:02}");
                    json!({
                        "messageId": id,
                        "receiptHandle": format!("rh-{id}"),
                        "body": delivery.body,
                        "attributes": {
                            "ApproximateReceiveCount": "1",
                            "SentTimestamp": first_receive,
                            "SenderId": "AIDAEXAMPLE",
                            "ApproximateFirstReceiveTimestamp": first_receive
                        },
                        "messageAttributes": {},
                        "md5OfBody": "",
                        "eventSource": "aws:sqs",
                        "eventSourceARN": queue_arn,
                        "awsRegion": "us-east-1"
                    })
                })
                .collect();
            json!({ "Records": records }).to_string().into_bytes()
        })
        .collect()
}

/// The messages a response hands back to SQS (`batchItemFailures`).
pub fn item_failures(payload: &Payload) -> usize {
    match payload {
        Payload::Json(response) => response["batchItemFailures"].as_array().map_or(0, Vec::len),
        Payload::Raw(_) => 0,
    }
}
