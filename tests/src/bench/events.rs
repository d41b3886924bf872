//! The SQS batch events the enricher's event-source mapping would invoke it with.

use referral_aws_local::sqs_event::{first_deliveries, sqs_event};
use referral_domain::trace::{TRACEPARENT, TraceContext};
use referral_lambda_emulator::Payload;

use crate::corpus::Corpus;

/// One SQS event per batch of the corpus, as JSON bytes.
pub fn sqs_batches(corpus: &Corpus, queue_arn: &str) -> Vec<Vec<u8>> {
    corpus
        .batches()
        .enumerate()
        .map(|(batch, deliveries)| {
            let deliveries: Vec<(String, String)> = deliveries
                .iter()
                .enumerate()
                .map(|(index, delivery)| {
                    (format!("msg-{batch:05}-{index:02}"), delivery.body.clone())
                })
                .collect();
            let mut messages = first_deliveries(&deliveries);
            // As ingest queues it, every webhook carries its trace (and its item keeps it).
            for message in &mut messages {
                if let Some(trace) = TraceContext::derived(message.body.as_bytes()) {
                    message
                        .attributes
                        .insert(TRACEPARENT.to_owned(), trace.to_string());
                }
            }
            serde_json::to_vec(&sqs_event(&messages, queue_arn)).unwrap_or_default()
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
