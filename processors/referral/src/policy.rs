//! The message policy's flags (`referral run`, `local serve`, `messages preview`), the same
//! settings as the orchestrator Lambda's `MESSAGE_*` / `BEDROCK_DAILY_CALL_BUDGET`
//! variables, read by the same parsers; and `referral messages preview`.

use std::process::ExitCode;
use std::time::Duration;

use aws_config::SdkConfig;
use chrono::Utc;
use referral_aws::dynamo::{DynamoFeatureStore, DynamoMessageStore};
use referral_domain::event::{EventError, normalise_email};
use referral_domain::orchestrator::policy::{parse_cooldown, parse_score};
use referral_domain::orchestrator::{
    MessagePolicy, ModelCall, Verdict, message_id_for, policy::BUDGET_REASON,
};
use referral_domain::ports::{
    AdapterError, Decision, FeatureStore, MessageRetention, MessageSlot, MessageStore,
};
use referral_domain::prompt::build_prompt;
use referral_domain::redact::mask_email;
use serde::Serialize;

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
    #[arg(long, env = "FEATURES_TABLE", default_value = "CustomerFeatures")]
    features_table: String,
    #[arg(long, env = "MESSAGES_TABLE", default_value = "ReferralMessages")]
    messages_table: String,
    #[command(flatten)]
    policy: PolicyArgs,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// What `preview` found, as `--json` prints it.
#[derive(Debug, Serialize)]
struct Preview {
    #[serde(rename = "customerEmail")]
    customer_email: String,
    features_version: u64,
    message_id: String,
    trigger_event_id: Option<String>,
    /// `message` or `suppressed`.
    decision: &'static str,
    reason: Option<&'static str>,
    /// Who would write the message: `model` (the configured generator) or `template`.
    generator: Option<&'static str>,
    fallback_reason: Option<&'static str>,
    message_slot: Option<SlotView>,
    model_calls_today: Option<u64>,
    /// What is recorded for this change already (`message`, or `suppressed: <reason>`): a
    /// decided change is never decided again.
    recorded: Option<String>,
    system_prompt: &'static str,
    prompt: String,
}

#[derive(Debug, Serialize)]
struct SlotView {
    version: u64,
    #[serde(with = "referral_domain::features::rfc3339")]
    at: chrono::DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error(transparent)]
    Store(#[from] AdapterError),
    #[error("cannot encode the preview as JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Email(#[from] EventError),
}

/// Prints the prompt the customer's current features would produce and the policy's
/// decision on them, from reads only: the model is not called and nothing is written.
pub async fn preview(args: &PreviewArgs, sdk: &SdkConfig) -> Result<ExitCode, PreviewError> {
    let email = normalise_email(&args.email)?;
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let features = DynamoFeatureStore::new(dynamodb.clone(), &args.features_table);
    let messages = DynamoMessageStore::new(dynamodb, &args.messages_table);
    let Some(features) = features.load(&email).await? else {
        eprintln!("no features for that customer in {}", args.features_table);
        return Ok(ExitCode::FAILURE);
    };
    let policy = args.policy.policy();
    let slot = match policy.cooldown {
        Some(_) => messages.message_slot(&email).await?,
        None => None,
    };
    let calls_today = match policy.daily_model_budget {
        Some(_) => Some(messages.model_calls(Utc::now().date_naive()).await?),
        None => None,
    };
    let (verdict, model) = policy.preview(&features, slot, calls_today.unwrap_or(0));
    let message_id = message_id_for(&features);
    let recorded = messages
        .decisions(&email)
        .await?
        .into_iter()
        .find(|decision| decision.key().message_id == message_id)
        .map(|decision| match decision {
            Decision::Message(_) => "message".to_owned(),
            Decision::Suppressed(suppression) => format!("suppressed: {}", suppression.reason),
        });
    let prompt = build_prompt(Some(&features));
    let (decision, reason) = match verdict {
        Verdict::Message => ("message", None),
        Verdict::Suppressed(reason) => ("suppressed", Some(reason.as_str())),
    };
    let (generator, fallback_reason) = match (verdict, model) {
        (Verdict::Suppressed(_), _) => (None, None),
        (Verdict::Message, ModelCall::Allowed) => (Some("model"), None),
        (Verdict::Message, ModelCall::OverBudget) => (Some("template"), Some(BUDGET_REASON)),
    };
    let preview = Preview {
        customer_email: email,
        features_version: features.version,
        message_id,
        trigger_event_id: features.trigger_event_id.clone(),
        decision,
        reason,
        generator,
        fallback_reason,
        message_slot: slot.map(|MessageSlot { version, at }| SlotView { version, at }),
        model_calls_today: calls_today,
        recorded,
        system_prompt: prompt.system,
        prompt: prompt.user,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&preview)?);
    } else {
        print!("{}", text(&preview));
    }
    Ok(ExitCode::SUCCESS)
}

fn text(preview: &Preview) -> String {
    let mut out = format!(
        "customer   {}\nchange     {} (trigger {})\ndecision   {}",
        mask_email(&preview.customer_email),
        preview.message_id,
        preview.trigger_event_id.as_deref().unwrap_or("-"),
        preview.decision,
    );
    for (label, value) in [
        ("reason", preview.reason),
        ("generator", preview.generator),
        ("fallback", preview.fallback_reason),
    ] {
        if let Some(value) = value {
            out.push_str(&format!(", {label}: {value}"));
        }
    }
    if let Some(slot) = &preview.message_slot {
        out.push_str(&format!(
            "\nlast slot  v{} at {}",
            slot.version,
            referral_domain::features::rfc3339::format(&slot.at)
        ));
    }
    if let Some(calls) = preview.model_calls_today {
        out.push_str(&format!("\nmodel calls today  {calls}"));
    }
    out.push_str(&format!(
        "\nrecorded   {}\n\nprompt:\n{}\n",
        preview.recorded.as_deref().unwrap_or("nothing yet"),
        preview.prompt
    ));
    out
}
