//! `referral messages preview`: the prompt a customer's current features would produce and
//! the message policy's decision on them.

use std::process::ExitCode;

use aws_config::SdkConfig;
use chrono::Utc;
use referral_aws::dynamo::{DynamoFeatureStore, DynamoMessageStore};
use referral_domain::event::{EventError, normalise_email};
use referral_domain::orchestrator::{
    MessagePolicy, ModelCall, Verdict, message_id_for, policy::BUDGET_REASON,
};
use referral_domain::ports::{AdapterError, Decision, FeatureStore, MessageSlot, MessageStore};
use referral_domain::prompt::build_prompt;
use referral_domain::redact::mask_email;
use serde::Serialize;

/// What `referral messages preview` was asked.
#[derive(Debug, Clone)]
pub struct PreviewOptions {
    pub email: String,
    pub features_table: String,
    pub messages_table: String,
    pub policy: MessagePolicy,
    /// One JSON object instead of text.
    pub json: bool,
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
pub async fn preview(args: &PreviewOptions, sdk: &SdkConfig) -> Result<ExitCode, PreviewError> {
    let email = normalise_email(&args.email)?;
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let features = DynamoFeatureStore::new(dynamodb.clone(), &args.features_table);
    let messages = DynamoMessageStore::new(dynamodb, &args.messages_table);
    let Some(features) = features.load(&email).await? else {
        eprintln!("no features for that customer in {}", args.features_table);
        return Ok(ExitCode::FAILURE);
    };
    let policy = args.policy;
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
