//! `EventArchive`: a bucket is a set of entries (adding twice keeps one, adding to a missing
//! bucket creates it), reads are exact and strongly consistent, taking out leaves the rest,
//! and the buckets of one customer are apart from every other customer's and bucket's.

use referral_domain::features::{ArchivedEvent, ContentTag, IdHash};
use referral_domain::ports::EventArchive;

/// `content` stands for a content hash; the tag keeps a hash's high bits, so small numbers
/// are spread over them first or every entry would carry the same tag.
fn entry(id: &str, content: u64) -> ArchivedEvent {
    ArchivedEvent {
        id: IdHash::of(id),
        tag: ContentTag::of(content.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
    }
}

fn sorted(mut events: Vec<ArchivedEvent>) -> Vec<ArchivedEvent> {
    events.sort();
    events
}

async fn bucket<A: EventArchive>(archive: &A, email: &str, bucket: u32) -> Vec<ArchivedEvent> {
    sorted(
        archive
            .bucket(email, bucket)
            .await
            .unwrap_or_else(|e| panic!("read {email} bucket {bucket}: {e}")),
    )
}

async fn add<A: EventArchive>(archive: &A, email: &str, at: u32, events: &[ArchivedEvent]) {
    archive
        .add(email, at, events)
        .await
        .unwrap_or_else(|e| panic!("add to {email} bucket {at}: {e}"));
}

/// Runs every case against `archive`. `prefix` keeps this run's customers apart.
pub async fn event_archive_contract<A: EventArchive>(archive: &A, prefix: &str) {
    a_bucket_never_written_reads_empty(archive, prefix).await;
    adding_is_a_set_union(archive, prefix).await;
    removing_takes_out_only_what_it_names(archive, prefix).await;
    buckets_and_customers_are_apart(archive, prefix).await;
}

async fn a_bucket_never_written_reads_empty<A: EventArchive>(archive: &A, prefix: &str) {
    let email = format!("{prefix}archive-empty@example.com");
    assert_eq!(bucket(archive, &email, 0).await, vec![]);
    assert_eq!(bucket(archive, &email, 7).await, vec![]);
    let all = archive
        .buckets(&email)
        .await
        .unwrap_or_else(|e| panic!("list {email}: {e}"));
    assert!(all.is_empty(), "{all:?}");
}

async fn adding_is_a_set_union<A: EventArchive>(archive: &A, prefix: &str) {
    let email = format!("{prefix}archive-union@example.com");
    let first = [entry("a", 1), entry("b", 2)];
    add(archive, &email, 3, &first).await;
    // A crash-retried archive step adds what is there again, with one new entry.
    add(archive, &email, 3, &[entry("b", 2), entry("c", 3)]).await;
    add(archive, &email, 3, &[]).await;
    assert_eq!(
        bucket(archive, &email, 3).await,
        sorted(vec![entry("a", 1), entry("b", 2), entry("c", 3)]),
        "adding twice must keep one copy, and adding must not replace"
    );
    // The same id with another content tag is another entry: a conflicting redelivery must
    // still be told from a plain one after archiving.
    add(archive, &email, 3, &[entry("a", 9)]).await;
    assert_eq!(bucket(archive, &email, 3).await.len(), 4);
}

async fn removing_takes_out_only_what_it_names<A: EventArchive>(archive: &A, prefix: &str) {
    let email = format!("{prefix}archive-remove@example.com");
    let all: Vec<_> = (0..30).map(|i| entry(&format!("r-{i}"), i)).collect();
    add(archive, &email, 1, &all).await;
    let (moved, kept) = all.split_at(12);
    archive
        .remove(&email, 1, moved)
        .await
        .unwrap_or_else(|e| panic!("remove: {e}"));
    assert_eq!(bucket(archive, &email, 1).await, sorted(kept.to_vec()));
    // Removing again (a retried split clean-up), or what is not there, is harmless.
    archive
        .remove(&email, 1, moved)
        .await
        .unwrap_or_else(|e| panic!("remove again: {e}"));
    archive
        .remove(&email, 1, kept)
        .await
        .unwrap_or_else(|e| panic!("remove the rest: {e}"));
    assert_eq!(bucket(archive, &email, 1).await, vec![]);
}

async fn buckets_and_customers_are_apart<A: EventArchive>(archive: &A, prefix: &str) {
    let email = format!("{prefix}archive-apart@example.com");
    let other = format!("{prefix}archive-apart-other@example.com");
    add(archive, &email, 0, &[entry("x", 1)]).await;
    add(archive, &email, 5, &[entry("y", 2), entry("z", 3)]).await;
    add(archive, &other, 0, &[entry("w", 4)]).await;
    assert_eq!(bucket(archive, &email, 0).await, vec![entry("x", 1)]);
    assert_eq!(bucket(archive, &other, 0).await, vec![entry("w", 4)]);
    let mut listed = archive
        .buckets(&email)
        .await
        .unwrap_or_else(|e| panic!("list {email}: {e}"));
    listed.sort_by_key(|(number, _)| *number);
    let listed: Vec<_> = listed
        .into_iter()
        .map(|(number, events)| (number, sorted(events)))
        .collect();
    assert_eq!(
        listed,
        vec![
            (0, vec![entry("x", 1)]),
            (5, sorted(vec![entry("y", 2), entry("z", 3)]))
        ]
    );
}
