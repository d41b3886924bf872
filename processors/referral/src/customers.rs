//! `referral customers forget`: the command line of `referral_maintenance::forget`, which
//! erases customers everywhere the pipeline keeps them.

use std::path::PathBuf;
use std::process::ExitCode;

use aws_config::SdkConfig;
use referral_domain::ports::ERASURE_SETTLE;
pub use referral_maintenance::forget::ForgetError;
use referral_maintenance::forget::{ForgetOptions, ForgetResources, forget_all};

use crate::names::ResourceNames;

#[derive(Debug, clap::Args)]
pub struct CustomersArgs {
    #[command(subcommand)]
    command: CustomersCommand,
}

#[derive(Debug, clap::Subcommand)]
enum CustomersCommand {
    /// Erase customers: their features, messages, suppressions, claims, message slot,
    /// archive, and the queued and dead-lettered webhooks that carry their address; leaves
    /// an erasure marker (a keyed hash, the last version, the time). Idempotent.
    /// Quarantined stream records that name the customer go too.
    Forget(ForgetArgs),
}

#[derive(Debug, clap::Args)]
pub struct ForgetArgs {
    /// The addresses to erase.
    emails: Vec<String>,
    /// A file of addresses, one a line (blank lines and `#` comments skipped).
    #[arg(long)]
    from_file: Option<PathBuf>,
    /// Say what would be removed; remove nothing and leave no marker.
    #[arg(long)]
    dry_run: bool,
    /// One JSON object per customer instead of text.
    #[arg(long)]
    json: bool,
    /// Seconds a queued webhook stays hidden while the queues are searched.
    #[arg(long, default_value_t = 60)]
    lease_seconds: u32,
    /// Seconds between recording the erasure markers and deleting the data. Below the
    /// default, an enricher that read the erasure filter just before may bring a customer
    /// back from a redelivered event; 0 only where no enricher runs.
    #[arg(long, default_value_t = ERASURE_SETTLE.as_secs())]
    settle_seconds: u64,
    #[command(flatten)]
    resources: ResourceNames,
}

impl ForgetArgs {
    fn options(&self) -> ForgetOptions {
        ForgetOptions {
            emails: self.emails.clone(),
            from_file: self.from_file.clone(),
            dry_run: self.dry_run,
            json: self.json,
            lease_seconds: self.lease_seconds,
            settle_seconds: self.settle_seconds,
            resources: ForgetResources {
                features_table: self.resources.tables.features_table.clone(),
                archive_table: self.resources.tables.archive_table.clone(),
                messages_table: self.resources.tables.messages_table.clone(),
                queue: self.resources.queue.clone(),
                dlq: self.resources.dlq.clone(),
                stream_failures: self.resources.stream_failures.clone(),
            },
        }
    }
}

pub async fn run(args: &CustomersArgs, sdk: &SdkConfig) -> Result<ExitCode, ForgetError> {
    let CustomersCommand::Forget(args) = &args.command;
    forget_all(&args.options(), sdk).await
}
