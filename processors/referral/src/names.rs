//! The names of the stack's tables and queues, as every command takes them: a flag and an
//! environment variable each (the variables the template gives the functions, so a shell
//! set up for one function serves every command), defaulting to what `referral local
//! setup` creates.

/// The three tables. A command that reads or writes only some of them still takes all
/// three, so that one set of flags and variables fits every command.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct TableNames {
    /// The features table (the template's CustomerFeaturesTable).
    #[arg(long, env = "FEATURES_TABLE", default_value = "CustomerFeatures")]
    pub features_table: String,
    /// The features table's event archive and erasure log (CustomerFeaturesArchiveTable).
    #[arg(long, env = "ARCHIVE_TABLE", default_value = "CustomerFeaturesArchive")]
    pub archive_table: String,
    /// The messages table (the template's ReferralMessagesTable).
    #[arg(long, env = "MESSAGES_TABLE", default_value = "ReferralMessages")]
    pub messages_table: String,
}

/// The tables and the queues: what the pipeline's commands name.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ResourceNames {
    #[command(flatten)]
    pub tables: TableNames,
    /// The webhook queue, by name (or URL where a command says so).
    #[arg(long, env = "WEBHOOK_QUEUE", default_value = "referral-webhooks")]
    pub queue: String,
    /// The webhook queue's dead-letter queue.
    #[arg(long, env = "WEBHOOK_DLQ", default_value = "referral-webhooks-dlq")]
    pub dlq: String,
    /// The stream mapping's on-failure destination (the template's StreamFailureQueue),
    /// where the orchestrator quarantines undecodable records.
    #[arg(long, env = "STREAM_FAILURE_QUEUE", default_value = STREAM_FAILURE_QUEUE)]
    pub stream_failures: String,
}

/// The local name of the template's StreamFailureQueue.
pub const STREAM_FAILURE_QUEUE: &str = "referral-stream-failures";

/// How a queue `referral` creates redrives to its dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
pub struct RedriveArgs {
    /// Deliveries before SQS moves a message to the dead-letter queue.
    #[arg(long, default_value_t = 5)]
    pub max_receive_count: u32,
}
