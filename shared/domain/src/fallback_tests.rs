//! Tests of the fallback generator (a file of their own: the module stays readable).

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
            fallback_reason: None,
        }))
    }
}

async fn generate_once<P: MessageGenerator, F: MessageGenerator>(
    generator: &FallbackGenerator<P, F>,
) -> Result<Generated, GenerationError> {
    generate_with(generator, OnThrottle::FallBack).await
}

async fn generate_with<P: MessageGenerator, F: MessageGenerator>(
    generator: &FallbackGenerator<P, F>,
    on_throttle: OnThrottle,
) -> Result<Generated, GenerationError> {
    let prompt = build_prompt(None);
    generator
        .generate(GenerationRequest {
            features: None,
            prompt: &prompt,
            on_throttle,
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
            Ok(generated) => writers.push((generated.generator, generated.fallback_reason)),
            Err(error) => panic!("generation failed although the fallback works: {error}"),
        }
    }
    // Each template message says why the model did not write it, in the counters' words.
    assert_eq!(
        writers,
        [
            ("template", Some("throttled")),
            ("template", Some("timeout")),
            ("template", Some("timeout")),
            ("template", Some("access_denied")),
            ("template", Some("rejected")),
            ("template", Some("unusable_answer")),
            ("template", Some("unavailable")),
            ("model", None),
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
            handed_back_throttled: 0,
        }
    );
    assert_eq!(counters.fallbacks(), 7);
    assert_eq!(generator.primary().calls(), 8);
    assert_eq!(generator.fallback().calls(), 7);
}

#[tokio::test]
async fn a_throttled_request_that_asks_for_it_is_handed_back_and_nothing_else_is() {
    let generator = FallbackGenerator::new(
        Scripted::new(
            "model",
            vec![
                Err(GenerationError::Throttled),
                Err(GenerationError::AccessDenied),
                Err(GenerationError::Throttled),
            ],
        ),
        Scripted::new("template", vec![]),
    );
    let handed_back = generate_with(&generator, OnThrottle::HandBack).await;
    assert!(
        matches!(handed_back, Err(GenerationError::Throttled)),
        "{handed_back:?}"
    );
    assert_eq!(generator.fallback().calls(), 0);
    // Only throttling is handed back: a denied model falls back whatever the request says.
    let denied = generate_with(&generator, OnThrottle::HandBack).await;
    assert_eq!(
        denied.map(|g| g.fallback_reason).ok(),
        Some(Some("access_denied"))
    );
    // And by default throttling falls back too, saying so.
    let throttled = generate_once(&generator).await;
    assert_eq!(
        throttled.map(|g| g.fallback_reason).ok(),
        Some(Some("throttled"))
    );
    let counters = generator.counters();
    assert_eq!(
        (
            counters.handed_back_throttled,
            counters.fallback_access_denied,
            counters.fallback_throttled,
            counters.fallbacks()
        ),
        (1, 1, 1, 2)
    );
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
    // Another test's thread, with no subscriber, may have cached "never" for the warning's
    // callsite while this one registered: ask every callsite again.
    tracing::callsite::rebuild_interest_cache();
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
