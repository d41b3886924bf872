//! The stream event-source mapping, played by a local process: what Lambda does between the
//! `CustomerFeatures` stream and this function, for `referral run --endpoint-url`, `referral
//! local serve`, `referral dlq replay` and the tests against an emulator.
//!
//! Records read through the DynamoDB Streams API become the exact `Event` Lambda delivers
//! (so the images are decoded the function's way) and go to [`OrchestratorHandler::handle`]
//! in stream order. A `batchItemFailures` answer makes the mapping deliver again from the
//! record it names, with backoff, up to a retry budget; a record still failing then is
//! passed over and counted, where Lambda would send its position to the on-failure
//! destination.

use std::time::Duration;

use crate::aws_local::stream_reader::DynamoStreamFeed;
use aws_lambda_events::event::dynamodb::{Event, EventRecord, StreamRecord, StreamViewType};
use aws_sdk_dynamodbstreams::types::{Record, StreamViewType as SdkViewType};
use chrono::{DateTime, Utc};
use referral_domain::ports::{AdapterError, MessageGenerator, MessageStore};
use referral_local::pipeline::{StreamConsumer, StreamCounters};

use referral_orchestrator::OrchestratorHandler;

/// How often a failing record is delivered again before it is passed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Deliveries after the first (the mapping's `MaximumRetryAttempts`).
    pub max_retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            backoff: Duration::from_millis(200),
        }
    }
}

/// The `Event` Lambda delivers for `records` of the stream `stream_arn`.
pub fn lambda_event(records: &[Record], stream_arn: &str) -> Event {
    let mut event = Event::default();
    event.records = records
        .iter()
        .map(|record| event_record(record, stream_arn))
        .collect();
    event
}

fn event_record(record: &Record, stream_arn: &str) -> EventRecord {
    let mut out = EventRecord::default();
    out.event_id = record.event_id.clone().unwrap_or_default();
    out.event_name = record
        .event_name
        .as_ref()
        .map(|name| name.as_str().to_owned())
        .unwrap_or_default();
    out.event_source = record.event_source.clone();
    out.event_version = record.event_version.clone();
    out.aws_region = record.aws_region.clone().unwrap_or_default();
    out.event_source_arn = Some(stream_arn.to_owned());
    if let Some(data) = &record.dynamodb {
        let mut change = StreamRecord::default();
        change.keys = data.keys.clone().unwrap_or_default().into();
        change.new_image = data.new_image.clone().unwrap_or_default().into();
        change.old_image = data.old_image.clone().unwrap_or_default().into();
        change.sequence_number = data.sequence_number.clone();
        change.size_bytes = data.size_bytes.unwrap_or_default();
        change.stream_view_type = data.stream_view_type.as_ref().map(view_type);
        if let Some(created) = data.approximate_creation_date_time {
            change.approximate_creation_date_time =
                DateTime::from_timestamp(created.secs(), created.subsec_nanos())
                    .unwrap_or_default();
        }
        out.change = change;
    }
    out
}

fn view_type(view: &SdkViewType) -> StreamViewType {
    match view {
        SdkViewType::NewImage => StreamViewType::NewImage,
        SdkViewType::OldImage => StreamViewType::OldImage,
        SdkViewType::NewAndOldImages => StreamViewType::NewAndOldImages,
        _ => StreamViewType::KeysOnly,
    }
}

fn sequence_number(record: &Record) -> Option<&str> {
    record.dynamodb.as_ref()?.sequence_number.as_deref()
}

/// Delivers `records` (in stream order) to `handler` the way the mapping does, until each
/// is handled or passed over; the counts say which.
pub async fn deliver<G: MessageGenerator, M: MessageStore>(
    handler: &OrchestratorHandler<G, M>,
    mut records: Vec<Record>,
    stream_arn: &str,
    policy: RetryPolicy,
) -> StreamCounters {
    let mut counters = StreamCounters {
        records: records.len() as u64,
        ..StreamCounters::default()
    };
    let mut retries = 0;
    while !records.is_empty() {
        let outcome = handler
            .handle(&lambda_event(&records, stream_arn), Utc::now())
            .await;
        counters.messages_created += outcome.counters.created;
        counters.already_created += outcome.counters.already_created;
        counters.skipped += outcome.counters.skipped;
        let Some(failed) = outcome
            .response
            .batch_item_failures
            .first()
            .and_then(|failure| failure.item_identifier.clone())
        else {
            break;
        };
        // Everything before the failed record is done; delivery resumes at it.
        let resume = records
            .iter()
            .position(|record| sequence_number(record) == Some(failed.as_str()))
            .unwrap_or(0);
        records.drain(..resume);
        if retries < policy.max_retries {
            tokio::time::sleep(policy.backoff.saturating_mul(1 << retries.min(8))).await;
            retries += 1;
        } else {
            tracing::error!(
                sequence_number = %failed,
                attempts = retries + 1,
                "stream record failed every delivery; passed over (Lambda would send its \
                 position to the on-failure destination)"
            );
            counters.failed += 1;
            records.remove(0);
            retries = 0;
        }
    }
    counters
}

/// A stream poller in front of the orchestrator's handler.
#[derive(Debug)]
pub struct StreamMapping<G, M> {
    feed: DynamoStreamFeed,
    handler: OrchestratorHandler<G, M>,
    policy: RetryPolicy,
}

impl<G: MessageGenerator, M: MessageStore> StreamMapping<G, M> {
    pub fn new(feed: DynamoStreamFeed, handler: OrchestratorHandler<G, M>) -> Self {
        StreamMapping {
            feed,
            handler,
            policy: RetryPolicy::default(),
        }
    }

    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    pub fn handler(&self) -> &OrchestratorHandler<G, M> {
        &self.handler
    }
}

impl<G: MessageGenerator, M: MessageStore> StreamConsumer for StreamMapping<G, M> {
    async fn consume(
        &self,
        max: usize,
        counters: &mut StreamCounters,
    ) -> Result<usize, AdapterError> {
        let records = self.feed.poll_records(max).await?;
        let taken = records.len();
        if taken > 0 {
            let delivered =
                deliver(&self.handler, records, self.feed.stream_arn(), self.policy).await;
            counters.add(&delivered);
        }
        Ok(taken)
    }
}
