//! `referral customers forget`: the addresses from the command line or a file, each erased by
//! the erasure core the eraser Lambda runs too (`referral_aws::erasure`), and its report.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::Client as Dynamo;
use referral_aws::dynamo::Tables;
use referral_aws::erasure::{Eraser, ErasureError};
use referral_aws::sqs::SqsQueue;
use referral_aws_local::provision::queue_url;
use referral_domain::event::normalise_email;

/// What `referral customers forget` was asked.
#[derive(Debug, Clone)]
pub struct ForgetOptions {
    /// The addresses to erase.
    pub emails: Vec<String>,
    /// A file of addresses, one a line (blank lines and `#` comments skipped).
    pub from_file: Option<PathBuf>,
    /// Say what would be removed; remove nothing and leave no marker.
    pub dry_run: bool,
    /// One JSON object per customer instead of text.
    pub json: bool,
    /// Seconds a queued webhook stays hidden while the queues are searched.
    pub lease_seconds: u32,
    /// Seconds between recording the markers and deleting (see `referral_aws::erasure`).
    pub settle_seconds: u64,
    pub resources: ForgetResources,
}

/// Where the pipeline keeps a customer.
#[derive(Debug, Clone)]
pub struct ForgetResources {
    pub features_table: String,
    pub archive_table: String,
    pub messages_table: String,
    /// The webhook queue and its dead-letter queue, by name or URL.
    pub queue: String,
    pub dlq: String,
    /// The stream mapping's failure destination: a quarantined record names its customer
    /// by address.
    pub stream_failures: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ForgetError {
    #[error("{path}:{line}: {problem}")]
    BadAddress {
        path: String,
        line: usize,
        problem: String,
    },
    #[error("argument {position}: {problem}")]
    BadArgument { position: usize, problem: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no address given: name them, or --from-file")]
    Nothing,
    #[error(transparent)]
    Erasure(#[from] ErasureError),
    #[error("cannot print the report: {0}")]
    Output(#[from] serde_json::Error),
}

pub async fn forget_all(args: &ForgetOptions, sdk: &SdkConfig) -> Result<ExitCode, ForgetError> {
    let emails = addresses(args)?;
    let resources = &args.resources;
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut queues = Vec::new();
    for name in [&resources.queue, &resources.dlq, &resources.stream_failures] {
        let url = queue_url(&sqs, name)
            .await
            .map_err(|source| ErasureError::Queue {
                queue: name.clone(),
                source,
            })?;
        queues.push(SqsQueue::new(sqs.clone(), url));
    }
    let tables = Tables {
        features: resources.features_table.clone(),
        archive: resources.archive_table.clone(),
        messages: resources.messages_table.clone(),
    };
    let eraser = Eraser::new(Dynamo::new(sdk), tables, queues, args.lease_seconds)
        .with_settle(Duration::from_secs(args.settle_seconds));
    if !args.dry_run && args.settle_seconds > 0 {
        eprintln!(
            "referral: markers first; the data goes in {} s, once no enricher can act on an \
             erasure filter read before them",
            args.settle_seconds
        );
    }
    let mut failure = None;
    for removed in eraser.erase(&emails, args.dry_run).await {
        let removed = match removed {
            Ok(removed) => removed,
            Err(error) => {
                failure.get_or_insert(error);
                continue;
            }
        };
        if args.json {
            println!("{}", serde_json::to_string(&removed)?);
        } else {
            let verb = if args.dry_run {
                "would remove"
            } else {
                "removed"
            };
            println!(
                "customer {}: {verb} features item {}, ReferralMessages rows {}, archive items \
                 {}, queued webhooks {:?}; marker after version {}",
                removed.customer_ref,
                removed.features_item,
                removed.messages_rows,
                removed.archive_items,
                removed.queued_webhooks,
                removed.marker_last_version,
            );
        }
    }
    if let Some(error) = failure {
        return Err(error.into());
    }
    Ok(ExitCode::SUCCESS)
}

fn addresses(args: &ForgetOptions) -> Result<Vec<String>, ForgetError> {
    let mut emails = Vec::new();
    for (index, raw) in args.emails.iter().enumerate() {
        emails.push(
            normalise_email(raw).map_err(|error| ForgetError::BadArgument {
                position: index + 1,
                problem: error.to_string(),
            })?,
        );
    }
    if let Some(path) = &args.from_file {
        let text = std::fs::read_to_string(path).map_err(|source| ForgetError::Read {
            path: path.display().to_string(),
            source,
        })?;
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            emails.push(
                normalise_email(line).map_err(|error| ForgetError::BadAddress {
                    path: path.display().to_string(),
                    line: index + 1,
                    problem: error.to_string(),
                })?,
            );
        }
    }
    emails.sort();
    emails.dedup();
    if emails.is_empty() {
        return Err(ForgetError::Nothing);
    }
    Ok(emails)
}
