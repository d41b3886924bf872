//! The pipeline through real AWS APIs (an account, or a local emulator): the resources,
//! and the Lambda event-source mappings played by this process. SQS batches go to the
//! enricher Lambda's own handler; the table's stream is polled like the stream mapping
//! does and its records go to the orchestrator.

use aws_config::SdkConfig;
use chrono::Utc;
use referral_aws::dynamo::{DynamoEventArchive, DynamoFeatureStore, DynamoMessageStore};
use referral_aws::sqs::SqsQueue;
use referral_enricher::EnricherHandler;

use referral_aws_local::provision::{
    QueuePair, QueueSpec, TableNames, ensure_queue, ensure_queue_pair, ensure_tables,
};
use referral_aws_local::sqs_event;
use referral_domain::enricher::{BatchReport, Enricher, EnricherConfig};
use referral_domain::ports::{
    AdapterError, ErasureLog, EventArchive, FeatureStore, MessageRetention, QueueMessage, WorkQueue,
};
use referral_local::pipeline::BatchHandler;

pub use crate::names::{ResourceNames, STREAM_FAILURE_QUEUE};

/// What `setup` made sure exists.
#[derive(Debug, Clone)]
pub struct Resources {
    pub tables: TableNames,
    pub queues: QueuePair,
    pub stream_arn: String,
    pub stream_failure_url: String,
}

/// Creates the tables (stream on), the queue and its DLQ (redrive policy), and the stream's
/// failure destination if absent.
pub async fn setup(
    sdk: &SdkConfig,
    names: &ResourceNames,
    max_receive_count: u32,
) -> Result<Resources, AdapterError> {
    let tables = TableNames {
        features: names.tables.features_table.clone(),
        archive: names.tables.archive_table.clone(),
        messages: names.tables.messages_table.clone(),
    };
    let stream_arn = ensure_tables(&aws_sdk_dynamodb::Client::new(sdk), &tables).await?;
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let stream_failure_url = ensure_queue(&sqs, &names.stream_failures).await?;
    let queues = ensure_queue_pair(
        &sqs,
        &QueueSpec {
            name: names.queue.clone(),
            dlq_name: names.dlq.clone(),
            max_receive_count,
            // Six times the enricher's timeout, as the event-source mapping requires.
            visibility_timeout_seconds: 180,
        },
    )
    .await?;
    Ok(Resources {
        tables,
        queues,
        stream_arn,
        stream_failure_url,
    })
}

/// The enricher Lambda as its SQS event-source mapping invokes it: its handler, on
/// DynamoDB and SQS or on any other adapters.
#[derive(Debug)]
pub struct LambdaEnricher<S = DynamoFeatureStore, A = DynamoEventArchive, D = SqsQueue> {
    handler: EnricherHandler<S, A, D>,
    queue_arn: String,
}

impl LambdaEnricher {
    pub fn new(sdk: &SdkConfig, resources: &Resources, config: EnricherConfig) -> Self {
        let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
        let store = DynamoFeatureStore::new(dynamodb.clone(), resources.tables.features.clone());
        let archive = DynamoEventArchive::new(dynamodb, resources.tables.archive.clone());
        let dead_letters = SqsQueue::new(
            aws_sdk_sqs::Client::new(sdk),
            resources.queues.dlq_url.clone(),
        );
        LambdaEnricher {
            handler: EnricherHandler::new(Enricher::new(store, archive, config), dead_letters),
            queue_arn: resources.queues.arn.clone(),
        }
    }
}

impl<S: FeatureStore, A: EventArchive + ErasureLog, D: WorkQueue> LambdaEnricher<S, A, D> {
    /// `handler` fed by the queue of `queue_arn`.
    pub fn with_handler(handler: EnricherHandler<S, A, D>, queue_arn: String) -> Self {
        LambdaEnricher { handler, queue_arn }
    }

    pub fn store(&self) -> &S {
        self.handler.enricher().store()
    }
}

impl<S: FeatureStore, A: EventArchive + ErasureLog, D: WorkQueue> BatchHandler
    for LambdaEnricher<S, A, D>
{
    async fn handle_batch(&self, batch: &[QueueMessage]) -> BatchReport {
        // A refused message the handler could not dead-letter is reported failed: SQS keeps
        // it, and so does the run.
        self.handler
            .handle(&sqs_event(batch, &self.queue_arn), Utc::now())
            .await
            .report
    }
}

/// The messages table of a run.
pub fn message_store(
    sdk: &SdkConfig,
    resources: &Resources,
    retention: MessageRetention,
) -> DynamoMessageStore {
    DynamoMessageStore::new(
        aws_sdk_dynamodb::Client::new(sdk),
        resources.tables.messages.clone(),
    )
    .with_retention(retention)
}
