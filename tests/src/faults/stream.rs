//! Lambda's DynamoDB-stream event-source mapping, played by the test over the table's real
//! stream (moto's, read through the DynamoDB Streams API): batches of records in shard
//! order; a partial batch response checkpoints before the reported record and Lambda
//! delivers again from it (bisecting there); a function error (a crash) delivers the batch
//! again split in two halves; after `max_retries` further deliveries of a piece the mapping
//! gives up on it and sends its on-failure destination the record Lambda sends (where the
//! batch was, `DDBStreamBatchInfo`), then moves on. Nothing behind a piece is delivered
//! before the piece is settled, as in a shard.

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use referral_aws::sqs::SqsQueue;
use referral_aws_local::stream_reader::{DynamoStreamFeed, event_record};
use referral_domain::orchestrator::StreamCounters;
use referral_domain::ports::{OutgoingMessage, WorkQueue};
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
#[derive(Debug, Default)]
pub struct StreamReport {
    pub invocations: u64,
    pub records_read: u64,
    pub partial_failures: u64,
    pub crashes: u64,
    pub bisections: u64,
    /// Records in the pieces given up on (sent to the on-failure destination).
    pub given_up: Vec<EventRecord>,
    pub counters: StreamCounters,
}

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
        let mut report = StreamReport::default();
        let mut pieces: VecDeque<(Vec<EventRecord>, u32)> = VecDeque::new();
        let mut empty = 0;
        loop {
            let Some((records, attempt)) = pieces.pop_front() else {
                let read = self.read().await;
                if read.is_empty() {
                    empty += 1;
                    if empty >= self.settings.empty_polls {
                        return report;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                empty = 0;
                report.records_read += read.len() as u64;
                pieces.push_back((read, 0));
                continue;
            };
            if attempt > self.settings.max_retries {
                self.give_up(&records, attempt, &mut report).await;
                continue;
            }
            let mut event = Event::default();
            event.records = records.clone();
            report.invocations += 1;
            let delivery = Delivery {
                number: report.invocations,
                attempt,
                event: &event,
            };
            match function.invoke(delivery).await {
                Invoked::Crashed => {
                    report.crashes += 1;
                    if records.len() > 1 {
                        report.bisections += 1;
                        let (first, second) = records.split_at(records.len() / 2);
                        pieces.push_front((second.to_vec(), attempt + 1));
                        pieces.push_front((first.to_vec(), attempt + 1));
                    } else {
                        pieces.push_front((records, attempt + 1));
                    }
                }
                Invoked::Responded { response, counters } => {
                    report.counters.add(&counters);
                    let reported = &response.batch_item_failures;
                    // An identifier that names no record of the batch fails the whole batch.
                    let failed = reported
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
                    if let Some(position) = failed {
                        report.partial_failures += 1;
                        // Checkpointed before the failed record; delivered again from it.
                        pieces.push_front((records[position..].to_vec(), attempt + 1));
                    }
                }
            }
        }
    }

    async fn read(&self) -> Vec<EventRecord> {
        let records = self
            .feed
            .poll_records(self.settings.batch_size)
            .await
            .unwrap_or_else(|error| panic!("reading the stream: {error}"));
        records
            .iter()
            .map(|record| event_record(record, self.feed.stream_arn()))
            // Lambda's filter in the template: INSERT and MODIFY only.
            .filter(|record| record.event_name != "REMOVE")
            .collect()
    }

    /// Sends the on-failure destination what Lambda sends it: where the piece was.
    async fn give_up(&self, records: &[EventRecord], attempts: u32, report: &mut StreamReport) {
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
                "streamArn": self.feed.stream_arn(),
            }
        });
        self.failures
            .send(vec![OutgoingMessage {
                body: body.to_string(),
                attributes: Default::default(),
            }])
            .await
            .unwrap_or_else(|error| panic!("sending to the on-failure destination: {error}"));
        report.given_up.extend_from_slice(records);
    }
}
