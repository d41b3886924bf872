//! The seeded headline scenario, against moto through the real handlers.
//!
//! 10,000 distinct events of 500 customers plus 30% duplicates (3,000 byte-for-byte
//! redeliveries), shuffled, a dozen invalid webhooks and three events of a customer whose
//! writes always fail, go on the webhook queue a window at a time (visibility 2 s, redrive
//! after 5 receives).
//! Four enrichers race on it, each with its own handler and cache; 5% of their invocations
//! crash between the DynamoDB write and the SQS acknowledgement (half right after their
//! first write lands, cutting off the writes in flight; half after every write, before the
//! delete), and their messages come back after the visibility timeout. Then the stream goes
//! to the orchestrator, ten records an invocation, retried from the failed record, bisected
//! on a crash, given up after ten retries. Bedrock answers, with a garbage answer, a 503 or
//! a model timeout now and then; throttles every call of a few invocations (the retry policy
//! hands those records back), then denies every call of the next few dozen (templates, with
//! `fallback_reason: access_denied`); one invocation crashes after its claim, one after the
//! Bedrock call (the final write fails), one after the final write. Every invariant holds.
//!
//! The default run is the same scenario at a fifth of the size (2,000 events of 100
//! customers, the stretches and faults placed as early in proportion), so `tests/run.sh`
//! stays within minutes against moto; `REFERRAL_FAULTS_LONG=1` runs the issue's 10,000
//! events of 500 customers.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use chrono::TimeZone;
use fastrand::Rng;
use futures_util::future::join_all;
use referral_domain::enricher::EnricherConfig;
use referral_domain::orchestrator::ThrottlePolicy;
use referral_tests::corpus::{Corpus, CorpusSpec};
use referral_tests::counting::FailingFor;
use referral_tests::faults::crash::MessageFault;
use referral_tests::faults::invariants::check;
use referral_tests::faults::sqs::{AckMode, CrashPlan, SqsMapping, SqsTally};
use referral_tests::faults::stream::{StreamMappingSim, StreamSettings};
use referral_tests::faults::world::sent;

use crate::bedrock::{Behaviour, Script, generator};
use crate::setup::{Orchestrate, Pipeline, Plan, changes_of, handler};

const SEED: u64 = 12;
const ENRICHERS: usize = 4;
const CRASH_RATE: f64 = 0.05;
const VISIBILITY_SECONDS: u32 = 2;
const MAX_RECEIVES: u32 = 5;
/// Webhooks on the queue at most at once (sent as the enrichers drain it).
const QUEUE_WINDOW: usize = 400;
/// Writes of this customer always fail: their events are redriven to the DLQ.
const POISONED: &str = "poisoned";

/// How big a run is, and at which orchestrator invocations Bedrock fails for a stretch
/// and the message store faults are injected (about 1.2 invocations per 10 events).
struct Scale {
    events: usize,
    customers: usize,
    throttled: std::ops::RangeInclusive<u64>,
    denied: std::ops::RangeInclusive<u64>,
    faults_from: [u64; 3],
}

fn scale() -> Scale {
    if std::env::var_os("REFERRAL_FAULTS_LONG").is_some() {
        Scale {
            events: 10_000,
            customers: 500,
            throttled: 40..=44,
            denied: 45..=74,
            faults_from: [120, 160, 200],
        }
    } else {
        Scale {
            events: 2_000,
            customers: 100,
            throttled: 8..=10,
            denied: 11..=20,
            faults_from: [25, 35, 45],
        }
    }
}

/// The webhooks: the corpus, invalid bodies, the poisoned customer's events; shuffled.
fn webhooks(scale: &Scale) -> Vec<String> {
    let corpus = Corpus::generate(CorpusSpec {
        seed: SEED,
        distinct_events: scale.events,
        duplicates: scale.events * 3 / 10,
        customers: scale.customers,
        start: chrono::Utc
            .with_ymd_and_hms(2026, 3, 1, 0, 0, 0)
            .single()
            .unwrap(),
        span: chrono::Duration::days(20),
        max_lateness: chrono::Duration::days(2),
        ..CorpusSpec::default()
    })
    .unwrap();
    let mut bodies: Vec<String> = corpus.deliveries.into_iter().map(|d| d.body).collect();
    for i in 0..12 {
        bodies.push(match i % 3 {
            0 => format!(r#"{{"event_id": "bad-{i}", "event_type": "service.completed"}}"#),
            1 => format!(
                r#"{{"event_id": "bad-{i}", "event_type": "service.completed",
                     "occurred_at": "2026-03-02T10:00:00Z", "customer": {{"email": "x@example.com"}},
                     "service": {{"satisfaction_score": 9}}}}"#
            ),
            _ => format!("not json {i}"),
        });
    }
    for i in 0..3 {
        bodies.push(
            referral_tests::event_body(
                &format!("poison-{i}"),
                &format!("{POISONED}.customer@example.com"),
                i,
                Some(3.0),
            )
            .to_string(),
        );
    }
    Rng::with_seed(SEED).shuffle(&mut bodies);
    bodies
}

#[tokio::test]
async fn seeded_run_with_crashes_throttling_and_an_outage_keeps_every_invariant() {
    let started = Instant::now();
    let scale = scale();
    let pipeline = Pipeline::new(VISIBILITY_SECONDS, MAX_RECEIVES).await;
    let bodies = webhooks(&scale);

    // Four enrichers race on the queue.
    let enrichers: Vec<_> = (0..ENRICHERS)
        .map(|_| {
            pipeline.enricher(
                FailingFor {
                    inner: pipeline.features(),
                    poisoned: POISONED,
                },
                EnricherConfig::default(),
            )
        })
        .collect();
    let source = pipeline.source();
    let mapping = SqsMapping {
        queue: &source,
        queue_arn: &pipeline.queues.arn,
        ack: AckMode::AfterResponse,
        idle_pause: Duration::from_millis(200),
    };
    let crashes = CrashPlan::new(SEED, CRASH_RATE);
    let sqs = SqsTally::default();
    let fed = AtomicBool::new(false);
    let pollers = join_all(
        enrichers
            .iter()
            .map(|enricher| mapping.poll_until_fed_and_drained(enricher, &crashes, &sqs, &fed)),
    );
    futures_util::future::join(pipeline.feed(&bodies, QUEUE_WINDOW, &fed), pollers).await;
    let enriched_at = started.elapsed();

    // The orchestrator on the stream, Bedrock failing for a stretch.
    let script = Script::new(Some(97));
    let handler = handler(
        &pipeline,
        generator(script.clone(), Duration::ZERO),
        ThrottlePolicy::RetryFor(Duration::from_secs(600)),
    );
    let plan = Plan {
        stretches: vec![
            (scale.throttled.clone(), Behaviour::Throttle),
            (scale.denied.clone(), Behaviour::Deny),
        ],
        faults: vec![
            (scale.faults_from[0], MessageFault::CrashAfterClaim),
            (scale.faults_from[1], MessageFault::FailFinalWrite),
            (scale.faults_from[2], MessageFault::CrashAfterFinalWrite),
        ],
        time_left: Some(Duration::from_secs(120)),
        ..Plan::default()
    };
    let function = Orchestrate::new(&handler, script.clone(), plan);
    let (feed, shard) = pipeline.stream().await;
    let stream = StreamMappingSim {
        feed: &feed,
        shard_id: &shard,
        failures: &pipeline.failures,
        settings: StreamSettings::default(),
    }
    .run(&function)
    .await;
    let orchestrated_at = started.elapsed();

    let log = function.bedrock_log();
    let world = pipeline
        .world(
            bodies.iter().cloned().map(sent).collect(),
            changes_of(&stream.given_up),
            Some(log.clone()),
        )
        .await;
    let verdict = check(&world);
    let injected = function.injected();
    let by_fault: BTreeMap<String, usize> =
        injected
            .iter()
            .fold(BTreeMap::new(), |mut counts, (fault, _)| {
                *counts.entry(format!("{fault:?}")).or_default() += 1;
                counts
            });
    let get = SqsTally::get;
    println!(
        "fault suite, seeded scenario (seed {SEED}):\n\
         injected:\n  \
         webhooks: {} ({} distinct events, {} duplicates, 12 invalid, 3 of a customer whose \
         writes always fail), shuffled\n  \
         enrichers: {ENRICHERS} racing; {} invocations, {} messages delivered ({} \
         redeliveries); {} crashed ({} at a write, {} before the acknowledgement); {} \
         messages reported failed; {} receives timed out\n  \
         orchestrator: {} invocations, {} crashed, {} partial failures, {} bisections; \
         Bedrock calls by behaviour {:?}; message-store faults {by_fault:?}\n\
         enricher counters: {:?}\n\
         orchestrator counters: {:?}\n\
         generator counters: {:?}\n\
         checked:\n{verdict}\
         time: enriched {:.1?}, orchestrated {:.1?}, checked {:.1?}",
        bodies.len(),
        scale.events,
        scale.events * 3 / 10,
        get(&sqs.invocations),
        get(&sqs.messages_delivered),
        get(&sqs.redeliveries),
        sqs.crashes(),
        get(&sqs.crashed_at_write),
        get(&sqs.crashed_before_ack),
        get(&sqs.reported_failed),
        get(&sqs.receive_failures),
        stream.invocations,
        stream.crashes,
        stream.partial_failures,
        stream.bisections,
        script.behaviours(),
        sqs.counters.lock().unwrap().enrich,
        stream.counters,
        log.counters,
        enriched_at,
        orchestrated_at,
        started.elapsed(),
    );
    verdict.assert_holds();

    // The faults asked for were injected, and did what they were meant to.
    assert!(get(&sqs.crashed_at_write) > 0 && get(&sqs.crashed_before_ack) > 0);
    let behaviours = script.behaviours();
    for behaviour in [
        Behaviour::Throttle,
        Behaviour::Deny,
        Behaviour::Garbage,
        Behaviour::ServerError,
        Behaviour::ModelTimeout,
    ] {
        assert!(behaviours.contains_key(&behaviour), "{behaviours:?}");
    }
    assert!(log.counters.handed_back_throttled > 0, "{:?}", log.counters);
    assert!(
        log.counters.fallback_access_denied > 0,
        "{:?}",
        log.counters
    );
    assert_eq!(
        injected.iter().map(|(fault, _)| *fault).collect::<Vec<_>>(),
        [
            MessageFault::CrashAfterClaim,
            MessageFault::FailFinalWrite,
            MessageFault::CrashAfterFinalWrite
        ]
    );
    // The change whose final write failed was answered by Bedrock once, and recorded.
    let (_, failed_write) = &injected[1];
    let version = failed_write
        .message_id
        .trim_start_matches('v')
        .parse()
        .unwrap();
    let calls = &log.calls[&(failed_write.customer_email.clone(), version)];
    assert_eq!(calls.iter().filter(|call| **call != "throttled").count(), 1);
    assert!(stream.given_up.is_empty(), "{:?}", stream.given_up.len());
    // The poisoned customer's events went to the DLQ by the queue's redrive.
    let redriven = world
        .dead_letters
        .iter()
        .filter(|letter| letter.reason.as_deref() == Some("redriven"))
        .count();
    assert!(redriven >= 3, "{:?}", world.dead_letters);
}
