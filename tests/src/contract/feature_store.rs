//! `FeatureStore`: a write lands only on the version its writer read (or, for a new
//! customer, only where there is no item), a refused write says whether a concurrent writer
//! applied the very same events, and an item reads back exactly as written.

use referral_domain::features::{CustomerFeatures, MemoryLimits, fold_events};
use referral_domain::ports::{FeatureStore, FeatureWrite, WriteOutcome};

use crate::{event_body, service_event};

pub(super) fn fold_new(
    current: Option<&CustomerFeatures>,
    email: &str,
    ids: &[&str],
) -> FeatureWrite {
    let events: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            service_event(&event_body(
                id,
                email,
                i as i64 * 7,
                Some(4.0 + i as f64 * 0.1),
            ))
        })
        .collect();
    let refs: Vec<_> = events.iter().collect();
    let fold = fold_events(current.cloned(), &refs, MemoryLimits::default());
    let applied_ids = fold.applied_ids.clone();
    FeatureWrite {
        expected_version: current.map(|c| c.version),
        item: std::sync::Arc::new(
            fold.into_next()
                .unwrap_or_else(|| panic!("{ids:?} applied nothing")),
        ),
        applied_ids,
    }
}

async fn load<S: FeatureStore>(store: &S, email: &str) -> Option<CustomerFeatures> {
    store
        .load(email)
        .await
        .unwrap_or_else(|e| panic!("load {email}: {e}"))
}

async fn save<S: FeatureStore>(store: &S, write: &FeatureWrite) -> WriteOutcome {
    store
        .save(write.clone())
        .await
        .unwrap_or_else(|e| panic!("save: {e}"))
}

/// Runs every case against `store`. `prefix` keeps this run's customers apart.
pub async fn feature_store_contract<S: FeatureStore>(store: &S, prefix: &str) {
    absent_customer_reads_as_none(store, prefix).await;
    a_blind_create_over_an_existing_item_returns_it(store, prefix).await;
    a_new_item_round_trips_exactly(store, prefix).await;
    a_second_create_is_refused_as_a_conflict(store, prefix).await;
    a_write_on_a_stale_version_is_refused_as_a_conflict(store, prefix).await;
    reapplying_applied_ids_is_refused_as_a_duplicate(store, prefix).await;
}

async fn absent_customer_reads_as_none<S: FeatureStore>(store: &S, prefix: &str) {
    assert_eq!(
        load(store, &format!("{prefix}nobody@example.com")).await,
        None
    );
}

async fn a_new_item_round_trips_exactly<S: FeatureStore>(store: &S, prefix: &str) {
    let email = format!("{prefix}roundtrip@example.com");
    let write = fold_new(None, &email, &["rt-1", "rt-2", "rt-3"]);
    assert_eq!(save(store, &write).await, WriteOutcome::Applied);
    let stored = load(store, &email).await;
    assert_eq!(
        stored.as_ref(),
        Some(write.item.as_ref()),
        "the stored item differs from the written one"
    );

    let next = fold_new(stored.as_ref(), &email, &["rt-4"]);
    assert_eq!(save(store, &next).await, WriteOutcome::Applied);
    let stored = load(store, &email).await.expect("item exists");
    assert_eq!(stored.version, 2);
    assert_eq!(stored.events_applied, 4);
}

async fn a_second_create_is_refused_as_a_conflict<S: FeatureStore>(store: &S, prefix: &str) {
    let email = format!("{prefix}create-race@example.com");
    let first = fold_new(None, &email, &["cr-1"]);
    let second = fold_new(None, &email, &["cr-2"]);
    assert_eq!(save(store, &first).await, WriteOutcome::Applied);
    match save(store, &second).await {
        WriteOutcome::Conflict { current } => {
            if let Some(current) = current {
                assert_eq!(current, *first.item);
            }
        }
        other => panic!("a create over an existing item must conflict, got {other:?}"),
    }
    assert_eq!(load(store, &email).await, Some((*first.item).clone()));
}

async fn a_write_on_a_stale_version_is_refused_as_a_conflict<S: FeatureStore>(
    store: &S,
    prefix: &str,
) {
    let email = format!("{prefix}stale-version@example.com");
    let v1 = fold_new(None, &email, &["sv-1"]);
    save(store, &v1).await;
    let v2 = fold_new(Some(&v1.item), &email, &["sv-2"]);
    assert_eq!(save(store, &v2).await, WriteOutcome::Applied);
    // A writer that read v1 and applies another event loses the race.
    let late = fold_new(Some(&v1.item), &email, &["sv-3"]);
    match save(store, &late).await {
        WriteOutcome::Conflict { current } => {
            if let Some(current) = current {
                assert_eq!(current, *v2.item);
            }
        }
        other => panic!("a write on a stale version must conflict, got {other:?}"),
    }
    assert_eq!(load(store, &email).await, Some((*v2.item).clone()));
}

async fn reapplying_applied_ids_is_refused_as_a_duplicate<S: FeatureStore>(
    store: &S,
    prefix: &str,
) {
    let email = format!("{prefix}duplicate@example.com");
    let first = fold_new(None, &email, &["dup-1", "dup-2"]);
    save(store, &first).await;
    // A concurrent consumer that read nothing and applies the same events.
    let again = fold_new(None, &email, &["dup-1", "dup-2"]);
    assert_eq!(
        save(store, &again).await,
        WriteOutcome::Duplicate {
            current: (*first.item).clone()
        }
    );
    assert_eq!(load(store, &email).await, Some((*first.item).clone()));
}

/// A writer that knows no item writes blind: refused, it is handed the current item, so it
/// can fold again without reading (the enricher's hot path depends on it).
async fn a_blind_create_over_an_existing_item_returns_it<S: FeatureStore>(store: &S, prefix: &str) {
    let email = format!("{prefix}blind@example.com");
    let first = fold_new(None, &email, &["bl-1"]);
    assert_eq!(save(store, &first).await, WriteOutcome::Applied);
    let blind = fold_new(None, &email, &["bl-2"]);
    assert_eq!(
        save(store, &blind).await,
        WriteOutcome::Conflict {
            current: Some((*first.item).clone())
        },
        "a refused write must return the item it found"
    );
}
