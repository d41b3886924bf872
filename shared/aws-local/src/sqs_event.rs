//! The SQS event Lambda's SQS event-source mapping hands a function: the one builder of
//! SQS events in the workspace (the local runs, `referral events sqs`, the tests and the
//! bench all start from it).

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};
use referral_domain::ports::QueueMessage;

/// The record of `message`, received from the queue `queue_arn`: its id, receipt, body,
/// receive count and string attributes.
pub fn sqs_record(message: &QueueMessage, queue_arn: &str) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = Some(message.message_id.clone());
    record.receipt_handle = Some(message.receipt.clone());
    record.body = Some(message.body.clone());
    record.attributes = [(
        "ApproximateReceiveCount".to_owned(),
        message.receive_count.to_string(),
    )]
    .into();
    record.message_attributes = message
        .attributes
        .iter()
        .map(|(name, value)| {
            let mut attribute = SqsMessageAttribute::default();
            attribute.string_value = Some(value.clone());
            attribute.data_type = Some("String".to_owned());
            (name.clone(), attribute)
        })
        .collect();
    record.event_source = Some("aws:sqs".to_owned());
    record.event_source_arn = Some(queue_arn.to_owned());
    record.aws_region = queue_arn.split(':').nth(3).map(str::to_owned);
    record
}

/// The SQS event Lambda's event-source mapping hands a function for `batch`, received from
/// the queue `queue_arn`.
pub fn sqs_event(batch: &[QueueMessage], queue_arn: &str) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = batch
        .iter()
        .map(|message| sqs_record(message, queue_arn))
        .collect();
    event
}

/// Messages received for the first time, from (message id, body) pairs: what tests and
/// benchmarks hand the enricher.
pub fn first_deliveries(deliveries: &[(String, String)]) -> Vec<QueueMessage> {
    deliveries
        .iter()
        .map(|(message_id, body)| QueueMessage {
            message_id: message_id.clone(),
            receipt: format!("{message_id}-receipt"),
            body: body.clone(),
            attributes: Default::default(),
            receive_count: 1,
        })
        .collect()
}
