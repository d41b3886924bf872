//! What `local serve` answers on `GET`: a customer's features and messages, and the
//! dead letters, read through the same ports the pipeline writes through, so the embedded
//! run and the AWS-API run answer alike.

use std::future::Future;
use std::sync::Arc;

use referral_domain::ports::{AdapterError, FeatureStore, MessageStore, QueueMessage};
use referral_domain::prompt::{PROMPT_VERSION, build_prompt};
use referral_domain::redact::short_hash;
use referral_local::embedded::EmbeddedQueue;
use serde_json::{Value, json};

use referral_enricher::dead_letter::ERROR_KIND;

use crate::dlq::redact::{body_value, mask_json, show};
use crate::dlq::{self, DlqError};

/// Dead letters shown at most: a local look, not an export (`referral dlq export` is).
pub const DEAD_LETTERS_SHOWN: usize = 100;
/// Seconds a looked-at SQS dead letter stays hidden at most if the process dies mid-look.
const LOOK_LEASE_SECONDS: u32 = 30;

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error(transparent)]
    Store(#[from] AdapterError),
    #[error(transparent)]
    DeadLetters(#[from] DlqError),
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error(
        "the page replays dead letters of the embedded pipeline only; use `referral dlq replay`"
    )]
    ReplayElsewhere,
}

/// A dead-letter queue looked at without consuming it.
pub trait DeadLetters: Send + Sync {
    /// Whether the page may replay these letters (see [`DeadLetters::remove`]).
    const REPLAYS: bool;
    fn look(&self) -> impl Future<Output = Result<Vec<QueueMessage>, LookupError>> + Send;
    /// Removes one dead letter once its replay was sent; false: it was gone already.
    fn remove(&self, message_id: &str) -> impl Future<Output = Result<bool, LookupError>> + Send;
}

impl DeadLetters for Arc<EmbeddedQueue> {
    const REPLAYS: bool = true;

    async fn look(&self) -> Result<Vec<QueueMessage>, LookupError> {
        let mut messages = self.peek_all();
        messages.truncate(DEAD_LETTERS_SHOWN);
        Ok(messages)
    }

    async fn remove(&self, message_id: &str) -> Result<bool, LookupError> {
        Ok(self.take(message_id).is_some())
    }
}

impl DeadLetters for dlq::Queue {
    /// An SQS dead letter is replayed by `referral dlq replay`, which paces, filters and
    /// reports; one look's receipt is not enough to delete it safely from a page.
    const REPLAYS: bool = false;

    async fn look(&self) -> Result<Vec<QueueMessage>, LookupError> {
        let seen = dlq::look(self, DEAD_LETTERS_SHOWN as u64, LOOK_LEASE_SECONDS).await?;
        Ok(seen
            .into_iter()
            .map(|message| QueueMessage {
                attributes: message.strings(),
                message_id: message.message_id,
                receipt: message.receipt,
                body: message.body,
                receive_count: message.receive_count,
            })
            .collect())
    }

    async fn remove(&self, _message_id: &str) -> Result<bool, LookupError> {
        Err(LookupError::ReplayElsewhere)
    }
}

/// The stores of a running pipeline, read for `GET` requests.
#[derive(Debug)]
pub struct Lookups<S, M, D> {
    pub features: S,
    pub messages: M,
    pub dead_letters: D,
}

impl<S: FeatureStore, M: MessageStore, D: DeadLetters> Lookups<S, M, D> {
    /// One customer's features as `referral features get` prints them; `None`: unknown.
    pub async fn features(&self, email: &str) -> Result<Option<Value>, LookupError> {
        match self.features.load(email).await? {
            Some(features) => Ok(Some(serde_json::to_value(features.view())?)),
            None => Ok(None),
        }
    }

    /// One customer's referral messages, oldest first, as `referral messages list` prints
    /// them (empty for an unknown customer).
    pub async fn messages(&self, email: &str) -> Result<Value, LookupError> {
        Ok(serde_json::to_value(self.messages.list(email).await?)?)
    }

    /// Each customer's features and messages, e-mail addresses masked as in the dead
    /// letters; a customer whose features are gone (forgotten) is left out. A message's
    /// prompt is not stored: it is rebuilt from the current features, and shown only when
    /// its version and hash say it is the one the message was written from.
    pub async fn customers(&self, emails: &[String]) -> Result<Value, LookupError> {
        let mut customers = Vec::new();
        for email in emails {
            let Some(features) = self.features.load(email).await? else {
                continue;
            };
            let prompt = build_prompt(Some(&features)).user;
            let prompt_hash = short_hash(prompt.as_bytes());
            let mut messages = Vec::new();
            for message in self.messages.list(email).await? {
                let rebuilt =
                    message.prompt_version == PROMPT_VERSION && message.prompt_hash == prompt_hash;
                let mut shown = serde_json::to_value(&message)?;
                shown["prompt"] = if rebuilt {
                    Value::String(prompt.clone())
                } else {
                    Value::Null
                };
                messages.push(shown);
            }
            let mut customer = json!({
                "customer": email,
                "features": serde_json::to_value(features.view())?,
                "messages": messages,
            });
            mask_json(&mut customer);
            customers.push(customer);
        }
        Ok(Value::Array(customers))
    }

    /// The dead letters, e-mail addresses masked as `referral dlq peek` masks them.
    pub async fn dead_letters(&self) -> Result<Value, LookupError> {
        let letters: Vec<Value> = self
            .dead_letters
            .look()
            .await?
            .iter()
            .map(dead_letter_json)
            .collect();
        Ok(Value::Array(letters))
    }
}

fn dead_letter_json(message: &QueueMessage) -> Value {
    let attributes: serde_json::Map<String, Value> = message
        .attributes
        .iter()
        .map(|(name, value)| (name.clone(), Value::String(show(value, false))))
        .collect();
    json!({
        "message_id": message.message_id,
        "receive_count": message.receive_count,
        "error_kind": message.attributes.get(ERROR_KIND),
        "attributes": attributes,
        "body": body_value(&message.body, false),
    })
}
