//! A generator that never fails for the model's sake: whatever goes wrong with the primary
//! generator (the model), the fallback (the deterministic template) writes the message, says
//! why on the message (`fallback_reason`), and the failure is counted by kind so that a
//! silent switch to templates shows up in metrics. The one exception is the caller's choice:
//! a request that asks for it ([`OnThrottle::HandBack`]) gets the model's throttling back as
//! an error, to retry later, instead of a template.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::ports::{Generated, GenerationError, GenerationRequest, MessageGenerator, OnThrottle};
use crate::template::TemplateGenerator;

/// The primary generator, backed by the fallback when the primary fails.
#[derive(Debug, Default)]
pub struct FallbackGenerator<P, F> {
    primary: P,
    fallback: F,
    counters: Counters,
}

/// How often the primary answered and, when it did not, why the fallback was used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FallbackCounters {
    /// Messages the primary generator wrote.
    pub primary_ok: u64,
    /// Throttled calls handed back to the caller to retry later (no message, no fallback).
    pub handed_back_throttled: u64,
    pub fallback_throttled: u64,
    pub fallback_timeout: u64,
    pub fallback_access_denied: u64,
    pub fallback_rejected: u64,
    pub fallback_unusable: u64,
    pub fallback_unavailable: u64,
    /// Times the fallback failed as well (the only case in which generation fails); each is
    /// also counted under the primary's error kind above.
    pub fallback_failed: u64,
}

impl FallbackCounters {
    /// Adds `other` in: the counts of several invocations, as CloudWatch sums them.
    pub fn add(&mut self, other: &FallbackCounters) {
        self.primary_ok += other.primary_ok;
        self.handed_back_throttled += other.handed_back_throttled;
        self.fallback_throttled += other.fallback_throttled;
        self.fallback_timeout += other.fallback_timeout;
        self.fallback_access_denied += other.fallback_access_denied;
        self.fallback_rejected += other.fallback_rejected;
        self.fallback_unusable += other.fallback_unusable;
        self.fallback_unavailable += other.fallback_unavailable;
        self.fallback_failed += other.fallback_failed;
    }

    /// Messages the fallback was asked to write, whatever the primary's error was.
    pub fn fallbacks(&self) -> u64 {
        self.fallback_throttled
            + self.fallback_timeout
            + self.fallback_access_denied
            + self.fallback_rejected
            + self.fallback_unusable
            + self.fallback_unavailable
    }
}

// Counters are statistics, not synchronisation: `Relaxed` is enough.
#[derive(Debug, Default)]
struct Counters {
    primary_ok: AtomicU64,
    handed_back_throttled: AtomicU64,
    throttled: AtomicU64,
    timeout: AtomicU64,
    access_denied: AtomicU64,
    rejected: AtomicU64,
    unusable: AtomicU64,
    unavailable: AtomicU64,
    fallback_failed: AtomicU64,
}

impl Counters {
    fn for_error(&self, error: &GenerationError) -> &AtomicU64 {
        match error {
            GenerationError::Throttled => &self.throttled,
            GenerationError::Timeout => &self.timeout,
            GenerationError::AccessDenied => &self.access_denied,
            GenerationError::Rejected(_) => &self.rejected,
            GenerationError::Unusable(_) => &self.unusable,
            GenerationError::Unavailable(_) => &self.unavailable,
        }
    }

    fn snapshot(&self) -> FallbackCounters {
        self.read_with(|counter| counter.load(Ordering::Relaxed))
    }

    fn take(&self) -> FallbackCounters {
        self.read_with(|counter| counter.swap(0, Ordering::Relaxed))
    }

    fn read_with(&self, read: impl Fn(&AtomicU64) -> u64) -> FallbackCounters {
        FallbackCounters {
            primary_ok: read(&self.primary_ok),
            handed_back_throttled: read(&self.handed_back_throttled),
            fallback_throttled: read(&self.throttled),
            fallback_timeout: read(&self.timeout),
            fallback_access_denied: read(&self.access_denied),
            fallback_rejected: read(&self.rejected),
            fallback_unusable: read(&self.unusable),
            fallback_unavailable: read(&self.unavailable),
            fallback_failed: read(&self.fallback_failed),
        }
    }
}

impl<P, F> FallbackGenerator<P, F> {
    pub fn new(primary: P, fallback: F) -> Self {
        Self {
            primary,
            fallback,
            counters: Counters::default(),
        }
    }

    /// A snapshot of the counters since this generator was built.
    pub fn counters(&self) -> FallbackCounters {
        self.counters.snapshot()
    }

    /// The counters since the last take (or since this generator was built), reset to zero:
    /// what one invocation adds, for metrics that CloudWatch sums.
    pub fn take_counters(&self) -> FallbackCounters {
        self.counters.take()
    }

    pub fn primary(&self) -> &P {
        &self.primary
    }

    pub fn fallback(&self) -> &F {
        &self.fallback
    }
}

impl<P> FallbackGenerator<P, TemplateGenerator> {
    /// The usual arrangement: the model first, the deterministic template behind it.
    pub fn over_template(primary: P) -> Self {
        Self::new(primary, TemplateGenerator)
    }
}

impl<P: MessageGenerator, F: MessageGenerator> MessageGenerator for FallbackGenerator<P, F> {
    async fn generate(&self, request: GenerationRequest<'_>) -> Result<Generated, GenerationError> {
        let error = match self.primary.generate(request).await {
            Ok(generated) => {
                self.counters.primary_ok.fetch_add(1, Ordering::Relaxed);
                return Ok(generated);
            }
            Err(error) => error,
        };
        if matches!(error, GenerationError::Throttled)
            && request.on_throttle == OnThrottle::HandBack
        {
            self.counters
                .handed_back_throttled
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                error_kind = error.kind(),
                "primary generator throttled; handed back for a later retry"
            );
            return Err(error);
        }
        self.counters
            .for_error(&error)
            .fetch_add(1, Ordering::Relaxed);
        // Only the kind: the error's text can quote the model's answer, which may
        // repeat customer data.
        tracing::warn!(
            error_kind = error.kind(),
            "primary generator failed, the fallback writes the message"
        );
        let request = GenerationRequest {
            // The fallback is there to write the message now.
            on_throttle: OnThrottle::FallBack,
            ..request
        };
        match self.fallback.generate(request).await {
            Ok(generated) => Ok(Generated {
                fallback_reason: Some(error.kind()),
                ..generated
            }),
            Err(fallback_error) => {
                self.counters
                    .fallback_failed
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    primary_error_kind = error.kind(),
                    error_kind = fallback_error.kind(),
                    "the fallback generator failed too, no message"
                );
                Err(fallback_error)
            }
        }
    }
}

#[cfg(test)]
#[path = "fallback_tests.rs"]
mod tests;
