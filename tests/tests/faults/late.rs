//! Exactly once at any age, against moto through the real handlers: events months and
//! years late, a burst far past what an item keeps, two racing enrichers killed between
//! any two of their writes (feature items and archive buckets alike), and then every
//! webhook delivered again. The item memory is made tiny so that a few hundred events
//! exercise every path (pending entries, archive reads, bucket splits) that a real
//! customer reaches after thousands.

use std::time::{Duration, Instant};

use chrono::TimeZone;
use fastrand::Rng;
use futures_util::future::join_all;
use referral_domain::enricher::EnricherConfig;
use referral_domain::features::MemoryLimits;
use referral_tests::corpus::{Corpus, CorpusSpec, DeliveryOrder};
use referral_tests::faults::crash::WritePoint;
use referral_tests::faults::invariants::check_enrichment;
use referral_tests::faults::sqs::{AckMode, CrashPlan, EnricherCrash, SqsMapping, SqsTally};
use referral_tests::faults::world::sent;

use crate::setup::Pipeline;

const SEED: u64 = 18;
const ENRICHERS: usize = 2;
/// Every write of an invocation, before and after it lands, up to the ninth.
const KILL_POINTS: &[EnricherCrash] = &{
    let mut points = [EnricherCrash::BeforeAcknowledgement; 18];
    let mut nth = 0;
    while nth < 9 {
        points[2 * nth] = EnricherCrash::AtWrite {
            nth,
            point: WritePoint::Before,
        };
        points[2 * nth + 1] = EnricherCrash::AtWrite {
            nth,
            point: WritePoint::After,
        };
        nth += 1;
    }
    points
};

fn tiny_memory() -> MemoryLimits {
    MemoryLimits {
        span: chrono::Duration::days(7),
        keep_at_least: 4,
        keep_at_most: 24,
        archive_at: 6,
        pending_most: 12,
        bucket_target: 8,
    }
}

/// Two years of 40 customers in random order, and one customer's 400 services of the same
/// two years, shuffled; with their duplicates.
fn history() -> Vec<String> {
    let start = chrono::Utc
        .with_ymd_and_hms(2024, 6, 1, 0, 0, 0)
        .single()
        .unwrap();
    let spec = |seed, distinct_events, customers| CorpusSpec {
        seed,
        distinct_events,
        duplicates: distinct_events / 4,
        customers,
        start,
        span: chrono::Duration::days(730),
        order: DeliveryOrder::Shuffled,
        ..CorpusSpec::default()
    };
    let many = Corpus::generate(spec(SEED, 300, 40)).unwrap();
    let burst = Corpus::generate(CorpusSpec {
        // Its own customer names: the corpus names customers by index.
        seed: SEED + 1,
        ..spec(SEED + 1, 400, 1)
    })
    .unwrap();
    let mut bodies: Vec<String> = many
        .deliveries
        .into_iter()
        .chain(burst.deliveries.into_iter().map(|mut delivery| {
            delivery.body = delivery.body.replace("@", ".burst@");
            delivery
        }))
        .map(|delivery| delivery.body)
        .collect();
    Rng::with_seed(SEED).shuffle(&mut bodies);
    bodies
}

#[tokio::test]
async fn years_late_events_with_kills_between_any_two_writes_are_applied_exactly_once() {
    let started = Instant::now();
    let pipeline = Pipeline::new(2, 50).await;
    let config = EnricherConfig {
        memory: tiny_memory(),
        ..EnricherConfig::default()
    };
    let enrichers: Vec<_> = (0..ENRICHERS)
        .map(|_| pipeline.enricher(pipeline.features(), config))
        .collect();
    let source = pipeline.source();
    let mapping = SqsMapping {
        queue: &source,
        queue_arn: &pipeline.queues.arn,
        ack: AckMode::AfterResponse,
        idle_pause: Duration::from_millis(200),
    };
    let crashes = CrashPlan::at(SEED, 0.25, KILL_POINTS);
    let sqs = SqsTally::default();

    let first = history();
    // Then everything again, in another order: a replay of the whole history.
    let mut again = first.clone();
    Rng::with_seed(SEED + 2).shuffle(&mut again);
    for round in [&first, &again] {
        pipeline.send(round).await;
        join_all(
            enrichers
                .iter()
                .map(|enricher| mapping.poll_until_drained(enricher, &crashes, &sqs)),
        )
        .await;
    }

    let mut world = pipeline
        .world(
            first.iter().chain(&again).cloned().map(sent).collect(),
            Default::default(),
            None,
        )
        .await;
    world.memory_limits = tiny_memory();
    let verdict = check_enrichment(&world);
    let counters = sqs.counters.lock().unwrap().enrich;
    let buckets: usize = world.archive.values().map(|b| b.len()).sum();
    println!(
        "late events: {} webhooks ({} sent twice), {ENRICHERS} enrichers, {} invocations, \
         {} crashed ({} at a write); {} archive buckets; counters {counters:?}\n{verdict}\
         time {:.1?}",
        first.len() + again.len(),
        first.len(),
        SqsTally::get(&sqs.invocations),
        sqs.crashes(),
        SqsTally::get(&sqs.crashed_at_write),
        buckets,
        started.elapsed(),
    );
    verdict.assert_holds();
    // The paths this scenario is for were taken, and the kills landed between writes.
    assert!(SqsTally::get(&sqs.crashed_at_write) > 10, "too few kills");
    assert!(counters.applied_late > 100, "{counters:?}");
    assert!(counters.archive_splits > 5, "{counters:?}");
    assert_eq!(counters.unprovable, 0, "{counters:?}");
    assert_eq!(counters.conflicting_duplicate, 0, "{counters:?}");
}
