//! The AWS-API emulator harness: moto's server on loopback, started by `tests/run.sh`, and
//! SDK clients aimed at it with static credentials (nothing may leave loopback).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use referral_aws_local::provision::{
    QueuePair, QueueSpec, TableNames, ensure_queue_pair, ensure_tables,
};

/// Environment variable holding the emulator's URL.
pub const ENDPOINT_VARIABLE: &str = "REFERRAL_TEST_ENDPOINT";

/// The emulator's URL. Fails the test, saying how to start it, when it is not configured:
/// an integration test never passes without its server.
pub fn endpoint() -> String {
    match std::env::var(ENDPOINT_VARIABLE) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "{ENDPOINT_VARIABLE} is not set: these tests need moto's AWS-API server. Run \
             `tests/run.sh` (it installs and starts it), or start it yourself with \
             `.venv/bin/moto_server -H 127.0.0.1 -p 5000` and \
             `export {ENDPOINT_VARIABLE}=http://127.0.0.1:5000 AWS_EC2_METADATA_DISABLED=true`"
        ),
    }
}

/// SDK configuration aimed at the emulator, with static test credentials and a region, so
/// the default chain never asks the instance-metadata service.
pub async fn sdk_config() -> SdkConfig {
    let url = endpoint();
    assert!(
        referral_aws::config::is_loopback(&url),
        "{ENDPOINT_VARIABLE}={url} is not a loopback address; tests only talk to 127.0.0.1"
    );
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&url)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .load()
        .await;
    let probe = aws_sdk_dynamodb::Client::new(&config)
        .list_tables()
        .limit(1)
        .send()
        .await;
    if let Err(error) = probe {
        panic!(
            "the AWS-API server at {url} does not answer ({}): start it with tests/run.sh",
            aws_smithy_types::error::display::DisplayErrorContext(&error)
        );
    }
    config
}

/// A name no other test (or earlier run against the same server) uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Fresh tables of this test's own.
pub async fn fresh_tables(config: &SdkConfig) -> (TableNames, String) {
    let names = TableNames {
        features: unique("CustomerFeatures"),
        archive: unique("CustomerFeaturesArchive"),
        messages: unique("ReferralMessages"),
    };
    let stream = ensure_tables(&aws_sdk_dynamodb::Client::new(config), &names)
        .await
        .unwrap_or_else(|error| panic!("creating tables: {error}"));
    (names, stream)
}

/// A fresh queue and DLQ of this test's own.
pub async fn fresh_queues(config: &SdkConfig, max_receive_count: u32) -> QueuePair {
    let name = unique("webhooks");
    let spec = QueueSpec {
        dlq_name: format!("{name}-dlq"),
        name,
        max_receive_count,
        visibility_timeout_seconds: 30,
    };
    ensure_queue_pair(&aws_sdk_sqs::Client::new(config), &spec)
        .await
        .unwrap_or_else(|error| panic!("creating queues: {error}"))
}

/// Visible and in-flight message counts of a queue.
pub async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> (u64, u64) {
    use aws_sdk_sqs::types::QueueAttributeName;
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap_or_else(|error| panic!("queue attributes of {url}: {error}"))
        .attributes
        .unwrap_or_default();
    let count = |name: QueueAttributeName| -> u64 {
        attributes
            .get(&name)
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no {name:?} for {url}"))
    };
    (
        count(QueueAttributeName::ApproximateNumberOfMessages),
        count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

/// Counts the HTTP requests a client sends, by operation (`GetItem`, `PutItem`, ...),
/// retries included: what the bill and the throttling budget see.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl RequestCounter {
    pub fn count(&self, operation: &str) -> u64 {
        self.counts
            .lock()
            .map(|counts| counts.get(operation).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    pub fn reset(&self) {
        if let Ok(mut counts) = self.counts.lock() {
            counts.clear();
        }
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// A DynamoDB client that counts its requests here.
    pub fn dynamodb_client(&self, config: &SdkConfig) -> aws_sdk_dynamodb::Client {
        let conf = aws_sdk_dynamodb::config::Builder::from(config)
            .interceptor(self.clone())
            .build();
        aws_sdk_dynamodb::Client::from_conf(conf)
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // JSON-protocol services name the operation in `X-Amz-Target`: `Service.Operation`.
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or_default();
        let operation = target.rsplit('.').next().unwrap_or(target).to_owned();
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry(operation).or_insert(0) += 1;
        }
        Ok(())
    }
}

/// Plays DynamoDB's TTL process on a `ReferralMessages` table (moto has none): deletes every
/// item whose TTL attribute (epoch seconds) is at or before `now`, and returns how many.
pub async fn sweep_expired_messages(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> usize {
    use aws_sdk_dynamodb::types::AttributeValue;
    use referral_aws::dynamo::{CLAIM_TTL_ATTRIBUTE, CUSTOMER_KEY, MESSAGE_KEY};
    let mut swept = 0;
    let mut start = None;
    loop {
        let page = dynamodb
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .unwrap_or_else(|error| panic!("scan {table}: {error}"));
        for item in page.items() {
            let expired = match item.get(CLAIM_TTL_ATTRIBUTE) {
                Some(AttributeValue::N(epoch)) => epoch
                    .parse::<i64>()
                    .is_ok_and(|epoch| epoch <= now.timestamp()),
                _ => false,
            };
            if !expired {
                continue;
            }
            let key = [CUSTOMER_KEY, MESSAGE_KEY]
                .into_iter()
                .filter_map(|name| Some((name.to_owned(), item.get(name)?.clone())))
                .collect();
            dynamodb
                .delete_item()
                .table_name(table)
                .set_key(Some(key))
                .send()
                .await
                .unwrap_or_else(|error| panic!("delete from {table}: {error}"));
            swept += 1;
        }
        match page.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return swept,
        }
    }
}
