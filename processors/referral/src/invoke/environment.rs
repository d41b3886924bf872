//! The function's variables filled for a local run: literals as the template writes them,
//! parameters from their defaults, the resources the template creates from their local
//! equivalents (the flags of the other `referral` commands; the webhook secrets' Secrets
//! Manager secret becomes the development variable `WEBHOOK_SECRETS`, which holds them in
//! clear), and the AWS endpoint with
//! credentials that keep the SDK on loopback. Whatever cannot be filled is an error that
//! names the variable and the flag to use: a function started with an empty variable
//! fails in ways that do not point back here.

use std::collections::BTreeMap;

use referral_aws::config::is_loopback;
use referral_domain::redact::CUSTOMER_REF_KEY_VAR;
use referral_ingest::config::SECRETS_VAR;

use referral_lambda_emulator::ids::ACCOUNT;
use referral_lambda_emulator::template::{Expression, FunctionTemplate};

/// The local names of what the template creates, and where the AWS APIs are.
#[derive(Debug, Clone)]
pub struct Local {
    pub endpoint_url: Option<String>,
    pub features_table: String,
    pub archive_table: String,
    pub messages_table: String,
    /// Name or URL.
    pub queue: String,
    /// Name or URL.
    pub dlq: String,
    /// Name or URL.
    pub stream_failures: String,
    pub webhook_secrets: String,
}

/// A variable the template sets that this run cannot fill.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {reason}; pass {remedy}")]
pub struct UnfillableError {
    pub variable: String,
    pub reason: String,
    pub remedy: String,
}

/// The resources of the template a local run has an equivalent of, by logical id. Named
/// here rather than guessed from the template: a resource that gains a variable without
/// an entry is reported, not filled with something plausible.
enum LocalResource {
    FeaturesTable,
    ArchiveTable,
    MessagesTable,
    Queue,
    DeadLetterQueue,
    StreamFailureQueue,
    WebhookSecrets,
    CustomerRefKey,
}

fn local_resource(logical_id: &str) -> Option<LocalResource> {
    match logical_id {
        "CustomerFeaturesTable" => Some(LocalResource::FeaturesTable),
        "CustomerFeaturesArchiveTable" => Some(LocalResource::ArchiveTable),
        "ReferralMessagesTable" => Some(LocalResource::MessagesTable),
        "WebhookQueue" => Some(LocalResource::Queue),
        "WebhookDeadLetterQueue" => Some(LocalResource::DeadLetterQueue),
        "StreamFailureQueue" => Some(LocalResource::StreamFailureQueue),
        "WebhookSecret" => Some(LocalResource::WebhookSecrets),
        "CustomerRefKeySecret" => Some(LocalResource::CustomerRefKey),
        _ => None,
    }
}

/// The function's environment: the template's variables filled, Lambda's logging settings,
/// the endpoint and credentials, then `overrides` over all of it. `parent` looks up this
/// process's environment (to leave credentials that are set alone).
pub fn fill(
    function: &FunctionTemplate,
    local: &Local,
    overrides: &[(String, String)],
    parent: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, UnfillableError> {
    let overridden = |name: &str| overrides.iter().any(|(n, _)| n == name);
    let mut env = BTreeMap::new();
    for (name, expression) in &function.variables {
        if overridden(name) {
            continue;
        }
        // The deployed function reads its secrets from Secrets Manager; a local run gives
        // them in the variable the function reads for development instead of creating a
        // secret in the emulator. `--env` with the secret's variable reaches the real path.
        if let Expression::Ref(target) = expression {
            match local_resource(target) {
                Some(LocalResource::WebhookSecrets) => {
                    env.insert(SECRETS_VAR.to_owned(), local.webhook_secrets.clone());
                    continue;
                }
                // The key's development variable, when this process has one; else the
                // function hashes without a key, as every other local command does.
                Some(LocalResource::CustomerRefKey) => {
                    if let Some(key) = parent(CUSTOMER_REF_KEY_VAR) {
                        env.insert(CUSTOMER_REF_KEY_VAR.to_owned(), key);
                    }
                    continue;
                }
                _ => {}
            }
        }
        env.insert(name.clone(), value(function, local, name, expression)?);
    }
    if let Some(level) = &function.log_level {
        env.insert("AWS_LAMBDA_LOG_LEVEL".to_owned(), level.clone());
    }
    if let Some(format) = &function.log_format {
        env.insert("AWS_LAMBDA_LOG_FORMAT".to_owned(), format.clone());
    }
    if let Some(url) = &local.endpoint_url {
        env.insert("AWS_ENDPOINT_URL".to_owned(), url.clone());
        // An emulator takes any credentials; without some the SDK's default chain would
        // ask the instance-metadata address, which is not on loopback.
        if is_loopback(url) && parent("AWS_ACCESS_KEY_ID").is_none() {
            env.insert("AWS_ACCESS_KEY_ID".to_owned(), "test".to_owned());
            env.insert("AWS_SECRET_ACCESS_KEY".to_owned(), "test".to_owned());
        }
        if is_loopback(url)
            && parent("AWS_REGION")
                .or_else(|| parent("AWS_DEFAULT_REGION"))
                .is_none()
        {
            env.insert("AWS_REGION".to_owned(), "us-east-1".to_owned());
        }
    }
    env.insert("AWS_EC2_METADATA_DISABLED".to_owned(), "true".to_owned());
    env.extend(overrides.iter().cloned());
    Ok(env)
}

fn value(
    function: &FunctionTemplate,
    local: &Local,
    name: &str,
    expression: &Expression,
) -> Result<String, UnfillableError> {
    let unfillable = |reason: String, remedy: String| UnfillableError {
        variable: name.to_owned(),
        reason,
        remedy,
    };
    let env_flag = format!("--env {name}=VALUE");
    let target = match expression {
        Expression::Literal(text) => return Ok(text.clone()),
        Expression::Other(yaml) => {
            return Err(unfillable(
                format!("the template sets it to `{yaml}`, which invoke does not evaluate"),
                env_flag,
            ));
        }
        Expression::Ref(target) => target,
    };
    if let Some(parameter) = function.parameters.get(target) {
        return parameter.default.clone().ok_or_else(|| {
            unfillable(
                format!("the template sets it to the parameter {target}, which has no default"),
                env_flag.clone(),
            )
        });
    }
    let queue = |queue: &str, flag: &str| {
        queue_url(queue, local.endpoint_url.as_deref()).ok_or_else(|| {
            unfillable(
                format!(
                    "the template sets it to the URL of {target}, which is only known here for \
                     an emulator (ENDPOINT/{ACCOUNT}/NAME)"
                ),
                format!("--endpoint-url URL, {flag} URL or {env_flag}"),
            )
        })
    };
    match local_resource(target) {
        Some(LocalResource::FeaturesTable) => Ok(local.features_table.clone()),
        Some(LocalResource::ArchiveTable) => Ok(local.archive_table.clone()),
        Some(LocalResource::MessagesTable) => Ok(local.messages_table.clone()),
        Some(LocalResource::Queue) => queue(&local.queue, "--queue"),
        Some(LocalResource::DeadLetterQueue) => queue(&local.dlq, "--dlq"),
        Some(LocalResource::StreamFailureQueue) => {
            queue(&local.stream_failures, "--stream-failures")
        }
        // `fill` gives these under their development variables; named here for a complete
        // match (an empty ARN is read as unset).
        Some(LocalResource::WebhookSecrets) => Ok(local.webhook_secrets.clone()),
        Some(LocalResource::CustomerRefKey) => Ok(String::new()),
        None => {
            let kind = function
                .resources
                .get(target)
                .map_or("not in the template".to_owned(), |kind| format!("a {kind}"));
            Err(unfillable(
                format!(
                    "the template sets it to !Ref {target} ({kind}), which invoke has no local \
                     equivalent of"
                ),
                env_flag,
            ))
        }
    }
}

/// A queue's URL: given as one, or built the way moto builds them. An account's URLs hold
/// its id, which a name alone does not tell.
fn queue_url(queue: &str, endpoint_url: Option<&str>) -> Option<String> {
    if queue.starts_with("https://") || queue.starts_with("http://") {
        return Some(queue.to_owned());
    }
    let endpoint = endpoint_url.filter(|url| is_loopback(url))?;
    let endpoint = endpoint.trim_end_matches('/');
    Some(format!("{endpoint}/{ACCOUNT}/{queue}"))
}

#[cfg(test)]
#[path = "environment_tests.rs"]
mod tests;
