//! The message policy against moto's server through the real SDK clients, with Bedrock
//! answered by `aws-smithy-mocks` rules that count their calls: the day's model budget holds
//! across concurrent invocations, and delivering every stream record a second time changes
//! no outcome, spends no budget and calls no model.
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

mod common;
use common::bedrock;

use std::collections::BTreeSet;

use aws_sdk_bedrockruntime::Client as BedrockClient;
use aws_smithy_mocks::{Rule, mock};
use bedrock::{lambda_orchestrator, mocked_bedrock, usable_answer};
use futures_util::future::join_all;
use referral_aws::dynamo::{DynamoEventArchive, DynamoFeatureStore, DynamoMessageStore};
use referral_aws_local::stream_reader::{DynamoStreamFeed, StartingPosition};
use referral_domain::enricher::{Enricher, EnricherConfig};
use referral_domain::orchestrator::policy::BUDGET_REASON;
use referral_domain::orchestrator::{Orchestrator, StreamCounters};
use referral_domain::ports::{ChangeFeed, ChangeRecord, Decision, MessageStore};
use referral_local::embedded::{EmbeddedArchive, EmbeddedFeatureStore};
use referral_local::mapping::StreamMapping;
use referral_local::pipeline::StreamConsumer;
use referral_orchestrator::ProductionGenerator;
use referral_tests::emulator::{fresh_tables, sdk_config};
use referral_tests::{base_time, event_body, raw_batch};

/// A Converse rule that answers every call with a usable message, counting the calls.
fn bedrock_rule() -> Rule {
    mock!(BedrockClient::converse)
        .sequence()
        .output(usable_answer)
        .repeatedly()
        .build()
}

/// The Lambda's production wiring from its environment, Bedrock answered by `rule`.
fn orchestrator(
    sdk: &aws_config::SdkConfig,
    rule: &Rule,
    env: &[(&str, &str)],
) -> Orchestrator<ProductionGenerator, DynamoMessageStore> {
    lambda_orchestrator(sdk, env, mocked_bedrock(&[rule]))
}

#[tokio::test]
async fn a_budget_of_10_over_50_changes_makes_10_model_calls_and_40_budget_messages() {
    let sdk = sdk_config().await;
    let (tables, _) = fresh_tables(&sdk).await;
    // 50 changes: 50 customers' first services, as the stream would deliver them.
    let store = EmbeddedFeatureStore::new();
    let enricher = Enricher::new(&store, EmbeddedArchive::new(), EnricherConfig::default());
    let bodies: Vec<(String, String)> = (0..50)
        .map(|i| {
            let email = format!("c{i:02}@example.com");
            let body = event_body(&format!("e{i}"), &email, i, Some(4.5));
            (format!("m{i}"), body.to_string())
        })
        .collect();
    for batch in bodies.chunks(10) {
        enricher.process(&raw_batch(batch), base_time()).await;
    }
    let records: Vec<ChangeRecord> = store.poll(100).await.unwrap();
    assert_eq!(records.len(), 50);

    let rule = bedrock_rule();
    let orchestrator = orchestrator(
        &sdk,
        &rule,
        &[
            ("MESSAGES_TABLE", &tables.messages),
            ("BEDROCK_DAILY_CALL_BUDGET", "10"),
        ],
    );
    // Five invocations at once, ten records each: the counter is shared by all.
    let now = chrono::Utc::now();
    let batches = join_all(
        records
            .chunks(10)
            .map(|chunk| orchestrator.handle_batch(chunk, now)),
    )
    .await;
    let mut counters = StreamCounters::default();
    for batch in &batches {
        counters.add(&batch.counters);
    }
    assert_eq!(rule.num_calls(), 10, "model calls");
    assert_eq!(counters.created, 50);
    assert_eq!(counters.budget_exhausted, 40);
    let messages = orchestrator.messages();
    assert_eq!(messages.model_calls(now.date_naive()).await.unwrap(), 10);
    let mut by_bedrock = 0;
    let mut over_budget = 0;
    for (_, body) in &bodies {
        let email = serde_json::from_str::<serde_json::Value>(body).unwrap()["customer"]["email"]
            .as_str()
            .unwrap()
            .to_owned();
        let [message] = <[_; 1]>::try_from(messages.list(&email).await.unwrap()).unwrap();
        match (
            message.generator.as_str(),
            message.fallback_reason.as_deref(),
        ) {
            ("bedrock", None) => by_bedrock += 1,
            ("template", Some(BUDGET_REASON)) => over_budget += 1,
            other => panic!("unexpected message: {other:?}"),
        }
    }
    assert_eq!((by_bedrock, over_budget), (10, 40));

    // Delivered again: every change finds its decision; nothing is called or spent.
    let again = orchestrator.handle_batch(&records, now).await;
    assert_eq!(again.counters.already_created, 50);
    assert_eq!(rule.num_calls(), 10);
    assert_eq!(messages.model_calls(now.date_naive()).await.unwrap(), 10);
}

/// Every record the table's stream holds, handed to `orchestrator` as the stream mapping
/// would, from the stream's start.
async fn deliver_all<G: referral_domain::ports::MessageGenerator, M: MessageStore>(
    sdk: &aws_config::SdkConfig,
    stream_arn: &str,
    orchestrator: &Orchestrator<G, M>,
) -> StreamCounters {
    let feed = DynamoStreamFeed::start(
        aws_sdk_dynamodbstreams::Client::new(sdk),
        stream_arn.to_owned(),
        StartingPosition::TrimHorizon,
    )
    .await
    .expect("open the stream");
    let mapping = StreamMapping::new(feed, orchestrator);
    let mut counters = StreamCounters::default();
    let mut empty = 0;
    while empty < 3 {
        if mapping.consume(100, &mut counters).await.expect("poll") == 0 {
            empty += 1;
        } else {
            empty = 0;
        }
    }
    counters
}

/// Every decision of `customers`, as (customer, version, reason or generator).
async fn outcomes(
    messages: &DynamoMessageStore,
    customers: &BTreeSet<String>,
) -> Vec<(String, u64, String)> {
    let mut all = Vec::new();
    for customer in customers {
        for decision in messages.decisions(customer).await.unwrap() {
            all.push(match decision {
                Decision::Message(message) => (
                    message.customer_email,
                    message.features_version,
                    format!(
                        "{}{}",
                        message.generator,
                        message.fallback_reason.unwrap_or_default()
                    ),
                ),
                Decision::Suppressed(suppression) => (
                    suppression.customer_email,
                    suppression.features_version,
                    suppression.reason,
                ),
            });
        }
    }
    all
}

#[tokio::test]
async fn delivering_every_stream_record_again_changes_no_outcome_and_calls_no_model() {
    let sdk = sdk_config().await;
    let (tables, stream_arn) = fresh_tables(&sdk).await;
    let store = DynamoFeatureStore::new(aws_sdk_dynamodb::Client::new(&sdk), tables.features);
    let archive = DynamoEventArchive::new(aws_sdk_dynamodb::Client::new(&sdk), tables.archive);
    let enricher = Enricher::new(&store, archive, EnricherConfig::default());
    // Three customers, a service every two days for two months: now and then a bad visit,
    // and Cyd unhappy at first, then won back.
    let happy = [5.0, 5.0, 4.0, 1.0, 5.0, 5.0, 4.5, 0.5];
    let won_back = [2.0, 1.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0];
    let mut customers = BTreeSet::new();
    let bodies: Vec<(String, String)> = (0..90)
        .map(|i| {
            let (name, nth) = (["ann", "bob", "cyd"][i % 3], i / 3);
            let email = format!("{name}@example.com");
            customers.insert(email.clone());
            let score = if name == "cyd" { won_back } else { happy }[nth % 8];
            let minute = nth as i64 * 2 * 24 * 60;
            let body = event_body(&format!("e{i}"), &email, minute, Some(score));
            (format!("m{i}"), body.to_string())
        })
        .collect();
    let later = base_time() + chrono::Duration::days(365);
    for batch in bodies.chunks(6) {
        let report = enricher.process(&raw_batch(batch), later).await;
        assert_eq!(report.counters.failed, 0);
    }
    let rule = bedrock_rule();
    let orchestrator = orchestrator(
        &sdk,
        &rule,
        &[
            ("MESSAGES_TABLE", &tables.messages),
            ("MESSAGE_COOLDOWN", "7d"),
            ("MESSAGE_MIN_SATISFACTION_AVG", "3.5"),
            ("MESSAGE_MIN_TRIGGER_SCORE", "1"),
            ("BEDROCK_DAILY_CALL_BUDGET", "5"),
        ],
    );
    let first = deliver_all(&sdk, &stream_arn, &orchestrator).await;
    let decided = outcomes(orchestrator.messages(), &customers).await;
    let calls = rule.num_calls();
    let today = chrono::Utc::now().date_naive();
    let spent = orchestrator.messages().model_calls(today).await.unwrap();
    // Every rule had its say: messages by the model and past the budget, suppressions.
    assert_eq!(first.failed, 0);
    assert_eq!(first.created + first.suppressed, first.records);
    assert_eq!(decided.len() as u64, first.records);
    assert_eq!((calls, spent), (5, 5));
    assert!(first.budget_exhausted > 0, "{first:?}");
    assert!(first.suppressed_cooldown > 0, "{first:?}");
    assert!(first.suppressed_trigger_score > 0, "{first:?}");
    assert!(first.suppressed_satisfaction > 0, "{first:?}");

    let second = deliver_all(&sdk, &stream_arn, &orchestrator).await;
    assert_eq!(second.records, first.records);
    assert_eq!(second.already_created, second.records, "{second:?}");
    assert_eq!(rule.num_calls(), calls, "no model call on redelivery");
    assert_eq!(
        orchestrator.messages().model_calls(today).await.unwrap(),
        spent
    );
    assert_eq!(outcomes(orchestrator.messages(), &customers).await, decided);
}
