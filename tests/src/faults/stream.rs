//! The stream mapping of the fault suite: `referral_local::mapping`'s engine over the
//! table's real stream (moto's, read through the DynamoDB Streams API), delivering the
//! events Lambda delivers to a function and sending its on-failure destination, an SQS
//! queue, the record Lambda sends (where the given-up piece was, `DDBStreamBatchInfo`).

use std::future::Future;
use std::time::Duration;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use referral_aws::sqs::SqsQueue;
use referral_aws_local::stream_reader::{DynamoStreamFeed, event_record};
use referral_domain::orchestrator::StreamCounters;
use referral_domain::ports::{AdapterError, OutgoingMessage, WorkQueue};
use referral_local::mapping::{
    FailureDestination, GiveUp, MappedFunction, Mapping, MappingReport, MappingSettings,
    RecordSource, Response,
};
use serde_json::json;

/// The mapping's settings (the template's `OrchestratorBatchSize`,
/// `OrchestratorMaxRetryAttempts`, `BisectBatchOnFunctionError`).
#[derive(Debug, Clone, Copy)]
pub struct StreamSettings {
    pub batch_size: usize,
    pub max_retries: u32,
    /// Empty polls in a row that mean the stream is drained (moto publishes at once).
    pub empty_polls: u32,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            batch_size: 10,
            max_retries: 10,
            empty_polls: 2,
        }
    }
}

impl StreamSettings {
    fn mapping(self) -> MappingSettings {
        MappingSettings {
            batch_size: self.batch_size,
            max_retries: self.max_retries,
            // Lambda's backoff only stretches the run; the order of deliveries is the same.
            backoff: Duration::ZERO,
            bisect_on_function_error: true,
            give_up: GiveUp::Piece,
        }
    }
}

/// One delivery to the function.
#[derive(Debug)]
pub struct Delivery<'a> {
    /// Counts every invocation of the run, from 1.
    pub number: u64,
    /// Deliveries of this piece before this one.
    pub attempt: u32,
    pub event: &'a Event,
}

/// How an invocation ended.
#[derive(Debug)]
pub enum Invoked {
    Responded {
        response: DynamoDbEventResponse,
        counters: StreamCounters,
    },
    /// A function error: the invocation died or timed out.
    Crashed,
}

/// The function behind the mapping.
pub trait StreamFunction {
    fn invoke(&self, delivery: Delivery<'_>) -> impl Future<Output = Invoked>;
}

/// What the mapping did.
pub type StreamReport = MappingReport<EventRecord>;

/// The mapping of one stream, with an SQS queue as its on-failure destination.
#[derive(Debug)]
pub struct StreamMappingSim<'a> {
    pub feed: &'a DynamoStreamFeed,
    pub shard_id: &'a str,
    pub failures: &'a SqsQueue,
    pub settings: StreamSettings,
}

impl StreamMappingSim<'_> {
    /// Delivers the stream to `function` until it is drained.
    pub async fn run(&self, function: &impl StreamFunction) -> StreamReport {
        Mapping::assemble(
            LambdaEvents { feed: self.feed },
            EventFunction(function),
            BatchInfoQueue {
                queue: self.failures,
                shard_id: self.shard_id,
                stream_arn: self.feed.stream_arn(),
            },
            self.settings.mapping(),
        )
        .run_until_drained(self.settings.empty_polls, Duration::from_millis(50))
        .await
        .unwrap_or_else(|error| panic!("the stream mapping: {error}"))
    }
}

/// The stream's records as Lambda delivers them.
struct LambdaEvents<'a> {
    feed: &'a DynamoStreamFeed,
}

impl RecordSource for LambdaEvents<'_> {
    type Record = EventRecord;

    async fn read(&self, max: usize) -> Result<Vec<EventRecord>, AdapterError> {
        let records = self.feed.poll_records(max).await?;
        Ok(records
            .iter()
            .map(|record| event_record(record, self.feed.stream_arn()))
            // Lambda's filter in the template: INSERT and MODIFY only.
            .filter(|record| record.event_name != "REMOVE")
            .collect())
    }
}

/// A [`StreamFunction`] fed Lambda's event, answering with a partial batch response.
struct EventFunction<'f, F>(&'f F);

impl<F: StreamFunction> MappedFunction<EventRecord> for EventFunction<'_, F> {
    async fn invoke(
        &self,
        delivery: referral_local::mapping::Delivery<'_, EventRecord>,
    ) -> Response {
        let records = delivery.records;
        let mut event = Event::default();
        event.records = records.to_vec();
        let invoked = self
            .0
            .invoke(Delivery {
                number: delivery.number,
                attempt: delivery.attempt,
                event: &event,
            })
            .await;
        match invoked {
            Invoked::Crashed => Response::Crashed,
            Invoked::Responded { response, counters } => {
                // An identifier that names no record of the batch fails the whole batch.
                let failed_from = response
                    .batch_item_failures
                    .iter()
                    .map(|failure| {
                        records
                            .iter()
                            .position(|record| {
                                record.change.sequence_number.is_some()
                                    && record.change.sequence_number == failure.item_identifier
                            })
                            .unwrap_or(0)
                    })
                    .min();
                Response::Handled {
                    failed_from,
                    counters,
                }
            }
        }
    }
}

/// The on-failure destination: an SQS queue sent what Lambda sends it, where the piece was.
struct BatchInfoQueue<'a> {
    queue: &'a SqsQueue,
    shard_id: &'a str,
    stream_arn: &'a str,
}

impl FailureDestination<EventRecord> for BatchInfoQueue<'_> {
    async fn send(&self, records: &[EventRecord], attempts: u32) -> Result<(), AdapterError> {
        let sequence = |record: Option<&EventRecord>| {
            record
                .and_then(|record| record.change.sequence_number.clone())
                .unwrap_or_default()
        };
        let body = json!({
            "requestContext": {"condition": "RetryAttemptsExhausted",
                               "approximateInvokeCount": attempts},
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST"},
            "version": "1.0",
            "timestamp": chrono::Utc::now().to_rfc3339(),
            "DDBStreamBatchInfo": {
                "shardId": self.shard_id,
                "startSequenceNumber": sequence(records.first()),
                "endSequenceNumber": sequence(records.last()),
                "batchSize": records.len(),
                "streamArn": self.stream_arn,
            }
        });
        self.queue
            .send(vec![OutgoingMessage {
                body: body.to_string(),
                attributes: Default::default(),
            }])
            .await
    }
}
