//! The feature-store contract against the embedded adapter.
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use referral_local::embedded::EmbeddedFeatureStore;
use referral_tests::contract::feature_store_contract;

#[tokio::test]
async fn the_embedded_store_honours_the_contract() {
    feature_store_contract(&EmbeddedFeatureStore::new(), "embedded-").await;
}
