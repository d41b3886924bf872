//! What `ReferralMessages` costs per message, against moto: the issue's live corpus is
//! folded into `CustomerFeatures`, then the orchestrator (the Lambda's own configuration)
//! writes a message for every change from the table's stream while moto records its
//! requests, which the capacity ledger prices as DynamoDB would. A message is a claim
//! (`UpdateItem` of a small item) and the decision over it (`PutItem`): each 1 write unit
//! while the stored message stays within 1 KB, which keeping no prompt text allows.
//! Needs `tests/run.sh` or `tests/emulator.sh` (moto with `MOTO_RECORDER_FILEPATH` set).
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use referral_aws::dynamo::{CUSTOMER_KEY, DynamoEventArchive, DynamoFeatureStore, MESSAGE_KEY};
use referral_aws_local::stream_reader::{DynamoStreamFeed, StartingPosition};
use referral_domain::enricher::{Enricher, EnricherConfig};
use referral_domain::env::Vars;
use referral_domain::orchestrator::{Orchestrator, StreamCounters};
use referral_domain::ports::{
    Generated, GenerationError, GenerationRequest, MessageGenerator, TokenUsage,
};
use referral_domain::template::TemplateGenerator;
use referral_local::mapping::StreamMapping;
use referral_local::pipeline::StreamConsumer;
use referral_tests::capacity::{CapacityLedger, parse_recording};
use referral_tests::corpus::{Corpus, CorpusSpec};
use referral_tests::emulator::{endpoint, fresh_tables, sdk_config};
use referral_tests::raw_batch;
use referral_tests::recorder::Recorder;

/// What a model writes at most (the answer screen's 480 characters), with the model's id
/// and token usage: the largest message the table stores from Bedrock.
struct LongestAnswer;

impl MessageGenerator for LongestAnswer {
    async fn generate(&self, request: GenerationRequest<'_>) -> Result<Generated, GenerationError> {
        let template = TemplateGenerator.generate(request).await?;
        Ok(Generated {
            body: "x".repeat(480),
            generator: "bedrock",
            model_id: Some("anthropic.claude-3-haiku-20240307-v1:0".to_owned()),
            usage: Some(TokenUsage {
                input_tokens: 1_234,
                output_tokens: 321,
            }),
            fallback_reason: None,
            ..template
        })
    }
}

/// Write units of `ReferralMessages` per message created, and the largest item, for the
/// issue's corpus with `generator`.
async fn messages_table_cost<G: MessageGenerator>(
    corpus: &Corpus,
    generator: G,
) -> (u64, f64, u64) {
    let config = sdk_config().await;
    let (tables, stream_arn) = fresh_tables(&config).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let enricher = Enricher::new(
        DynamoFeatureStore::new(dynamodb.clone(), &tables.features),
        DynamoEventArchive::new(dynamodb.clone(), &tables.archive),
        EnricherConfig::default(),
    );
    for batch in corpus.batches() {
        let pairs: Vec<(String, String)> = batch
            .iter()
            .map(|delivery| (delivery.event_id.clone(), delivery.body.clone()))
            .collect();
        let now = batch
            .iter()
            .map(|delivery| delivery.deliver_at)
            .max()
            .unwrap_or_else(chrono::Utc::now);
        enricher.process(&raw_batch(&pairs), now).await;
    }

    let settings = referral_orchestrator::Config::from_vars(&Vars::fixed(&[(
        "MESSAGES_TABLE",
        tables.messages.as_str(),
    )]))
    .expect("the orchestrator's settings");
    let orchestrator = Orchestrator::new(
        generator,
        settings.message_store(&config),
        settings.orchestrator_config(),
    );
    let feed = DynamoStreamFeed::start(
        aws_sdk_dynamodbstreams::Client::new(&config),
        stream_arn,
        StartingPosition::TrimHorizon,
    )
    .await
    .expect("open the stream");
    let mapping = StreamMapping::new(feed, &orchestrator);
    let recorder = Recorder::new(&endpoint()).unwrap();
    recorder.reset().await.unwrap();
    recorder.start().await.unwrap();
    let mut counters = StreamCounters::default();
    let mut empty = 0;
    while empty < 3 {
        let handled = mapping
            .consume(100, &mut counters)
            .await
            .expect("poll the stream");
        empty = if handled == 0 { empty + 1 } else { 0 };
    }
    let recording = recorder.download().await.unwrap();
    recorder.stop().await.unwrap();
    assert_eq!(counters.failed, 0, "{counters:?}");
    assert!(counters.created > 100, "{counters:?}");

    let mut ledger = CapacityLedger::new();
    ledger.set_key_schema(&tables.messages, &[CUSTOMER_KEY, MESSAGE_KEY]);
    for request in parse_recording(&recording).unwrap() {
        ledger.record(&request).unwrap();
    }
    let report = ledger.report(counters.created);
    let usage = report.table(&tables.messages).expect("messages written");
    // Every write of a message's life (the claim, the decision over it) is one unit: no
    // stored item reaches 1 KB. A record delivered twice adds a (refused) claim, priced too.
    let writes: u64 = ["PutItem", "UpdateItem"]
        .iter()
        .filter_map(|operation| usage.ops.get(*operation))
        .sum();
    assert_eq!(usage.write_units, writes, "{:?}", usage.ops);
    assert_eq!(usage.ops.get("PutItem"), Some(&counters.created));
    (
        counters.created,
        usage.write_units as f64 / counters.created as f64,
        usage.largest_item_bytes,
    )
}

/// The issue's corpus with `REFERRAL_BENCH_FULL=1` (about 3 minutes a generator here, most
/// of it moto serving the stream); else the same shape with a fifth of the events.
fn corpus() -> Corpus {
    if std::env::var_os("REFERRAL_BENCH_FULL").is_some() {
        return Corpus::issue_shape();
    }
    let full = Corpus::issue_shape().spec;
    Corpus::generate(CorpusSpec {
        distinct_events: full.distinct_events / 5,
        duplicates: full.duplicates / 5,
        customers: full.customers / 5,
        ..full
    })
    .expect("a valid corpus")
}

/// Records the stream may hand over twice (at-least-once delivery) each cost one claim
/// more; a handful per run is within the measurement, a pattern is not.
fn counters_redelivered_allowance(messages: u64) -> f64 {
    5.0 / messages as f64
}

#[tokio::test]
async fn a_message_costs_at_most_two_write_units() {
    let corpus = corpus();
    for (name, (messages, per_message, largest)) in [
        (
            "template",
            messages_table_cost(&corpus, TemplateGenerator).await,
        ),
        (
            "longest model answer",
            messages_table_cost(&corpus, LongestAnswer).await,
        ),
    ] {
        eprintln!(
            "ReferralMessages, {name}: {messages} messages, {per_message:.2} write units each, \
             largest item {largest} B"
        );
        assert!(
            per_message <= 2.0 + counters_redelivered_allowance(messages),
            "{name}: {per_message:.2} write units per message"
        );
        assert!(largest <= 1_024, "{name}: an item of {largest} B");
    }
}
