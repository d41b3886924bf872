//! `ChangeFeed`: every write of the store once, a customer's in the order written, as new
//! images; and a consumer that could not handle a record gets it, and what follows it, again
//! by resuming from its sequence number.

use std::time::Duration;

use referral_domain::ports::{ChangeFeed, ChangeKind, ChangeRecord, FeatureStore, WriteOutcome};

use super::feature_store::fold_new;

/// Polls until `count` records came or the feed stayed empty a while (a real stream
/// publishes a moment after the write).
async fn poll_for<F: ChangeFeed>(feed: &F, count: usize) -> Vec<ChangeRecord> {
    let mut records = Vec::new();
    let mut empty = 0;
    while records.len() < count && empty < 20 {
        let batch = feed
            .poll(100)
            .await
            .unwrap_or_else(|error| panic!("poll: {error}"));
        if batch.is_empty() {
            empty += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        } else {
            records.extend(batch);
        }
    }
    records
}

/// Writes `versions` successive writes of one customer; returns their versions.
async fn write<S: FeatureStore>(store: &S, email: &str, versions: usize) {
    let mut current = None;
    for version in 0..versions {
        let write = fold_new(current.as_ref(), email, &[&format!("{email}-{version}")]);
        assert_eq!(
            store
                .save(write.clone())
                .await
                .unwrap_or_else(|error| panic!("save: {error}")),
            WriteOutcome::Applied
        );
        current = Some((*write.item).clone());
    }
}

fn versions_of(records: &[ChangeRecord], email: &str) -> Vec<u64> {
    records
        .iter()
        .filter(|record| record.customer_email == email)
        .filter_map(|record| record.new_image.as_ref().map(|image| image.version))
        .collect::<Vec<_>>()
}

/// Runs every case against `feed`, the stream of `store`, both fresh.
pub async fn change_feed_contract<S: FeatureStore, F: ChangeFeed>(
    store: &S,
    feed: &F,
    prefix: &str,
) {
    every_write_comes_once_in_order_per_customer(store, feed, prefix).await;
    a_consumer_resumes_from_the_record_it_could_not_handle(store, feed, prefix).await;
}

async fn every_write_comes_once_in_order_per_customer<S: FeatureStore, F: ChangeFeed>(
    store: &S,
    feed: &F,
    prefix: &str,
) {
    let (ann, bob) = (
        format!("{prefix}ann@example.com"),
        format!("{prefix}bob@example.com"),
    );
    write(store, &ann, 3).await;
    write(store, &bob, 2).await;
    let records = poll_for(feed, 5).await;
    assert_eq!(records.len(), 5, "{records:#?}");
    assert_eq!(
        versions_of(&records, &ann),
        [1, 2, 3],
        "a customer's writes in order"
    );
    assert_eq!(versions_of(&records, &bob), [1, 2]);
    for record in &records {
        let expected = if record
            .new_image
            .as_ref()
            .is_some_and(|image| image.version == 1)
        {
            ChangeKind::Insert
        } else {
            ChangeKind::Modify
        };
        assert_eq!(record.kind, expected);
        assert!(
            record.old_image.is_none(),
            "the stream carries new images only"
        );
    }
    assert!(
        poll_for(feed, 1).await.is_empty(),
        "a record handed out is not handed out again"
    );
}

async fn a_consumer_resumes_from_the_record_it_could_not_handle<S: FeatureStore, F: ChangeFeed>(
    store: &S,
    feed: &F,
    prefix: &str,
) {
    let cal = format!("{prefix}cal@example.com");
    write(store, &cal, 3).await;
    let first = poll_for(feed, 3).await;
    assert_eq!(versions_of(&first, &cal), [1, 2, 3]);
    // The second could not be handled: it and the third come again, and only they.
    feed.resume_from(&first[1].sequence_number)
        .await
        .unwrap_or_else(|error| panic!("resume_from: {error}"));
    let again = poll_for(feed, 2).await;
    assert_eq!(versions_of(&again, &cal), [2, 3]);
    assert_eq!(again[0].sequence_number, first[1].sequence_number);
    assert!(poll_for(feed, 1).await.is_empty());
}
