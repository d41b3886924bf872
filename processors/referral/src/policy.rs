//! The message policy's flags (`referral run`, `local serve`, `messages preview`), the same
//! settings as the orchestrator Lambda's `MESSAGE_*` / `BEDROCK_DAILY_CALL_BUDGET`
//! variables, read by the same parsers; and `referral messages preview`, whose work is in
//! `referral_maintenance::preview`.

use std::process::ExitCode;
use std::time::Duration;

use aws_config::SdkConfig;
use referral_domain::orchestrator::MessagePolicy;
use referral_domain::orchestrator::policy::{parse_cooldown, parse_score};
use referral_domain::ports::MessageRetention;
pub use referral_maintenance::preview::PreviewError;
use referral_maintenance::preview::PreviewOptions;

use crate::names::TableNames;

/// Who is asked for a referral, how often, and at what model cost. Unset: every change gets
/// a message from the generator.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PolicyArgs {
    /// No message within this long (of the events' `occurred_at`) after the customer's last
    /// one: `7d`, `12h`, `90m`.
    #[arg(long, value_parser = parse_cooldown)]
    pub cooldown: Option<Duration>,
    /// No message while the customer's average satisfaction is below this (0-5).
    #[arg(long, value_parser = parse_score, value_name = "SCORE")]
    pub min_satisfaction: Option<u32>,
    /// No message when the triggering event's own score is at or below this (0-5).
    #[arg(long, value_parser = parse_score, value_name = "SCORE")]
    pub min_trigger_score: Option<u32>,
    /// At most this many model calls per UTC day; past it the template writes the message,
    /// which records `budget` (local runs count the template as the model).
    #[arg(long, value_name = "N")]
    pub daily_model_budget: Option<u64>,
    #[command(flatten)]
    pub retention: RetentionArgs,
}

/// How long recorded messages and suppressions are kept, for every command that records them.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct RetentionArgs {
    /// Days messages and suppressions are kept after they are recorded; 0 keeps them (the
    /// orchestrator's `MESSAGE_RETENTION_DAYS`, the template's `MessageRetentionDays`).
    #[arg(
        long = "message-retention-days",
        env = "MESSAGE_RETENTION_DAYS",
        value_parser = MessageRetention::parse_days,
        default_value = "365",
        value_name = "DAYS"
    )]
    pub message_retention: MessageRetention,
}

impl PolicyArgs {
    pub fn policy(&self) -> MessagePolicy {
        MessagePolicy {
            cooldown: self.cooldown,
            min_satisfaction_avg: self.min_satisfaction,
            min_trigger_score: self.min_trigger_score,
            daily_model_budget: self.daily_model_budget,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct PreviewArgs {
    email: String,
    #[command(flatten)]
    tables: TableNames,
    #[command(flatten)]
    policy: PolicyArgs,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
}

impl PreviewArgs {
    fn options(&self) -> PreviewOptions {
        PreviewOptions {
            email: self.email.clone(),
            features_table: self.tables.features_table.clone(),
            messages_table: self.tables.messages_table.clone(),
            policy: self.policy.policy(),
            json: self.json,
        }
    }
}

/// Prints the prompt the customer's current features would produce and the policy's
/// decision on them, from reads only: the model is not called and nothing is written.
pub async fn preview(args: &PreviewArgs, sdk: &SdkConfig) -> Result<ExitCode, PreviewError> {
    referral_maintenance::preview::preview(&args.options(), sdk).await
}
