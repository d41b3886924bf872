//! Every port's contract against the embedded adapters.
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use referral_domain::ports::MessageRetention;
use referral_local::embedded::{
    EmbeddedArchive, EmbeddedFeatureStore, EmbeddedMessageStore, EmbeddedQueue, QueueRules,
};
use referral_tests::contract::{
    QueueSetup, change_feed_contract, erasure_log_contract, event_archive_contract,
    feature_store_contract, message_retention_contract, message_store_contract,
    work_queue_contract,
};

#[tokio::test]
async fn the_embedded_feature_store_honours_the_contract() {
    feature_store_contract(&EmbeddedFeatureStore::new(), "embedded-").await;
}

#[tokio::test]
async fn the_embedded_archive_honours_the_contract() {
    event_archive_contract(&EmbeddedArchive::new(), "embedded-").await;
    erasure_log_contract(&EmbeddedArchive::new(), "embedded-").await;
}

#[tokio::test]
async fn the_embedded_change_feed_honours_the_contract() {
    let store = EmbeddedFeatureStore::new();
    change_feed_contract(&store, &store, "embedded-").await;
}

#[tokio::test]
async fn the_embedded_message_store_honours_the_contract() {
    message_store_contract(&EmbeddedMessageStore::new(), "embedded-").await;
}

#[tokio::test]
async fn the_embedded_message_store_expires_decisions_but_not_the_message_slot() {
    let expiring = EmbeddedMessageStore::with_retention(MessageRetention::days(1));
    let kept = EmbeddedMessageStore::with_retention(MessageRetention::KEEP);
    let sweep = async |now| {
        expiring.expire(now);
        kept.expire(now);
    };
    message_retention_contract(&expiring, &kept, sweep, "embedded-").await;
}

#[tokio::test]
async fn the_embedded_queue_honours_the_contract() {
    let setup = QueueSetup {
        visibility_timeout: Duration::from_secs(1),
        max_receive_count: 2,
    };
    let dead_letters = Arc::new(EmbeddedQueue::new());
    let queue = EmbeddedQueue::with_rules(QueueRules {
        visibility_timeout: setup.visibility_timeout,
        max_receive_count: Some(setup.max_receive_count),
        dead_letters: Some(Arc::clone(&dead_letters)),
    });
    work_queue_contract(&queue, &*dead_letters, setup).await;
}
