//! Message generation: a model, the template, or the one falling back to the other.

use std::future::Future;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::BoxError;
use crate::features::CustomerFeatures;
use crate::prompt::Prompt;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    pub input_tokens: u32,
    pub output_tokens: u32,
}

#[derive(Debug, Clone, Copy)]
pub struct GenerationRequest<'a> {
    pub features: Option<&'a CustomerFeatures>,
    pub prompt: &'a Prompt,
    /// What a generator with a fallback does when the model is throttling.
    pub on_throttle: OnThrottle,
}

/// What to do when the model refuses a call for throttling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnThrottle {
    /// The fallback writes the message at once.
    #[default]
    FallBack,
    /// Fail with [`GenerationError::Throttled`], so the caller can try again later while
    /// the model recovers.
    HandBack,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub recommended_service: String,
    pub body: String,
    /// `template`, `bedrock`, ...: which generator wrote the message.
    pub generator: &'static str,
    pub model_id: Option<String>,
    pub usage: Option<TokenUsage>,
    /// Why a fallback wrote the message instead of the generator meant to: the primary's
    /// error kind ([`GenerationError::kind`]); `None` when the intended generator wrote it.
    pub fallback_reason: Option<&'static str>,
}

#[derive(Debug, Error)]
pub enum GenerationError {
    #[error("the model is throttling requests")]
    Throttled,
    #[error("the model did not answer in time")]
    Timeout,
    #[error("access to the model was denied")]
    AccessDenied,
    #[error("the model refused the request: {0}")]
    Rejected(String),
    #[error("the model's answer is unusable")]
    Unusable(#[source] crate::answer::AnswerError),
    #[error("the model could not be reached: {0}")]
    Unavailable(#[source] BoxError),
}

impl GenerationError {
    pub fn kind(&self) -> &'static str {
        match self {
            GenerationError::Throttled => "throttled",
            GenerationError::Timeout => "timeout",
            GenerationError::AccessDenied => "access_denied",
            GenerationError::Rejected(_) => "rejected",
            GenerationError::Unusable(_) => "unusable_answer",
            GenerationError::Unavailable(_) => "unavailable",
        }
    }
}

pub trait MessageGenerator: Send + Sync {
    fn generate(
        &self,
        request: GenerationRequest<'_>,
    ) -> impl Future<Output = Result<Generated, GenerationError>> + Send;
}
