//! `ErasureLog`: a marker reads back exactly as recorded (to the millisecond), strongly
//! consistent; recording again under the same hash replaces it; hashes are apart; a hash
//! never recorded has no marker. Markers sit beside the archive's buckets without touching
//! them. A recorded hash is in the filter, and the generation has moved past the one read
//! before (the filter is shared by every run of the suite, so only the moves are checked).

use chrono::{DateTime, TimeZone, Utc};
use referral_domain::features::{ArchivedEvent, ContentTag, IdHash};
use referral_domain::ports::{ErasureFilter, ErasureLog, ErasureMarker, EventArchive};
use referral_domain::redact::erasure_hash;

fn at(seconds: i64, millis: u32) -> DateTime<Utc> {
    Utc.timestamp_opt(seconds, millis * 1_000_000)
        .single()
        .unwrap_or_else(|| panic!("a valid time: {seconds}.{millis}"))
}

async fn find<L: ErasureLog>(log: &L, hash: &str) -> Option<ErasureMarker> {
    log.find(hash)
        .await
        .unwrap_or_else(|e| panic!("find marker {hash}: {e}"))
}

async fn generation<L: ErasureLog>(log: &L) -> u64 {
    log.filter_generation()
        .await
        .unwrap_or_else(|e| panic!("filter generation: {e}"))
}

async fn filter<L: ErasureLog>(log: &L) -> (u64, ErasureFilter) {
    log.filter().await.unwrap_or_else(|e| panic!("filter: {e}"))
}

async fn record<L: ErasureLog>(log: &L, marker: &ErasureMarker) {
    log.record(marker)
        .await
        .unwrap_or_else(|e| panic!("record marker {}: {e}", marker.hash));
}

/// Runs every case against `log`. `prefix` keeps this run's customers apart.
pub async fn erasure_log_contract<L: ErasureLog + EventArchive>(log: &L, prefix: &str) {
    let email = format!("{prefix}erased@example.com");
    let hash = erasure_hash(&email);
    assert_eq!(find(log, &hash).await, None, "never recorded");
    let (generation_before, filter_before) = filter(log).await;
    assert!(
        generation(log).await >= generation_before,
        "the generation read is at most the filter's"
    );

    let first = ErasureMarker {
        hash: hash.clone(),
        last_version: 7,
        erased_at: at(1_760_000_000, 123),
    };
    record(log, &first).await;
    assert_eq!(
        find(log, &hash).await,
        Some(first.clone()),
        "read back exactly"
    );
    let published = generation(log).await;
    let (generation_after, filter_after) = filter(log).await;
    assert!(filter_after.may_contain(&hash), "the filter holds the hash");
    assert!(
        generation_after >= published,
        "the filter is at least the published generation"
    );
    if !filter_before.may_contain(&hash) {
        assert!(
            published > generation_before,
            "a new hash moves the published generation: {generation_before} -> {published}"
        );
        assert_eq!(filter_after.len(), filter_before.len() + 1);
    }

    let again = ErasureMarker {
        last_version: 12,
        erased_at: at(1_760_000_900, 5),
        ..first.clone()
    };
    record(log, &again).await;
    assert_eq!(find(log, &hash).await, Some(again), "replaced");

    let other = erasure_hash(&format!("{prefix}kept@example.com"));
    assert_eq!(find(log, &other).await, None, "hashes are apart");

    // A marker is not a bucket of anyone: not of the customer, not of its own key.
    let entry = ArchivedEvent {
        id: IdHash::of("kept-event"),
        tag: ContentTag::of(1),
    };
    log.add(&email, 0, &[entry])
        .await
        .unwrap_or_else(|e| panic!("add to {email}: {e}"));
    let buckets = log
        .buckets(&email)
        .await
        .unwrap_or_else(|e| panic!("list {email}: {e}"));
    assert_eq!(buckets, vec![(0, vec![entry])]);
    assert!(
        find(log, &hash).await.is_some(),
        "the bucket left the marker"
    );
}
