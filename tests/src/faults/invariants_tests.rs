//! The checker must fail when an invariant is broken: a whole run on the embedded adapters
//! through the same mappings the fault suite uses, once as Lambda runs it (every invariant
//! holds) and once with a deliberately broken mapping that acknowledges messages before the
//! function ran (crashed invocations then lose events, and the checker says which); and
//! the correct run's world broken by hand, one invariant at a time.

use std::sync::Arc;
use std::time::Duration;

use referral_domain::enricher::{Enricher, EnricherConfig};
use referral_domain::orchestrator::{Orchestrator, OrchestratorConfig, StreamCounters};
use referral_domain::ports::{OutgoingMessage, WorkQueue};
use referral_enricher::EnricherHandler;
use referral_local::embedded::{
    EmbeddedArchive, EmbeddedFeatureStore, EmbeddedMessageStore, EmbeddedQueue, QueueRules,
};
use referral_local::mapping::StreamMapping;
use referral_local::pipeline::StreamConsumer;

use super::*;
use crate::counting::CountingGenerator;
use crate::event_body;
use crate::faults::crash::{CrashingArchive, CrashingStore, Tripwire};
use crate::faults::sqs::{AckMode, CrashPlan, EnricherCrash, SqsMapping, SqsTally};
use crate::faults::world::{dead_letter_of, decision_row, read_archive, sent};

/// 36 events of three customers, a quarter of them sent twice, and two invalid bodies.
fn bodies() -> Vec<String> {
    let customers = ["ann@example.com", "bob@example.com", "cat@example.com"];
    let mut bodies: Vec<String> = (0..36)
        .map(|i| {
            let email = customers[i % 3];
            event_body(&format!("evt-{i:02}"), email, i as i64, Some(4.0)).to_string()
        })
        .collect();
    // Every fourth event again, so every customer has events sent once only: a crash that
    // loses one customer's part of a batch must lose something the checker can see.
    let again: Vec<String> = bodies.iter().skip(1).step_by(4).cloned().collect();
    bodies.extend(again);
    bodies.push(r#"{"event_id": "bad-1", "event_type": "service.completed"}"#.to_owned());
    bodies.push("not json".to_owned());
    bodies
}

/// Webhooks → queue (a crashing poller) → enricher → features → stream → orchestrator, all
/// embedded.
async fn embedded_run(ack: AckMode, plan: CrashPlan) -> World {
    let dead_letters = Arc::new(EmbeddedQueue::new());
    let queue = EmbeddedQueue::with_rules(QueueRules {
        visibility_timeout: Duration::from_millis(20),
        max_receive_count: Some(5),
        dead_letters: Some(Arc::clone(&dead_letters)),
    });
    let bodies = bodies();
    queue
        .send(
            bodies
                .iter()
                .map(|body| OutgoingMessage {
                    body: body.clone(),
                    attributes: Default::default(),
                })
                .collect(),
        )
        .await
        .unwrap();
    let features = EmbeddedFeatureStore::new();
    let archive = EmbeddedArchive::new();
    let tripwire = Tripwire::new();
    let handler = EnricherHandler::new(
        Enricher::new(
            CrashingStore::with_tripwire(&features, Arc::clone(&tripwire)),
            CrashingArchive::new(&archive, tripwire),
            EnricherConfig::default(),
        ),
        &*dead_letters,
    );
    let mapping = SqsMapping {
        queue: &queue,
        queue_arn: "arn:aws:sqs:us-east-1:000000000000:webhooks",
        ack,
        idle_pause: Duration::from_millis(5),
    };
    let tally = SqsTally::default();
    mapping.poll_until_drained(&handler, &plan, &tally).await;
    assert!(tally.crashes() > 0, "the run injected no crash");

    let messages = EmbeddedMessageStore::new();
    let generator = CountingGenerator::default();
    let orchestrator = Orchestrator::new(&generator, &messages, OrchestratorConfig::default());
    let stream = StreamMapping::new(&features, &orchestrator);
    let mut counters = StreamCounters::default();
    while stream.consume(100, &mut counters).await.unwrap() > 0 {}

    let features: BTreeMap<String, CustomerFeatures> = features
        .snapshot()
        .into_iter()
        .map(|item| (item.customer_email.clone(), (*item).clone()))
        .collect();
    World {
        sent: bodies.into_iter().map(sent).collect(),
        memory_limits: EnricherConfig::default().memory,
        archive: read_archive(&archive, features.keys()).await,
        features,
        decisions: messages.snapshot().iter().map(decision_row).collect(),
        claims: Vec::new(),
        dead_letters: dead_letters.peek_all().iter().map(dead_letter_of).collect(),
        queue_left: queue.depth() as u64,
        given_up: Default::default(),
        bedrock: None,
    }
}

/// A third of the invocations crash, at every point in turn.
fn crashing() -> CrashPlan {
    CrashPlan::at(
        11,
        0.3,
        &[
            EnricherCrash::BeforeFirstWrite,
            EnricherCrash::AfterFirstWrite,
            EnricherCrash::BeforeAcknowledgement,
        ],
    )
}

#[tokio::test]
async fn every_invariant_holds_on_a_run_with_crashes_as_lambda_acknowledges() {
    let world = embedded_run(AckMode::AfterResponse, crashing()).await;
    let report = check(&world);
    report.assert_holds();
    assert_eq!(report.checks.len(), 4, "{report}");
    assert_eq!(world.features.len(), 3);
    assert!(world.dead_letters.len() >= 2, "{:?}", world.dead_letters);
}

#[tokio::test]
async fn a_mapping_that_acknowledges_before_the_function_runs_is_caught_losing_events() {
    // Half the invocations die at their first write: acknowledged on receipt, their
    // messages never come back.
    let dies = CrashPlan::at(3, 0.5, &[EnricherCrash::BeforeFirstWrite]);
    let world = embedded_run(AckMode::OnReceipt, dies).await;
    let report = check(&world);
    assert!(
        !report.holds(),
        "the broken mapping went unnoticed:\n{report}"
    );
    let lost = report.violations("nothing lost");
    assert!(
        lost.iter()
            .any(|v| v.contains("neither applied nor dead-lettered")),
        "{report}"
    );
    // What the lost events would have made of the items is missing from them too.
    assert!(!report.violations("features").is_empty(), "{report}");
}

#[tokio::test]
async fn each_invariant_reports_the_world_that_breaks_it() {
    let world = embedded_run(AckMode::AfterResponse, crashing()).await;

    let mut tampered = world.clone();
    if let Some(item) = tampered.features.values_mut().next() {
        item.score_sum_micros += 1;
    }
    assert_eq!(check(&tampered).violations("features").len(), 1);

    let mut lost = world.clone();
    lost.dead_letters.clear();
    lost.queue_left = 1;
    assert!(check(&lost).violations("nothing lost").len() >= 3);

    let mut undecided = world.clone();
    let dropped = undecided.decisions.remove(0);
    let violations = check(&undecided)
        .violations("one decision per change")
        .to_vec();
    assert_eq!(
        violations,
        [format!(
            "{} v{}: no decision",
            dropped.customer, dropped.version
        )]
    );
    let mut phantom = world.clone();
    phantom.decisions.push(DecisionRow {
        version: 99,
        message_id: "v000000000099".to_owned(),
        ..world.decisions[0].clone()
    });
    assert_eq!(
        check(&phantom).violations("one decision per change").len(),
        1
    );

    let mut stuck = world.clone();
    stuck
        .claims
        .push("ann@example.com/v000000000001".to_owned());
    assert_eq!(check(&stuck).violations("no stuck claim").len(), 1);

    let mut twice = world.clone();
    let change = (
        world.decisions[0].customer.clone(),
        world.decisions[0].version,
    );
    twice.bedrock = Some(BedrockLog {
        calls: [(change, vec!["timeout", "ok"])].into(),
        counters: FallbackCounters::default(),
    });
    let report = check(&twice);
    assert!(
        report.violations("Bedrock at most once per change")[0].contains("answered 2 times"),
        "{report}"
    );
}
