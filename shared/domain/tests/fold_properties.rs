//! The features are a pure function of the set of distinct events applied: any order, any
//! duplication and any split into batches gives the same item (version and the per-write
//! trigger aside). And the lifetime-value bands are exact at their boundaries.
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use referral_domain::event::{ServiceEvent, Webhook, parse_webhook_value};
use referral_domain::features::{CustomerFeatures, LifetimeValue, MemoryLimits, fold_events};
use serde_json::{Value, json};

const CITIES: &[(&str, &str)] = &[("Austin", "TX"), ("Tampa", "FL"), ("Denver", "CO")];
const TYPES: &[&str] = &["single_family", "condo", "townhouse"];

fn event_json() -> impl Strategy<Value = Value> {
    (
        0u32..4,                                // customer
        0i64..2_000,                            // minutes after the epoch below
        prop::option::of(0u32..=50),            // score in tenths
        prop::option::of(0usize..CITIES.len()), // address
        prop::option::of((0usize..TYPES.len(), 500u64..5000, 1900u16..2024)),
        prop::option::of(0u64..12), // services_count hint
        prop::option::of(prop::collection::vec("[a-z]{3,6}", 0..3)),
    )
        .prop_map(|(customer, minute, score, city, property, hint, pests)| {
            let at = Utc
                .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
                .single()
                .unwrap_or_default()
                + chrono::Duration::minutes(minute);
            let mut event = json!({
                "event_type": "service.completed",
                // Minute ties are common on purpose: they exercise the event-id tie break.
                "occurred_at": at.to_rfc3339(),
                "customer": {"email": format!("Customer{customer}@Example.com")},
            });
            if let Some(score) = score {
                event["service"] = json!({"satisfaction_score": f64::from(score) / 10.0});
            }
            if let Some(city) = city {
                event["customer"]["address"] =
                    json!({"city": CITIES[city].0, "state": CITIES[city].1});
            }
            if let Some((kind, square_feet, year)) = property {
                let mut info =
                    json!({"type": TYPES[kind], "square_feet": square_feet, "year_built": year});
                if let Some(pests) = &pests {
                    info["pest_issues"] = json!(pests);
                }
                event["property_info"] = info;
            }
            if let Some(hint) = hint {
                event["services_count"] = json!(hint);
            }
            event
        })
}

/// Distinct events with ids, then a delivery: every event at least once, some twice,
/// shuffled, split into batches.
fn scenario() -> impl Strategy<Value = (Vec<ServiceEvent>, Vec<Vec<usize>>)> {
    prop::collection::vec(event_json(), 1..40)
        .prop_flat_map(|bodies| {
            let events: Vec<ServiceEvent> = bodies
                .into_iter()
                .enumerate()
                .map(|(i, mut body)| {
                    body["event_id"] = json!(format!("evt_{i:04}"));
                    parse(&body)
                })
                .collect();
            let n = events.len();
            let deliveries = prop::collection::vec(0..n, 0..n)
                .prop_map(move |extra| (0..n).chain(extra).collect::<Vec<_>>())
                .prop_shuffle();
            (
                Just(events),
                deliveries,
                prop::collection::vec(1usize..8, 1..40),
            )
        })
        .prop_map(|(events, deliveries, sizes)| {
            let mut batches = Vec::new();
            let mut rest = deliveries.as_slice();
            for size in sizes.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let take = (*size).min(rest.len());
                batches.push(rest[..take].to_vec());
                rest = &rest[take..];
            }
            (events, batches)
        })
}

fn parse(body: &Value) -> ServiceEvent {
    match parse_webhook_value(body) {
        Ok(Webhook::ServiceCompleted(event)) => *event,
        other => panic!("generator made an unusable event: {other:?}"),
    }
}

/// Folds the batches the way the enricher does: per customer, one fold per batch.
fn fold_all(events: &[ServiceEvent], batches: &[Vec<usize>]) -> Vec<CustomerFeatures> {
    let mut items: std::collections::BTreeMap<String, CustomerFeatures> = Default::default();
    for batch in batches {
        let mut by_customer: std::collections::BTreeMap<&str, Vec<&ServiceEvent>> =
            Default::default();
        for &i in batch {
            by_customer
                .entry(&events[i].customer.email)
                .or_default()
                .push(&events[i]);
        }
        for (email, customer_events) in by_customer {
            let fold = fold_events(
                items.remove(email),
                &customer_events,
                MemoryLimits::default(),
            );
            if let Some(item) = fold.item {
                items.insert(email.to_owned(), item);
            }
        }
    }
    items.into_values().map(comparable).collect()
}

/// Version and trigger describe the writes, not the set of events.
fn comparable(mut features: CustomerFeatures) -> CustomerFeatures {
    features.version = 0;
    features.trigger_event_id = None;
    features.trigger = None;
    features
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn order_duplication_and_batching_do_not_change_features((events, batches) in scenario()) {
        let reference: Vec<Vec<usize>> = vec![(0..events.len()).collect()];
        prop_assert_eq!(fold_all(&events, &batches), fold_all(&events, &reference));
    }

    #[test]
    fn every_distinct_event_counts_once((events, batches) in scenario()) {
        let items = fold_all(&events, &batches);
        let applied: u64 = items.iter().map(|item| item.events_applied).sum();
        prop_assert_eq!(applied, events.len() as u64);
        for item in &items {
            prop_assert!(item.service_count >= item.events_applied);
            prop_assert!(item.first_seen <= item.last_updated);
        }
    }
}

fn customer_with_scores(scores: &[f64], extra_unscored: usize) -> CustomerFeatures {
    let base: DateTime<Utc> = Utc
        .with_ymd_and_hms(2026, 5, 1, 12, 0, 0)
        .single()
        .unwrap_or_default();
    let mut bodies: Vec<Value> = scores
        .iter()
        .map(|score| json!({"service": {"satisfaction_score": score}}))
        .collect();
    bodies.extend((0..extra_unscored).map(|_| json!({})));
    let events: Vec<ServiceEvent> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, mut body)| {
            body["event_id"] = json!(format!("e{i}"));
            body["event_type"] = json!("service.completed");
            body["occurred_at"] = json!((base + chrono::Duration::hours(i as i64)).to_rfc3339());
            body["customer"] = json!({"email": "ltv@example.com"});
            parse(&body)
        })
        .collect();
    let refs: Vec<&ServiceEvent> = events.iter().collect();
    fold_events(None, &refs, MemoryLimits::default())
        .into_next()
        .expect("events were applied")
}

#[test]
fn lifetime_value_bands_are_exact_at_their_boundaries() {
    let cases: &[(&[f64], usize, LifetimeValue)] = &[
        // 5 versus 6 services at a high average.
        (&[4.5, 4.5, 4.5, 4.5, 4.5], 0, LifetimeValue::Medium),
        (&[4.5, 4.5, 4.5, 4.5, 4.5, 4.5], 0, LifetimeValue::High),
        // 3.99 versus 4.0 with six services.
        (
            &[3.99, 3.99, 3.99, 3.99, 3.99, 3.99],
            0,
            LifetimeValue::Medium,
        ),
        (&[4.0, 4.0, 4.0, 4.0, 4.0, 4.0], 0, LifetimeValue::High),
        // An average of exactly 4.0 reached through sums that floats get wrong.
        (&[4.1, 3.9, 4.3, 3.7, 4.2, 3.8], 0, LifetimeValue::High),
        // 3.49 versus 3.5 with fewer than three services.
        (&[3.49], 0, LifetimeValue::Low),
        (&[3.5], 0, LifetimeValue::Medium),
        (&[3.4, 3.6], 0, LifetimeValue::Medium),
        (&[3.3, 3.69], 0, LifetimeValue::Low),
        // Three services make medium whatever the average.
        (&[1.0, 1.0, 1.0], 0, LifetimeValue::Medium),
        // No score at all: the 3.5 default makes medium; six unscored services stay medium.
        (&[], 1, LifetimeValue::Medium),
        (&[], 6, LifetimeValue::Medium),
    ];
    for (scores, unscored, expected) in cases {
        let features = customer_with_scores(scores, *unscored);
        assert_eq!(
            features.lifetime_value, *expected,
            "scores {scores:?} + {unscored} unscored"
        );
    }
}

#[test]
fn the_mean_is_exact_and_unrounded() {
    assert_eq!(
        customer_with_scores(&[4.1, 4.1, 4.1], 0).satisfaction_avg,
        4.1
    );
    assert_eq!(customer_with_scores(&[4.0, 4.5], 0).satisfaction_avg, 4.25);
    assert_eq!(
        customer_with_scores(&[5.0, 4.0, 4.0], 0).satisfaction_avg,
        13.0 / 3.0
    );
    assert_eq!(customer_with_scores(&[], 2).satisfaction_avg, 3.5);
}

#[test]
fn the_services_count_hint_stands_only_when_larger() {
    let mut body = json!({
        "event_id": "e1", "event_type": "service.completed", "occurred_at": "2026-01-01T00:00:00Z",
        "customer": {"email": "hint@example.com"}, "services_count": 8
    });
    let hinted = parse(&body);
    body["event_id"] = json!("e2");
    body["services_count"] = json!(0);
    let unhinted = parse(&body);
    let fold = fold_events(None, &[&hinted, &unhinted], MemoryLimits::default());
    assert_eq!(fold.item.as_ref().map(|f| f.service_count), Some(8));
    let fold = fold_events(None, &[&unhinted], MemoryLimits::default());
    assert_eq!(fold.item.as_ref().map(|f| f.service_count), Some(1));
}

fn daily_events(email: &str, days: i64) -> Vec<ServiceEvent> {
    let base = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    (0..days)
        .map(|i| {
            parse(&json!({
                "event_id": format!("evt_{i:02}"), "event_type": "service.completed",
                "occurred_at": (base + chrono::Duration::days(i)).to_rfc3339(),
                "customer": {"email": email},
                "service": {"satisfaction_score": 4.0}
            }))
        })
        .collect()
}

fn count(fold: &referral_domain::features::Fold, wanted: fn(&Disposition) -> bool) -> usize {
    fold.dispositions.iter().filter(|d| wanted(d)).count()
}

use referral_domain::features::Disposition;

#[test]
fn what_leaves_the_recent_entries_is_still_remembered() {
    let limits = MemoryLimits {
        span: chrono::Duration::days(5),
        keep_at_least: 2,
        keep_at_most: 100,
        ..MemoryLimits::default()
    };
    let events = daily_events("bounded@example.com", 20);
    let mut item: Option<CustomerFeatures> = None;
    for chunk in events.chunks(3) {
        let refs: Vec<&ServiceEvent> = chunk.iter().collect();
        item = fold_events(item, &refs, limits).item;
    }
    let item = item.expect("events applied");
    assert_eq!(item.events_applied, 20);
    // Days 15 to 19 are within five days of the latest (day 19); day 14 is on the line.
    assert_eq!(item.memory.len(), 5);
    assert_eq!(item.memory.pending().len(), 15);

    // Every event again, in reverse: all duplicates, the old ones found among the pending.
    let all: Vec<&ServiceEvent> = events.iter().rev().collect();
    let fold = fold_events(Some(item.clone()), &all, limits);
    assert!(!fold.changed(), "a redelivered event was applied again");
    assert_eq!(
        count(&fold, |d| matches!(d, Disposition::Duplicate { .. })),
        20
    );

    // New events, later or a little late or far below the floor, are applied, once.
    for (id, at) in [
        ("evt_late", "2026-01-18T12:00:00Z"),
        ("evt_ancient", "2025-03-01T00:00:00Z"),
    ] {
        let event = parse(&json!({
            "event_id": id, "event_type": "service.completed",
            "occurred_at": at, "customer": {"email": "bounded@example.com"}
        }));
        let fold = fold_events(Some(item.clone()), &[&event], limits);
        let next = fold.into_next().expect("a new event was refused");
        assert_eq!(next.events_applied, 21);
        let again = fold_events(Some(next), &[&event], limits);
        assert!(!again.changed(), "{id} was applied twice");
    }
}

#[test]
fn a_customer_with_a_short_history_never_meets_the_floor() {
    let window = MemoryLimits {
        span: chrono::Duration::days(1),
        keep_at_least: 16,
        keep_at_most: 100,
        ..MemoryLimits::default()
    };
    // Sixteen services, years apart in effect: all remembered.
    let events = daily_events("short@example.com", 16);
    let refs: Vec<&ServiceEvent> = events.iter().collect();
    let item = fold_events(None, &refs, window)
        .into_next()
        .expect("applied");
    assert_eq!(item.memory.floor(), None);
    let fold = fold_events(Some(item), &refs, window);
    assert_eq!(
        count(&fold, |d| matches!(d, Disposition::Duplicate { .. })),
        16
    );
}
