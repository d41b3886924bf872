//! Exactly once at any age, on the embedded adapters through the real enricher core: events
//! years late, redelivered after any delay, bursts far past what an item keeps, cold caches
//! and a second execution environment racing the first, and invocations killed between any
//! two of their writes. Whatever happens, every distinct event is applied exactly once and
//! every customer's item is the fold of its events. The limits are tiny, so that every path
//! (pending entries, archive reads and writes, bucket splits) is taken in a few events.
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use proptest::prelude::*;
use referral_domain::enricher::{EnrichCounters, Enricher, EnricherConfig, QueuedWebhook};
use referral_domain::event::ServiceEvent;
use referral_domain::features::{CustomerFeatures, IdHash, MemoryLimits};
use referral_domain::ports::{EventArchive, FeatureStore};
use referral_local::embedded::{EmbeddedArchive, EmbeddedFeatureStore};
use referral_tests::faults::crash::{Crash, CrashingArchive, CrashingStore, Tripwire, WritePoint};
use referral_tests::{comparable, expected_features, service_event};
use serde_json::json;

const CUSTOMERS: [&str; 3] = ["ann@example.com", "bob@example.com", "cy@example.com"];

fn body(id: usize, customer: usize, minutes: i64) -> String {
    let at =
        Utc.with_ymd_and_hms(2021, 1, 1, 0, 0, 0).single().unwrap() + Duration::minutes(minutes);
    json!({
        "event_id": format!("evt_{id:05}"),
        "event_type": "service.completed",
        "occurred_at": at.to_rfc3339(),
        "customer": {"email": CUSTOMERS[customer], "address": {"city": "Austin", "state": "TX"}},
        "service": {"satisfaction_score": (id % 6) as f64 * 0.8}
    })
    .to_string()
}

fn tiny_limits(span_hours: i64, keep_at_least: usize, keep_at_most: usize) -> MemoryLimits {
    MemoryLimits {
        span: Duration::hours(span_hours),
        keep_at_least,
        keep_at_most,
        archive_at: 2,
        pending_most: 4,
        bucket_target: 2,
    }
}

/// One execution environment: its own enricher (and cache) over the shared tables, its
/// writes through a tripwire.
struct Environment<'a> {
    enricher:
        Enricher<CrashingStore<&'a EmbeddedFeatureStore>, CrashingArchive<&'a EmbeddedArchive>>,
    tripwire: Arc<Tripwire>,
}

impl<'a> Environment<'a> {
    fn new(
        store: &'a EmbeddedFeatureStore,
        archive: &'a EmbeddedArchive,
        config: EnricherConfig,
    ) -> Self {
        let tripwire = Tripwire::new();
        Environment {
            enricher: Enricher::new(
                CrashingStore::with_tripwire(store, Arc::clone(&tripwire)),
                CrashingArchive::new(archive, Arc::clone(&tripwire)),
                config,
            ),
            tripwire,
        }
    }

    /// Runs one batch, killed at write `crash_at` if given; `None` when it was killed (its
    /// messages are then delivered again), else the batch's counters.
    async fn invoke(
        &self,
        bodies: &[String],
        crash_at: Option<(usize, WritePoint)>,
    ) -> Option<EnrichCounters> {
        let ids: Vec<String> = (0..bodies.len()).map(|i| format!("m{i}")).collect();
        let batch: Vec<QueuedWebhook<'_>> = bodies
            .iter()
            .zip(&ids)
            .map(|(body, id)| QueuedWebhook {
                message_id: id,
                body,
                trace: None,
            })
            .collect();
        let crash = Crash::new();
        if let Some((nth, point)) = crash_at {
            self.tripwire.arm(point, nth, Arc::clone(&crash));
        }
        let report = crash.run(self.enricher.process(&batch, Utc::now())).await;
        self.tripwire.disarm();
        let report = report?;
        // A failed message comes back, as SQS would deliver it again.
        assert_eq!(
            report.failed().count(),
            0,
            "{:?}",
            report.failed().collect::<Vec<_>>()
        );
        Some(report.counters)
    }
}

/// Every event once more, by an environment with nothing cached: what the archive lost
/// from view would be applied again, and `assert_exact` would see it counted twice.
async fn redeliver_everything(
    store: &EmbeddedFeatureStore,
    archive: &EmbeddedArchive,
    config: EnricherConfig,
    events: &BTreeMap<usize, String>,
) {
    let cold = Environment::new(store, archive, config);
    let bodies: Vec<String> = events.values().cloned().collect();
    for batch in bodies.chunks(7) {
        let counters = cold.invoke(batch, None).await.unwrap();
        assert_eq!(counters.applied, 0, "an applied event was applied again");
    }
}

/// What every customer's item must be, and that the stores say so.
async fn assert_exact(
    store: &EmbeddedFeatureStore,
    archive: &EmbeddedArchive,
    events: &BTreeMap<usize, String>,
) {
    let distinct: Vec<ServiceEvent> = events
        .values()
        .map(|body| service_event(&serde_json::from_str(body).unwrap()))
        .collect();
    for (email, expected) in expected_features(&distinct, MemoryLimits::default()) {
        let stored = store.load(&email).await.unwrap().expect("an item");
        assert_eq!(
            stored.events_applied, expected.events_applied,
            "{email}: {}",
            stored.memory
        );
        assert_eq!(comparable(stored.clone()), comparable(expected), "{email}");
        // Each applied id is in the item or in the bucket its layout names.
        let buckets: BTreeMap<u32, Vec<_>> =
            archive.buckets(&email).await.unwrap().into_iter().collect();
        for event in distinct
            .iter()
            .filter(|event| event.customer.email == email)
        {
            assert!(
                findable(&stored, &buckets, &event.event_id),
                "{} of {email} is nowhere",
                event.event_id
            );
        }
    }
}

fn findable(
    item: &CustomerFeatures,
    buckets: &BTreeMap<u32, Vec<referral_domain::features::ArchivedEvent>>,
    event_id: &str,
) -> bool {
    let id = IdHash::of(event_id);
    item.memory.remembers(event_id)
        || buckets
            .get(&item.memory.layout().bucket_of(id))
            .is_some_and(|bucket| bucket.iter().any(|archived| archived.id == id))
}

#[tokio::test]
async fn years_of_shuffled_history_and_redeliveries_are_applied_once() {
    let store = EmbeddedFeatureStore::new();
    let archive = EmbeddedArchive::new();
    let config = EnricherConfig {
        memory: tiny_limits(48, 2, 6),
        max_events_per_write: 3,
        ..EnricherConfig::default()
    };
    let environment = Environment::new(&store, &archive, config);
    let mut rng = fastrand::Rng::with_seed(7);
    // 300 events of three customers over four years, delivered in random order, each twice.
    let events: BTreeMap<usize, String> = (0..300)
        .map(|id| (id, body(id, id % 3, rng.i64(0..4 * 365 * 1440))))
        .collect();
    let mut deliveries: Vec<String> = events.values().chain(events.values()).cloned().collect();
    rng.shuffle(&mut deliveries);
    let mut totals = EnrichCounters::default();
    for batch in deliveries.chunks(10) {
        totals.add(&environment.invoke(batch, None).await.unwrap());
    }
    assert_eq!((totals.applied, totals.duplicate), (300, 300));
    assert_eq!(totals.unprovable + totals.rejected + totals.failed, 0);
    assert!(
        totals.applied_late > 0 && totals.archive_reads > 0,
        "{totals:?}"
    );
    assert!(
        totals.archive_splits > 0,
        "the archive never grew: {totals:?}"
    );
    assert_exact(&store, &archive, &events).await;
}

#[tokio::test]
async fn a_burst_far_past_what_an_item_keeps_is_applied_once_and_caught_when_redelivered() {
    let store = EmbeddedFeatureStore::new();
    let archive = EmbeddedArchive::new();
    let config = EnricherConfig {
        memory: tiny_limits(24, 4, 16),
        max_events_per_write: 8,
        ..EnricherConfig::default()
    };
    let environment = Environment::new(&store, &archive, config);
    // 2,000 events in one minute: all in one batch of the embedded runner's size.
    let events: BTreeMap<usize, String> = (0..2000).map(|id| (id, body(id, 0, 0))).collect();
    let bodies: Vec<String> = events.values().cloned().collect();
    let mut totals = EnrichCounters::default();
    for batch in bodies.chunks(100) {
        totals.add(&environment.invoke(batch, None).await.unwrap());
    }
    assert_eq!(totals.applied, 2000);
    let item = store.load(CUSTOMERS[0]).await.unwrap().unwrap();
    assert!(
        item.memory.len() <= 16 && item.memory.pending().len() <= 4 + 8,
        "{}",
        item.memory
    );
    // Redelivered by a second environment with nothing cached.
    let cold = Environment::new(&store, &archive, config);
    let mut again = EnrichCounters::default();
    for batch in bodies.chunks(100) {
        again.add(&cold.invoke(batch, None).await.unwrap());
    }
    assert_eq!((again.applied, again.duplicate), (0, 2000));
    // Only the cold cache's one blind write, refused with the current item.
    assert_eq!((again.store_writes, again.conflicts), (1, 1));
    assert_exact(&store, &archive, &events).await;
}

/// The late path's writes, one invocation's worth: archive the due pending entries, copy a
/// split's movers, write the item, clean up the split. Killed before and after each of them
/// in turn, and delivered again: never lost, never counted twice.
#[tokio::test]
async fn a_crash_between_any_two_writes_of_the_late_path_loses_and_doubles_nothing() {
    let config = EnricherConfig {
        memory: tiny_limits(1, 0, 2),
        max_events_per_write: 4,
        ..EnricherConfig::default()
    };
    let history: BTreeMap<usize, String> = (0..40)
        .map(|id| (id, body(id, 0, id as i64 * 600)))
        .collect();
    let late: BTreeMap<usize, String> = (100..104)
        .map(|id| (id, body(id, 0, (id as i64 - 100) * 601 + 7)))
        .collect();
    let late_batch: Vec<String> = late
        .values()
        .chain(history.values().take(3))
        .cloned()
        .collect();
    let mut all = history.clone();
    all.extend(late.clone());
    let mut writes_seen = 0;
    for nth in 0.. {
        for point in [WritePoint::Before, WritePoint::After] {
            let store = EmbeddedFeatureStore::new();
            let archive = EmbeddedArchive::new();
            let environment = Environment::new(&store, &archive, config);
            let bodies: Vec<String> = history.values().cloned().collect();
            for batch in bodies.chunks(4) {
                environment.invoke(batch, None).await.unwrap();
            }
            let survived = environment.invoke(&late_batch, Some((nth, point))).await;
            writes_seen = writes_seen.max(environment.tripwire.writes());
            // Delivered again, by the environment that crashed or by a cold one.
            let retry = if nth % 2 == 0 {
                environment
            } else {
                Environment::new(&store, &archive, config)
            };
            retry.invoke(&late_batch, None).await.unwrap();
            redeliver_everything(&store, &archive, config, &all).await;
            assert_exact(&store, &archive, &all).await;
            if let Some(counters) = survived.filter(|_| point == WritePoint::After) {
                // Every kind of write of the late path was among those killed.
                assert!(counters.applied_late > 0, "{counters:?}");
                assert!(
                    counters.archive_splits > 0 && counters.archive_writes >= 3,
                    "{counters:?}"
                );
                assert_eq!(nth, writes_seen, "{counters:?}");
                return;
            }
        }
    }
    unreachable!("{writes_seen}");
}

#[derive(Debug, Clone)]
struct Scenario {
    /// (customer, minutes) per distinct event.
    events: Vec<(usize, i64)>,
    /// Indices into `events`, every event at least once, shuffled.
    deliveries: Vec<usize>,
    batch_sizes: Vec<usize>,
    /// Per batch: which environment runs it, and whether (and where) it is killed.
    runs: Vec<(bool, Option<(usize, bool)>)>,
    limits: (i64, usize, usize),
    per_write: usize,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    prop::collection::vec((0usize..3, 0i64..3 * 365 * 1440), 1..80)
        .prop_flat_map(|events| {
            let n = events.len();
            let deliveries = prop::collection::vec(0..n, 0..n)
                .prop_map(move |extra| (0..n).chain(extra).collect::<Vec<_>>())
                .prop_shuffle();
            (
                Just(events),
                deliveries,
                prop::collection::vec(1usize..12, 1..20),
                prop::collection::vec(
                    (
                        any::<bool>(),
                        prop::option::weighted(0.2, (0usize..8, any::<bool>())),
                    ),
                    1..40,
                ),
                (0i64..72, 0usize..4, 1usize..8),
                1usize..6,
            )
        })
        .prop_map(
            |(events, deliveries, batch_sizes, runs, limits, per_write)| Scenario {
                events,
                deliveries,
                batch_sizes,
                runs,
                limits,
                per_write,
            },
        )
}

async fn play(scenario: Scenario) {
    let store = EmbeddedFeatureStore::new();
    let archive = EmbeddedArchive::new();
    let (span, at_least, at_most) = scenario.limits;
    let config = EnricherConfig {
        memory: tiny_limits(span, at_least, at_least + at_most),
        max_events_per_write: scenario.per_write,
        ..EnricherConfig::default()
    };
    let environments = [
        Environment::new(&store, &archive, config),
        Environment::new(&store, &archive, config),
    ];
    let events: BTreeMap<usize, String> = scenario
        .events
        .iter()
        .enumerate()
        .map(|(id, (customer, minutes))| (id, body(id, *customer, *minutes)))
        .collect();
    let mut queue: VecDeque<Vec<String>> = VecDeque::new();
    let mut rest = scenario.deliveries.as_slice();
    for size in scenario.batch_sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let take = (*size).min(rest.len());
        queue.push_back(rest[..take].iter().map(|&i| events[&i].clone()).collect());
        rest = &rest[take..];
    }
    let mut turn = 0;
    while let Some(batch) = queue.pop_front() {
        let (second, crash) = scenario.runs[turn % scenario.runs.len()];
        turn += 1;
        // A batch crashes at most a few times, as SQS redrives after its receive count.
        let crash = crash.filter(|_| turn < 200).map(|(nth, after)| {
            (
                nth,
                if after {
                    WritePoint::After
                } else {
                    WritePoint::Before
                },
            )
        });
        if environments[usize::from(second)]
            .invoke(&batch, crash)
            .await
            .is_none()
        {
            queue.push_back(batch);
        }
    }
    redeliver_everything(&store, &archive, config, &events).await;
    assert_exact(&store, &archive, &events).await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    #[test]
    fn any_order_batching_race_or_crash_applies_each_event_once(scenario in scenario()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        runtime.block_on(play(scenario));
    }
}
