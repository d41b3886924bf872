//! One regression scenario per orchestrator hole found in review, against moto through the real
//! handlers and the same invariants as the headline run:
//!
//! - the invocation's deadline: near it no record is started, the rest are reported from
//!   the first untaken sequence number, and the mapping's retries finish them;
//! - one stuck record (a customer whose claims always fail) goes to the stream's failure
//!   destination after the mapping's retries, and every other customer, before and after
//!   it in the shard, gets one message per change on the first delivery.

use std::time::{Duration, Instant};

use referral_domain::enricher::EnricherConfig;
use referral_domain::orchestrator::ThrottlePolicy;
use referral_domain::ports::{FeatureStore, MessageStore};
use referral_tests::faults::invariants::check;
use referral_tests::faults::sqs::{AckMode, CrashPlan, SqsMapping, SqsTally};
use referral_tests::faults::stream::{StreamMappingSim, StreamReport, StreamSettings};
use referral_tests::faults::world::sent;

use crate::bedrock::{Script, generator};
use crate::setup::{Handler, Orchestrate, Pipeline, Plan, STUCK, changes_of, handler};

/// `events` events of `customers` customers (one of them `stuck...` when asked), spread
/// over a day.
fn bodies(events: usize, customers: usize, with_stuck: bool) -> Vec<String> {
    (0..events)
        .map(|i| {
            let customer = i % customers;
            let email = if with_stuck && customer == 0 {
                format!("{STUCK}.customer@example.com")
            } else {
                format!("c{customer:02}@example.com")
            };
            referral_tests::event_body(&format!("evt-{i:03}"), &email, i as i64, Some(4.0))
                .to_string()
        })
        .collect()
}

/// Enriches `bodies` (one enricher, no crash), then runs the stream through `handler` with
/// `plan`; checks every invariant and returns the stream mapping's report.
async fn scenario(
    name: &str,
    pipeline: &Pipeline,
    bodies: &[String],
    handler: &Handler,
    script: std::sync::Arc<Script>,
    plan: Plan,
) -> StreamReport {
    let started = Instant::now();
    pipeline.send(bodies).await;
    let enricher = pipeline.enricher(pipeline.features(), EnricherConfig::default());
    let source = pipeline.source();
    SqsMapping {
        queue: &source,
        queue_arn: &pipeline.queues.arn,
        ack: AckMode::AfterResponse,
        idle_pause: Duration::from_millis(200),
    }
    .poll_until_drained(&enricher, &CrashPlan::none(), &SqsTally::default())
    .await;
    let function = Orchestrate::new(handler, script, plan);
    let (feed, shard) = pipeline.stream().await;
    let stream = StreamMappingSim {
        feed: &feed,
        shard_id: &shard,
        failures: &pipeline.failures,
        settings: StreamSettings::default(),
    }
    .run(&function)
    .await;
    let world = pipeline
        .world(
            bodies.iter().cloned().map(sent).collect(),
            changes_of(&stream.given_up),
            Some(function.bedrock_log()),
        )
        .await;
    let verdict = check(&world);
    println!(
        "fault suite, {name}: {} events; orchestrator: {} invocations, {} partial failures, \
         {} records given up; counters {:?}\nchecked:\n{verdict}time: {:.1?}",
        bodies.len(),
        stream.invocations,
        stream.partial_failures,
        stream.given_up.len(),
        stream.counters,
        started.elapsed(),
    );
    verdict.assert_holds();
    stream
}

#[tokio::test]
async fn near_the_deadline_records_are_left_for_the_retry_and_none_is_lost() {
    let pipeline = Pipeline::new(30, 5).await;
    let bodies = bodies(60, 6, false);
    let script = Script::new(None);
    // Each model call takes 100 ms and a record must not start within 300 ms of the
    // deadline; an invocation has 650 ms: a few records each, never a batch of ten.
    let handler = handler(
        &pipeline,
        generator(script.clone(), Duration::from_millis(100)),
        ThrottlePolicy::FallBack,
    )
    .with_deadline_margin(Duration::from_millis(300));
    let plan = Plan {
        time_left: Some(Duration::from_millis(650)),
        ..Plan::default()
    };
    let stream = scenario("deadline", &pipeline, &bodies, &handler, script, plan).await;
    assert!(stream.counters.not_attempted > 0, "{:?}", stream.counters);
    assert!(stream.partial_failures > 0);
    assert!(stream.given_up.is_empty(), "{}", stream.given_up.len());
}

#[tokio::test]
async fn a_stuck_customer_goes_to_the_failure_destination_and_holds_up_no_one_else() {
    let pipeline = Pipeline::new(30, 5).await;
    let bodies = bodies(40, 4, true);
    let script = Script::new(None);
    let handler = handler(
        &pipeline,
        generator(script.clone(), Duration::ZERO),
        ThrottlePolicy::FallBack,
    );
    let stream = scenario(
        "stuck customer",
        &pipeline,
        &bodies,
        &handler,
        script,
        Plan::default(),
    )
    .await;
    // The failure destination names the stuck piece of the shard, the others' records in
    // it included; those were decided on their first delivery all the same.
    let given_up = changes_of(&stream.given_up);
    assert!(given_up.iter().any(|(email, _)| email.contains(STUCK)));
    let messages = pipeline.messages();
    let features = pipeline.features();
    assert!(
        messages
            .list(&format!("{STUCK}.customer@example.com"))
            .await
            .unwrap()
            .is_empty()
    );
    for customer in 1..4 {
        let email = format!("c{customer:02}@example.com");
        let version = features.load(&email).await.unwrap().unwrap().version;
        assert_eq!(
            messages.list(&email).await.unwrap().len() as u64,
            version,
            "{email}: one message per change"
        );
    }
}
