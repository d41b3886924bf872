//! The SQS event Lambda's SQS event-source mapping hands a function.

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};
use referral_domain::ports::QueueMessage;

/// The SQS event Lambda's event-source mapping hands a function for `batch`, received from
/// the queue `queue_arn`.
pub fn sqs_event(batch: &[QueueMessage], queue_arn: &str) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = batch
        .iter()
        .map(|message| {
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
            record
        })
        .collect();
    event
}
