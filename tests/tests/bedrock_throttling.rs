//! The operator's Bedrock throttling policy (`BEDROCK_THROTTLE_RETRY_SECONDS`), through the
//! Lambda's production wiring: the real `BedrockGenerator` behind the template, Converse
//! answered by `aws-smithy-mocks`, messages in moto's table. By default a throttled call
//! falls back to the template at once; with a retry window a young change is handed back
//! (claim released, no message) and written by Bedrock on its retry, and a change older
//! than the window falls back. Either way the message says why the template wrote it.
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

mod common;
use common::bedrock;

use std::time::Duration;

use aws_sdk_bedrockruntime::Client as BedrockClient;
use aws_sdk_bedrockruntime::operation::converse::ConverseError;
use aws_sdk_bedrockruntime::types::error::ThrottlingException;
use aws_smithy_mocks::{Rule, mock};
use bedrock::{lambda_orchestrator, mocked_bedrock, usable_answer};
use chrono::{DateTime, Utc};
use referral_aws::dynamo::DynamoMessageStore;
use referral_domain::enricher::{Enricher, EnricherConfig};
use referral_domain::env::Vars;
use referral_domain::orchestrator::{Orchestrator, RecordOutcome};
use referral_domain::ports::{ChangeFeed, ChangeRecord, Claim, Holder, MessageKey, MessageStore};
use referral_local::embedded::{EmbeddedArchive, EmbeddedFeatureStore};
use referral_orchestrator::{Config, ProductionGenerator};
use referral_tests::emulator::{fresh_tables, sdk_config};
use referral_tests::{base_time, event_body, raw_batch};

const EMAIL: &str = "ann@example.com";

fn throttled() -> ConverseError {
    ConverseError::ThrottlingException(ThrottlingException::builder().message("slow down").build())
}

/// Throttles the first `throttles` calls (at least one), then answers.
fn rule(throttles: usize) -> Rule {
    mock!(BedrockClient::converse)
        .sequence()
        .error(throttled)
        .times(throttles)
        .output(usable_answer)
        .repeatedly()
        .build()
}

/// Throttles every call.
fn always_throttled() -> Rule {
    mock!(BedrockClient::converse)
        .sequence()
        .error(throttled)
        .repeatedly()
        .build()
}

/// The Lambda's wiring from its environment, Bedrock answered by `rule`.
async fn orchestrator(
    rule: &Rule,
    retry_seconds: Option<&str>,
) -> Orchestrator<ProductionGenerator, DynamoMessageStore> {
    let sdk = sdk_config().await;
    let (tables, _) = fresh_tables(&sdk).await;
    let mut env = vec![("MESSAGES_TABLE".to_owned(), tables.messages)];
    if let Some(seconds) = retry_seconds {
        env.push((
            "BEDROCK_THROTTLE_RETRY_SECONDS".to_owned(),
            seconds.to_owned(),
        ));
    }
    let env: Vec<(&str, &str)> = env
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    lambda_orchestrator(&sdk, &env, mocked_bedrock(&[rule]))
}

/// Ann's first change, as the stream delivers it, written at `written_at`.
async fn change(written_at: Option<DateTime<Utc>>) -> ChangeRecord {
    let store = EmbeddedFeatureStore::new();
    let body = event_body("e1", EMAIL, 0, Some(4.5)).to_string();
    Enricher::new(&store, EmbeddedArchive::new(), EnricherConfig::default())
        .process(&raw_batch(&[("m1".to_owned(), body)]), base_time())
        .await;
    let [record] = <[_; 1]>::try_from(store.poll(10).await.unwrap()).unwrap();
    ChangeRecord {
        written_at,
        ..record
    }
}

/// The one message Ann has: (generator, fallback reason).
async fn message_of(
    orchestrator: &Orchestrator<ProductionGenerator, DynamoMessageStore>,
) -> (String, Option<String>) {
    let [message] = <[_; 1]>::try_from(orchestrator.messages().list(EMAIL).await.unwrap()).unwrap();
    (message.generator, message.fallback_reason)
}

#[tokio::test]
async fn by_default_a_throttled_call_falls_back_at_once_and_the_message_says_why() {
    let rule = always_throttled();
    let orchestrator = orchestrator(&rule, None).await;
    let now = Utc::now();
    let outcome = orchestrator.handle(&change(Some(now)).await, now).await;
    assert_eq!(outcome.label(), "created", "{outcome:?}");
    assert_eq!(rule.num_calls(), 1);
    assert_eq!(
        message_of(&orchestrator).await,
        ("template".to_owned(), Some("throttled".to_owned()))
    );
    assert_eq!(orchestrator.generator().counters().fallback_throttled, 1);
}

#[tokio::test]
async fn with_a_retry_window_a_young_change_is_handed_back_then_written_by_bedrock() {
    let rule = rule(2);
    let orchestrator = orchestrator(&rule, Some("600")).await;
    let now = Utc::now();
    let record = change(Some(now - chrono::Duration::seconds(30))).await;
    for attempt in 1..=2 {
        let outcome = orchestrator.handle(&record, now).await;
        assert_eq!(outcome, RecordOutcome::Throttled, "attempt {attempt}");
        assert!(outcome.needs_retry());
        assert!(
            orchestrator
                .messages()
                .list(EMAIL)
                .await
                .unwrap()
                .is_empty()
        );
    }
    // The claim was let go: anyone may take it (and gives it back).
    let key = MessageKey {
        customer_email: EMAIL.to_owned(),
        message_id: "v000000000001".to_owned(),
    };
    let probe = Holder::new("probe");
    let messages = orchestrator.messages();
    let claim = messages
        .claim(&key, &probe, now, Duration::from_secs(300))
        .await
        .unwrap();
    assert_eq!(claim, Claim::Acquired { draft: None });
    messages.release(&key, &probe, now).await.unwrap();

    let outcome = orchestrator.handle(&record, now).await;
    assert_eq!(outcome.label(), "created", "{outcome:?}");
    assert_eq!(rule.num_calls(), 3);
    assert_eq!(
        message_of(&orchestrator).await,
        ("bedrock".to_owned(), None)
    );
    let counters = orchestrator.generator().counters();
    assert_eq!(
        (counters.handed_back_throttled, counters.fallbacks()),
        (2, 0)
    );
}

#[tokio::test]
async fn past_the_retry_window_or_of_unknown_age_a_throttled_change_falls_back() {
    for written_at in [Some(Utc::now() - chrono::Duration::seconds(601)), None] {
        let rule = always_throttled();
        let orchestrator = orchestrator(&rule, Some("600")).await;
        let outcome = orchestrator
            .handle(&change(written_at).await, Utc::now())
            .await;
        assert_eq!(outcome.label(), "created", "{written_at:?}: {outcome:?}");
        assert_eq!(rule.num_calls(), 1);
        assert_eq!(
            message_of(&orchestrator).await,
            ("template".to_owned(), Some("throttled".to_owned())),
            "{written_at:?}"
        );
    }
}

#[test]
fn the_retry_window_is_read_from_the_environment_and_bounded() {
    let read = |value: &'static str| {
        Config::from_vars(&Vars::new(move |name: &str| match name {
            "MESSAGES_TABLE" => Some("messages".to_owned()),
            "BEDROCK_THROTTLE_RETRY_SECONDS" => Some(value.to_owned()),
            _ => None,
        }))
    };
    assert_eq!(read("0").unwrap().throttle_retry, Duration::ZERO);
    assert_eq!(
        read("600").unwrap().throttle_retry,
        Duration::from_secs(600)
    );
    assert!(read("3600").is_ok());
    assert!(read("3601").is_err());
    assert!(read("soon").is_err());
}
