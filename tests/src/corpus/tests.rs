use std::collections::{BTreeMap, HashMap};

use referral_domain::event::{Webhook, parse_webhook};
use serde_json::Value;

use super::*;

fn small(seed: u64) -> CorpusSpec {
    CorpusSpec {
        seed,
        distinct_events: 300,
        duplicates: 90,
        customers: 40,
        ..CorpusSpec::default()
    }
}

/// Each delivery's body parses as the service event the delivery claims to be.
fn assert_bodies_match(corpus: &Corpus) {
    for delivery in &corpus.deliveries {
        let Ok(Webhook::ServiceCompleted(event)) = parse_webhook(&delivery.body) else {
            panic!("refused: {}", delivery.body);
        };
        assert_eq!(*event.event_id, delivery.event_id);
        assert_eq!(event.customer.email, delivery.customer);
        assert_eq!(event.occurred_at, delivery.occurred_at);
    }
}

/// Duplicates repeat an earlier first delivery's exact body, and come after it.
fn assert_duplicates_follow_originals(corpus: &Corpus) {
    let mut originals: HashMap<&str, &Delivery> = HashMap::new();
    for delivery in &corpus.deliveries {
        if delivery.is_duplicate {
            let original = originals
                .get(delivery.event_id.as_str())
                .unwrap_or_else(|| panic!("duplicate before its original: {}", delivery.event_id));
            assert_eq!(original.body, delivery.body);
            assert!(delivery.deliver_at > original.deliver_at);
        } else {
            assert!(originals.insert(&delivery.event_id, delivery).is_none());
        }
    }
}

fn assert_sorted_and_late_at_most(corpus: &Corpus, lateness: Duration) {
    let mut latest: HashMap<&str, DateTime<Utc>> = HashMap::new();
    for pair in corpus.deliveries.windows(2) {
        assert!(pair[0].deliver_at <= pair[1].deliver_at);
    }
    for delivery in corpus.deliveries.iter().filter(|d| !d.is_duplicate) {
        let late = delivery.deliver_at - delivery.occurred_at;
        assert!(late >= Duration::zero() && late <= lateness, "{late}");
        let seen = latest
            .entry(&delivery.customer)
            .or_insert(delivery.occurred_at);
        assert!(
            delivery.occurred_at >= *seen - lateness,
            "out of order beyond the bound"
        );
        *seen = (*seen).max(delivery.occurred_at);
    }
}

#[test]
fn the_same_seed_gives_the_same_bytes_and_another_seed_does_not() {
    let a = Corpus::generate(small(7)).unwrap();
    let b = Corpus::generate(small(7)).unwrap();
    let c = Corpus::generate(small(8)).unwrap();
    assert_eq!(a, b);
    assert_ne!(a.deliveries, c.deliveries);
}

#[test]
fn the_issue_shape_has_the_reference_figures() {
    let corpus = Corpus::issue_shape();
    let stats = corpus.stats();
    assert_eq!(
        (
            stats.deliveries,
            stats.distinct,
            stats.duplicates,
            stats.customers
        ),
        (1_950, 1_500, 450, 250)
    );
    assert_eq!((stats.batch_size, stats.batches), (10, 195));
    assert_eq!(
        corpus.batches().map(<[Delivery]>::len).sum::<usize>(),
        1_950
    );
    // A long tail: the top customer has a sixth of all events, most have one to four.
    assert_eq!(stats.top_customer_events, 206);
    let mut per_customer: BTreeMap<&str, usize> = BTreeMap::new();
    for delivery in corpus.deliveries.iter().filter(|d| !d.is_duplicate) {
        *per_customer.entry(&delivery.customer).or_default() += 1;
    }
    let few = per_customer.values().filter(|&&n| n <= 4).count();
    assert!(few > 150, "{few}");
    assert!(stats.much_later_duplicates > 20 && stats.much_later_duplicates < 90);
    assert!(stats.out_of_order > 0);
    assert_bodies_match(&corpus);
    assert_duplicates_follow_originals(&corpus);
    assert_sorted_and_late_at_most(&corpus, corpus.spec.max_lateness);
}

#[test]
fn bodies_are_fixture_sized_with_realistic_optional_fields() {
    let corpus = Corpus::issue_shape();
    let stats = corpus.stats();
    assert!(
        (380.0..520.0).contains(&stats.body_bytes_mean),
        "{}",
        stats.body_bytes_mean
    );
    let sizes: Vec<usize> = corpus.deliveries.iter().map(|d| d.body.len()).collect();
    let in_range = sizes.iter().filter(|&&n| (300..=600).contains(&n)).count();
    assert!(
        in_range * 100 >= sizes.len() * 95,
        "{in_range} of {}",
        sizes.len()
    );

    let bodies: Vec<Value> = corpus
        .deliveries
        .iter()
        .filter(|d| !d.is_duplicate)
        .map(|d| serde_json::from_str(&d.body).unwrap())
        .collect();
    let absent = |path: &str| bodies.iter().filter(|b| b.pointer(path).is_none()).count();
    for path in [
        "/service/satisfaction_score",
        "/customer/name",
        "/customer/address",
        "/property_info",
        "/services_count",
    ] {
        let missing = absent(path);
        assert!(missing > 0 && missing < bodies.len(), "{path}: {missing}");
    }
    for score in bodies
        .iter()
        .filter_map(|b| b.pointer("/service/satisfaction_score"))
    {
        let tenths = score.as_f64().unwrap() * 10.0;
        assert!((0.0..=50.0).contains(&tenths) && (tenths - tenths.round()).abs() < 1e-9);
    }
    let mixed_case = bodies
        .iter()
        .filter(|b| {
            b["customer"]["email"]
                .as_str()
                .unwrap()
                .starts_with(char::is_uppercase)
        })
        .count();
    assert!(mixed_case > 0);
}

#[test]
fn a_customers_events_occur_in_increasing_order_within_the_span() {
    let corpus = Corpus::generate(small(3)).unwrap();
    let spec = &corpus.spec;
    let mut by_customer: BTreeMap<&str, Vec<&Delivery>> = BTreeMap::new();
    for delivery in corpus.deliveries.iter().filter(|d| !d.is_duplicate) {
        by_customer
            .entry(&delivery.customer)
            .or_default()
            .push(delivery);
    }
    for events in by_customer.values_mut() {
        events.sort_by_key(|d| d.occurred_at);
        for pair in events.windows(2) {
            assert!(pair[0].occurred_at < pair[1].occurred_at);
            // Event ids are ULIDs of the occurrence time, so they sort the same way.
            assert!(pair[0].event_id < pair[1].event_id);
        }
        for event in events.iter() {
            assert!(event.occurred_at >= spec.start && event.occurred_at < spec.start + spec.span);
        }
    }
    assert_sorted_and_late_at_most(&corpus, spec.max_lateness);
}

#[test]
fn the_heavy_customer_is_one_long_late_and_redelivered_history() {
    let corpus = Corpus::heavy_customer();
    let stats = corpus.stats();
    assert_eq!(
        (
            stats.deliveries,
            stats.distinct,
            stats.duplicates,
            stats.customers
        ),
        (26_000, 20_000, 6_000, 1)
    );
    assert_eq!((stats.top_customer_events, stats.batches), (20_000, 2_600));
    assert_sorted_and_late_at_most(&corpus, Duration::days(7));
    assert_duplicates_follow_originals(&corpus);
    assert!(stats.out_of_order > 1_000, "{}", stats.out_of_order);
    let first = corpus
        .deliveries
        .iter()
        .map(|d| d.occurred_at)
        .min()
        .unwrap();
    let last = corpus
        .deliveries
        .iter()
        .map(|d| d.occurred_at)
        .max()
        .unwrap();
    assert!(last - first > Duration::days(5 * 365 - 2));
    // Some redeliveries come more than a week after the original, none beyond 14 days.
    let mut original_at: HashMap<&str, DateTime<Utc>> = HashMap::new();
    let mut beyond_a_week = 0;
    for delivery in &corpus.deliveries {
        match original_at.get(delivery.event_id.as_str()) {
            Some(&at) => {
                let delay = delivery.deliver_at - at;
                assert!(delay <= Duration::days(14));
                beyond_a_week += usize::from(delay > Duration::days(7));
            }
            None => {
                original_at.insert(&delivery.event_id, delivery.deliver_at);
            }
        }
    }
    assert!(beyond_a_week > 100, "{beyond_a_week}");
    assert!((1_000..1_400).contains(&stats.much_later_duplicates));
    assert_bodies_match(&corpus);
}

#[test]
fn jsonl_has_one_body_per_line_in_delivery_order() {
    let corpus = Corpus::generate(small(5)).unwrap();
    let mut out = Vec::new();
    corpus.write_jsonl(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), corpus.deliveries.len());
    assert!(
        lines
            .iter()
            .zip(&corpus.deliveries)
            .all(|(l, d)| *l == d.body)
    );
    let cut: Vec<usize> = batches(&corpus.deliveries, 7)
        .map(<[Delivery]>::len)
        .collect();
    assert_eq!(cut.len(), 390usize.div_ceil(7));
    assert_eq!(cut.last(), Some(&(390 % 7)));
    assert_eq!(batches(&corpus.deliveries, 0).len(), 390);
}

#[test]
fn the_tail_is_shared_out_exactly() {
    let counts = events_per_customer(1_500, 250, 1.0);
    assert_eq!(counts.iter().sum::<usize>(), 1_500);
    assert!(counts.windows(2).all(|w| w[0] >= w[1]));
    // The rank-250 quota is 0.8 of an event beyond the first: rounded up by its remainder.
    assert_eq!(counts.last(), Some(&2));
    let even = events_per_customer(100, 10, 0.0);
    assert!(even.iter().all(|&n| n == 10));
    let steep = events_per_customer(1_000, 100, 2.0);
    assert!(steep[0] > 500);
}

#[test]
fn impossible_specs_are_refused() {
    let refused = |spec: CorpusSpec| Corpus::generate(spec).unwrap_err();
    let base = small(1);
    assert!(matches!(
        refused(CorpusSpec {
            customers: 0,
            ..base.clone()
        }),
        CorpusError::Customers { .. }
    ));
    assert!(matches!(
        refused(CorpusSpec {
            customers: 301,
            ..base.clone()
        }),
        CorpusError::Customers { .. }
    ));
    assert_eq!(
        refused(CorpusSpec {
            batch_size: 0,
            ..base.clone()
        }),
        CorpusError::BatchSize
    );
    assert_eq!(
        refused(CorpusSpec {
            much_later_share: 1.5,
            ..base.clone()
        }),
        CorpusError::OutOfRange("much_later_share")
    );
    assert_eq!(
        refused(CorpusSpec {
            max_lateness: Duration::days(-1),
            ..base
        }),
        CorpusError::OutOfRange("max_lateness")
    );
}

#[test]
fn the_shuffled_history_holds_the_same_shape_in_random_order() {
    let corpus = Corpus::shuffled_history();
    let stats = corpus.stats();
    assert_eq!(
        (stats.deliveries, stats.distinct, stats.customers),
        (1_950, 1_500, 250)
    );
    // Most first deliveries come after a later event of their customer.
    assert!(stats.out_of_order > 600, "{}", stats.out_of_order);
    let latest = corpus
        .deliveries
        .iter()
        .map(|d| d.occurred_at)
        .max()
        .unwrap();
    assert!(
        latest < Utc::now(),
        "the enricher refuses events ahead of its clock"
    );
    assert_bodies_match(&corpus);
}
