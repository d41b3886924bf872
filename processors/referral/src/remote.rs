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

/// Names of the resources a local run uses, and their settings.
#[derive(Debug, Clone, clap::Args)]
pub struct ResourceArgs {
    /// The features table.
    #[arg(long, env = "FEATURES_TABLE", default_value = "CustomerFeatures")]
    pub features_table: String,
    /// The features table's event archive.
    #[arg(long, env = "ARCHIVE_TABLE", default_value = "CustomerFeaturesArchive")]
    pub archive_table: String,
    /// The messages table.
    #[arg(long, env = "MESSAGES_TABLE", default_value = "ReferralMessages")]
    pub messages_table: String,
    /// The webhook queue.
    #[arg(long, env = "WEBHOOK_QUEUE", default_value = "referral-webhooks")]
    pub queue: String,
    /// The webhook queue's dead-letter queue.
    #[arg(long, env = "WEBHOOK_DLQ", default_value = "referral-webhooks-dlq")]
    pub dlq: String,
    /// The stream mapping's on-failure destination (the template's StreamFailureQueue).
    #[arg(long, env = "STREAM_FAILURE_QUEUE", default_value = STREAM_FAILURE_QUEUE)]
    pub stream_failures: String,
    /// Deliveries before SQS moves a message to the dead-letter queue.
    #[arg(long, default_value_t = 5)]
    pub max_receive_count: u32,
}

/// The local name of the template's StreamFailureQueue.
pub const STREAM_FAILURE_QUEUE: &str = "referral-stream-failures";

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
pub async fn setup(sdk: &SdkConfig, args: &ResourceArgs) -> Result<Resources, AdapterError> {
    let tables = TableNames {
        features: args.features_table.clone(),
        archive: args.archive_table.clone(),
        messages: args.messages_table.clone(),
    };
    let stream_arn = ensure_tables(&aws_sdk_dynamodb::Client::new(sdk), &tables).await?;
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let stream_failure_url = ensure_queue(&sqs, &args.stream_failures).await?;
    let queues = ensure_queue_pair(
        &sqs,
        &QueueSpec {
            name: args.queue.clone(),
            dlq_name: args.dlq.clone(),
            max_receive_count: args.max_receive_count,
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
