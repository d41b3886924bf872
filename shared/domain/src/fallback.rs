//! A generator that never fails for the model's sake: whatever goes wrong with the primary
//! generator (the model), the fallback (the deterministic template) writes the message, and
//! the failure is counted by kind so that a silent switch to templates shows up in metrics.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::ports::{Generated, GenerationError, GenerationRequest, MessageGenerator};
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
        self.counters
            .for_error(&error)
            .fetch_add(1, Ordering::Relaxed);
        // Only the kind: the error's text can quote the model's answer, which may
        // repeat customer data.
        tracing::warn!(
            error_kind = error.kind(),
            "primary generator failed, the fallback writes the message"
        );
        self.fallback
            .generate(request)
            .await
            .inspect_err(|fallback_error| {
                self.counters
                    .fallback_failed
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    primary_error_kind = error.kind(),
                    error_kind = fallback_error.kind(),
                    "the fallback generator failed too, no message"
                );
            })
    }
}

#[cfg(test)]
mod tests {
    use crate::answer::AnswerError;
    use std::collections::VecDeque;
    use std::fmt::Write as _;
    use std::future::{Future, ready};
    use std::sync::{Arc, Mutex, PoisonError};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Level, Metadata, Subscriber};

    use super::*;
    use crate::prompt::build_prompt;

    /// Answers each call with the next scripted result.
    struct Scripted {
        name: &'static str,
        results: Mutex<VecDeque<Result<(), GenerationError>>>,
        calls: AtomicU64,
    }

    impl Scripted {
        fn new(name: &'static str, results: Vec<Result<(), GenerationError>>) -> Self {
            Self {
                name,
                results: Mutex::new(results.into()),
                calls: AtomicU64::new(0),
            }
        }

        fn calls(&self) -> u64 {
            self.calls.load(Ordering::Relaxed)
        }
    }

    impl MessageGenerator for Scripted {
        fn generate(
            &self,
            _request: GenerationRequest<'_>,
        ) -> impl Future<Output = Result<Generated, GenerationError>> + Send {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let next = self
                .results
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_front()
                .unwrap_or(Ok(()));
            ready(next.map(|()| Generated {
                recommended_service: "lawn_care".to_owned(),
                body: format!("written by {}", self.name),
                generator: self.name,
                model_id: None,
                usage: None,
            }))
        }
    }

    async fn generate_once<P: MessageGenerator, F: MessageGenerator>(
        generator: &FallbackGenerator<P, F>,
    ) -> Result<Generated, GenerationError> {
        let prompt = build_prompt(None);
        generator
            .generate(GenerationRequest {
                features: None,
                prompt: &prompt,
            })
            .await
    }

    #[tokio::test]
    async fn a_working_primary_writes_and_the_fallback_is_not_called() {
        let generator = FallbackGenerator::new(
            Scripted::new("model", vec![Ok(())]),
            Scripted::new("template", vec![]),
        );
        let generated = generate_once(&generator).await;
        assert_eq!(generated.map(|g| g.generator).ok(), Some("model"));
        assert_eq!(generator.fallback().calls(), 0);
        assert_eq!(
            generator.counters(),
            FallbackCounters {
                primary_ok: 1,
                ..FallbackCounters::default()
            }
        );
    }

    #[tokio::test]
    async fn every_error_kind_falls_back_and_is_counted_under_its_kind() {
        let errors = vec![
            Err(GenerationError::Throttled),
            Err(GenerationError::Timeout),
            Err(GenerationError::Timeout),
            Err(GenerationError::AccessDenied),
            Err(GenerationError::Rejected("bad request".into())),
            Err(GenerationError::Unusable(AnswerError::NoText)),
            Err(GenerationError::Unavailable("connection reset".into())),
            Ok(()),
        ];
        let calls = errors.len();
        let generator = FallbackGenerator::new(
            Scripted::new("model", errors),
            Scripted::new("template", vec![]),
        );
        let mut writers = Vec::new();
        for _ in 0..calls {
            match generate_once(&generator).await {
                Ok(generated) => writers.push(generated.generator),
                Err(error) => panic!("generation failed although the fallback works: {error}"),
            }
        }
        assert_eq!(
            writers,
            [
                "template", "template", "template", "template", "template", "template", "template",
                "model"
            ]
        );
        let counters = generator.counters();
        assert_eq!(
            counters,
            FallbackCounters {
                primary_ok: 1,
                fallback_throttled: 1,
                fallback_timeout: 2,
                fallback_access_denied: 1,
                fallback_rejected: 1,
                fallback_unusable: 1,
                fallback_unavailable: 1,
                fallback_failed: 0,
            }
        );
        assert_eq!(counters.fallbacks(), 7);
        assert_eq!(generator.primary().calls(), 8);
        assert_eq!(generator.fallback().calls(), 7);
    }

    #[tokio::test]
    async fn only_a_failing_fallback_fails_generation_with_its_own_error() {
        let generator = FallbackGenerator::new(
            Scripted::new("model", vec![Err(GenerationError::Throttled)]),
            Scripted::new(
                "template",
                vec![Err(GenerationError::Unusable(AnswerError::EmptyMessage))],
            ),
        );
        let outcome = generate_once(&generator).await;
        assert!(
            matches!(
                outcome,
                Err(GenerationError::Unusable(AnswerError::EmptyMessage))
            ),
            "{outcome:?}"
        );
        let counters = generator.counters();
        assert_eq!(
            (counters.fallback_throttled, counters.fallback_failed),
            (1, 1)
        );
    }

    #[tokio::test]
    async fn taking_the_counters_reports_each_invocation_once() {
        let generator = FallbackGenerator::over_template(Scripted::new(
            "model",
            vec![
                Err(GenerationError::Timeout),
                Err(GenerationError::Throttled),
            ],
        ));
        let _ = generate_once(&generator).await;
        assert_eq!(generator.take_counters().fallback_timeout, 1);
        let _ = generate_once(&generator).await;
        let second = generator.take_counters();
        assert_eq!((second.fallback_timeout, second.fallback_throttled), (0, 1));
        assert_eq!(generator.take_counters(), FallbackCounters::default());
    }

    #[tokio::test]
    async fn the_real_template_backs_a_failing_model() {
        let generator = FallbackGenerator::over_template(Scripted::new(
            "model",
            vec![Err(GenerationError::Timeout)],
        ));
        let generated = generate_once(&generator).await.map(|g| g.generator);
        assert_eq!(generated.ok(), Some("template"));
        assert_eq!(generator.counters().fallback_timeout, 1);
    }

    #[test]
    fn counters_serialise_with_their_field_names() {
        let counters = FallbackCounters {
            fallback_unusable: 3,
            ..FallbackCounters::default()
        };
        let json = serde_json::to_value(counters).unwrap_or_default();
        assert_eq!(json["fallback_unusable"], 3);
        assert_eq!(json["primary_ok"], 0);
    }

    /// Records every event's level and fields as text.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<(Level, String)>>>);

    struct FieldText<'a>(&'a mut String);

    impl Visit for FieldText<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            let _ = write!(self.0, "{}={:?} ", field.name(), value);
        }
    }

    impl Subscriber for Recorder {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut text = String::new();
            event.record(&mut FieldText(&mut text));
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((*event.metadata().level(), text));
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    // A current-thread runtime keeps the thread-local subscriber in force across awaits.
    #[tokio::test(flavor = "current_thread")]
    async fn one_warning_names_the_kind_and_nothing_the_model_said() {
        let recorder = Recorder::default();
        let _guard = tracing::subscriber::set_default(recorder.clone());
        let generator = FallbackGenerator::over_template(Scripted::new(
            "model",
            vec![Err(GenerationError::Rejected(
                "echoed: Jane Doe, 1 Elm St".into(),
            ))],
        ));
        assert!(generate_once(&generator).await.is_ok());
        let events = recorder
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let warnings: Vec<_> = events
            .iter()
            .filter(|(level, _)| *level == Level::WARN)
            .collect();
        assert_eq!(warnings.len(), 1, "{events:?}");
        assert!(
            warnings[0].1.contains("error_kind=\"rejected\""),
            "{events:?}"
        );
        assert!(
            events.iter().all(|(_, text)| !text.contains("Jane")),
            "{events:?}"
        );
    }
}
