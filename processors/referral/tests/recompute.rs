//! `referral features recompute` against moto's server: `--plan` counts the moves and
//! changes nothing; the run writes them, every customer ends in the band the rule says, a
//! second run writes nothing, and the orchestrator fed the resulting stream sends no message.
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

mod common;
use common::function_binaries;

use std::collections::BTreeMap;
use std::time::Duration;

use referral_aws::dynamo::{DynamoFeatureStore, DynamoMessageStore};
use referral_aws_local::stream_reader::{DynamoStreamFeed, StartingPosition};
use referral_cli::names::{ResourceNames, STREAM_FAILURE_QUEUE, TableNames};
use referral_cli::remote;
use referral_domain::features::{CustomerFeatures, LifetimeValueRule};
use referral_domain::orchestrator::{
    Orchestrator, OrchestratorConfig, StreamCounters, message_id_for,
};
use referral_domain::ports::{Decision, MessageStore};
use referral_domain::template::TemplateGenerator;
use referral_local::mapping::{StreamConsumer, StreamMapping};
use referral_tests::emulator::{endpoint, sdk_config, unique};
use serde_json::{Value, json};

/// Moves the corpus's customers both ways: two highs down, one medium up, two lows up.
const RULE_FLAGS: [&str; 6] = [
    "--high-min-services",
    "2",
    "--high-min-satisfaction",
    "4.5",
    "--medium-min-services",
    "1",
];
const RULE: LifetimeValueRule = LifetimeValueRule {
    high_min_services: 2,
    high_min_satisfaction_micros: 4_500_000,
    medium_min_services: 1,
    medium_min_satisfaction_micros: 3_500_000,
};

fn referral(args: &[&str]) -> Value {
    let (ok, stdout, stderr) = function_binaries::referral(args, b"");
    assert!(ok, "referral {args:?} failed: {stderr}");
    serde_json::from_str(&stdout).expect("--json prints one JSON document")
}

async fn scan_all(store: &DynamoFeatureStore) -> Vec<CustomerFeatures> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = store.scan_page(start).await.expect("scan");
        assert!(page.undecodable.is_empty());
        items.extend(page.items);
        match page.next {
            Some(next) => start = Some(next),
            None => return items,
        }
    }
}

fn moves(report: &Value) -> BTreeMap<String, u64> {
    report["moves"]
        .as_array()
        .expect("moves")
        .iter()
        .map(|moved| {
            (
                format!(
                    "{}->{}",
                    moved["from"].as_str().unwrap(),
                    moved["to"].as_str().unwrap()
                ),
                moved["customers"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recompute_moves_every_customer_to_the_rules_band_and_sends_no_message() {
    let url = endpoint();
    let sdk = sdk_config().await;
    let names = ResourceNames {
        tables: TableNames {
            features_table: unique("features"),
            archive_table: unique("archive"),
            messages_table: unique("messages"),
        },
        queue: unique("queue"),
        dlq: unique("dlq"),
        stream_failures: STREAM_FAILURE_QUEUE.to_owned(),
    };
    let resources = remote::setup(&sdk, &names, 5).await.expect("setup");
    let tables = [
        "--features-table",
        names.tables.features_table.as_str(),
        "--messages-table",
        names.tables.messages_table.as_str(),
        "--endpoint-url",
        url.as_str(),
    ];
    let seeded = referral(
        &[
            &["run", "--json", "events/webhooks"][..],
            &tables,
            &[
                "--archive-table",
                &names.tables.archive_table,
                "--queue",
                &names.queue,
                "--dlq",
                &names.dlq,
            ],
        ]
        .concat(),
    );
    let messages_before = seeded["messages"].as_array().map(Vec::len);

    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let features = DynamoFeatureStore::new(dynamodb.clone(), &names.tables.features_table);
    let before = scan_all(&features).await;
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for item in &before {
        let band = RULE.band_of(item);
        if band.moves() {
            *expected
                .entry(format!("{}->{}", band.from.as_str(), band.to.as_str()))
                .or_default() += 1;
        }
    }
    assert_eq!(
        expected,
        BTreeMap::from([
            ("high->medium".to_owned(), 2),
            ("medium->high".to_owned(), 1),
            ("low->medium".to_owned(), 2),
        ])
    );
    // Only what the recompute writes from here on.
    let feed = DynamoStreamFeed::start(
        aws_sdk_dynamodbstreams::Client::new(&sdk),
        resources.stream_arn.clone(),
        StartingPosition::Latest,
    )
    .await
    .expect("stream");

    let recompute = |extra: &[&str]| {
        referral(
            &[
                &["features", "recompute", "--json"][..],
                &RULE_FLAGS,
                &tables,
                extra,
            ]
            .concat(),
        )
    };
    let plan = recompute(&["--plan"]);
    assert_eq!(moves(&plan), expected);
    assert_eq!(
        (plan["written"].clone(), plan["plan"].clone()),
        (json!(0), json!(true))
    );
    assert_eq!(
        scan_all(&features).await,
        before,
        "--plan changed the table"
    );

    let done = recompute(&["--segments", "3", "--max-write-units", "1000"]);
    assert_eq!(moves(&done), expected);
    assert_eq!(done["written"], 5);
    assert_eq!(done["scanned"], before.len());
    assert_eq!(done["unrecorded"], 0);
    let after = scan_all(&features).await;
    for item in &after {
        let was = before
            .iter()
            .find(|old| old.customer_email == item.customer_email)
            .unwrap();
        assert_eq!(
            item.lifetime_value,
            RULE.classify(item.service_count, item.score_sum_micros, item.score_count),
            "{}",
            item.customer_email
        );
        let moved = RULE.band_of(was).moves();
        assert_eq!(item.version, was.version + u64::from(moved));
    }

    let again = recompute(&[]);
    assert_eq!(
        (again["written"].clone(), moves(&again)),
        (json!(0), BTreeMap::new())
    );

    // The orchestrator, fed the recompute's changes, sends nothing.
    let messages = DynamoMessageStore::new(dynamodb, &names.tables.messages_table);
    let orchestrator =
        Orchestrator::new(TemplateGenerator, &messages, OrchestratorConfig::default());
    let mapping = StreamMapping::new(feed, &orchestrator);
    let mut counters = StreamCounters::default();
    for _ in 0..20 {
        mapping.consume(100, &mut counters).await.expect("consume");
        if counters.records >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(counters.records, 5, "{counters:?}");
    // No trigger on a version that applied no service: each change is passed over, its
    // one outcome being the `recompute` suppression checked below.
    assert_eq!(
        (counters.created, counters.skipped, counters.failed),
        (0, 5, 0),
        "{counters:?}"
    );

    let mut messages_after = 0;
    for item in &after {
        let decisions = messages.decisions(&item.customer_email).await.unwrap();
        messages_after += decisions
            .iter()
            .filter(|decision| matches!(decision, Decision::Message(_)))
            .count();
        let was = before
            .iter()
            .find(|old| old.customer_email == item.customer_email)
            .unwrap();
        if RULE.band_of(was).moves() {
            let recorded = decisions
                .iter()
                .find(|decision| decision.key().message_id == message_id_for(item));
            assert!(
                matches!(recorded, Some(Decision::Suppressed(s)) if s.reason == "recompute"),
                "{}: {recorded:?}",
                item.customer_email
            );
        }
    }
    assert_eq!(Some(messages_after), messages_before);
}
