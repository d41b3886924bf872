//! The backfill Lambda: one item of a Step Functions Distributed Map, an S3 object that
//! `referral backfill --to s3://…` wrote (JSONL webhooks, every event of the customers of
//! one partition), loaded through the backfill's own fold-and-merge
//! (`referral_aws::backfill`), as `referral backfill` loads one of its partitions.
//!
//! A customer's events are all in one object, so concurrent invocations never write the same
//! item (live traffic may, and the conditional writes merge it). An invocation that leaves a
//! customer unfinished fails, so the map retries the object: what the table holds already
//! costs a read and no write, and each customer's last change gets its suppression again
//! (idempotent) in case the failure fell between the two.

use std::sync::{Arc, Mutex, PoisonError};

use aws_config::SdkConfig;
use referral_aws::backfill::{
    Classified, DynamoHistoryEnricher, HistoryTables, WriteTally, batches, classify,
    customer_histories, dynamo_enricher, load_batch,
};
use referral_aws::dynamo::{
    ARCHIVE_IAM_ACTIONS, FEATURE_STORE_IAM_ACTIONS, MESSAGE_WRITE_IAM_ACTIONS, TABLES_ENV_VARS,
};
use referral_domain::env::{EnvError, Vars};
use referral_domain::features::LifetimeValueRule;
use referral_domain::ports::{ENV_MESSAGE_RETENTION_DAYS, MessageRetention};
use referral_domain::redact::{CUSTOMER_REF_KEY_ARN_VAR, check_customer_ref_key};
use serde::{Deserialize, Serialize};

/// The `service` dimension of this function's metrics ([`Counters`]).
pub const METRICS_SERVICE: &str = "backfill";

/// Environment variables the binary reads (the template sets exactly these).
pub const ENV_VARS: &[&str] = &[
    TABLES_ENV_VARS[0],
    TABLES_ENV_VARS[1],
    TABLES_ENV_VARS[2],
    ENV_BUCKET,
    ENV_MESSAGE_RETENTION_DAYS,
    LifetimeValueRule::ENV_VARS[0],
    LifetimeValueRule::ENV_VARS[1],
    LifetimeValueRule::ENV_VARS[2],
    LifetimeValueRule::ENV_VARS[3],
    // Set on every function by the template's Globals; checked so a bad key fails here too.
    CUSTOMER_REF_KEY_ARN_VAR,
];
const ENV_BUCKET: &str = "BACKFILL_BUCKET";

/// IAM actions of the SDK calls this function's code makes.
pub fn iam_actions() -> Vec<&'static str> {
    let mut actions: Vec<&'static str> = FEATURE_STORE_IAM_ACTIONS.to_vec();
    actions.extend(ARCHIVE_IAM_ACTIONS);
    actions.extend(MESSAGE_WRITE_IAM_ACTIONS);
    actions.push("s3:GetObject");
    actions.extend(referral_aws::secrets::SECRETS_IAM_ACTIONS);
    actions.sort_unstable();
    actions.dedup();
    actions
}

/// Settings of the function, from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub tables: HistoryTables,
    /// The bucket of the partitions, when the map's items do not name it.
    pub bucket: Option<String>,
    pub retention: MessageRetention,
    pub lifetime_value: LifetimeValueRule,
}

impl Config {
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from_vars(&Vars::process())
    }

    pub fn from_vars(vars: &Vars<impl Fn(&str) -> Option<String>>) -> Result<Self, EnvError> {
        check_customer_ref_key(vars)?;
        Ok(Config {
            tables: HistoryTables::from_vars(vars)?,
            bucket: vars.get(ENV_BUCKET).filter(|bucket| !bucket.is_empty()),
            retention: MessageRetention::from_vars(vars)?,
            lifetime_value: LifetimeValueRule::from_vars(vars)?,
        })
    }
}

/// One Distributed Map item as the S3 `ListObjectsV2` item reader hands it (`Key`, `Size`,
/// `Etag`, ...: only the key is used), with the bucket when an `ItemSelector` adds it.
#[derive(Debug, Clone, Deserialize)]
pub struct MapItem {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "Bucket", default)]
    pub bucket: Option<String>,
}

/// What one object's load did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub events: u64,
    pub customers: u64,
    pub applied: u64,
    /// Events the table held already (a retry, live traffic, duplicates in the inputs).
    pub duplicates: u64,
    pub rejected: u64,
    /// Well-formed events of another type than `service.completed`.
    pub ignored: u64,
    #[serde(flatten)]
    pub writes: WriteTally,
    /// Item and archive write units together.
    pub write_units: u64,
}

/// The invocation's answer (the map's result for the item).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub object: String,
    #[serde(flatten)]
    pub counters: Counters,
}

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("the item names no bucket and {ENV_BUCKET} is not set")]
    NoBucket,
    #[error("cannot read s3://{bucket}/{key}: {detail}")]
    Read {
        bucket: String,
        key: String,
        detail: String,
    },
    #[error("s3://{bucket}/{key} is not UTF-8 text (line {line})")]
    NotText {
        bucket: String,
        key: String,
        line: usize,
    },
    #[error("{count} customers of s3://{bucket}/{key} left unfinished ({masked}): retry the item")]
    Unfinished {
        bucket: String,
        key: String,
        count: usize,
        masked: String,
    },
}

/// The S3 client: path-style addressing against an emulator's endpoint (bucket names are
/// no host names on loopback), virtual-hosted on AWS.
pub fn s3_client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(sdk.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

#[derive(Debug)]
pub struct BackfillHandler {
    s3: aws_sdk_s3::Client,
    enricher: DynamoHistoryEnricher,
    tally: Arc<Mutex<WriteTally>>,
    bucket: Option<String>,
}

impl BackfillHandler {
    pub fn from_sdk(sdk: &SdkConfig, config: &Config) -> Self {
        let (enricher, tally) = dynamo_enricher(
            &aws_sdk_dynamodb::Client::new(sdk),
            &config.tables,
            config.retention,
            config.lifetime_value,
            // The map's concurrency is the pace: each invocation writes as fast as it can.
            None,
        );
        BackfillHandler {
            s3: s3_client(sdk),
            enricher,
            tally,
            bucket: config.bucket.clone(),
        }
    }

    pub async fn handle(&self, item: &MapItem) -> Result<Summary, BackfillError> {
        let bucket = item
            .bucket
            .clone()
            .or_else(|| self.bucket.clone())
            .ok_or(BackfillError::NoBucket)?;
        let key = item.key.clone();
        let text = self.read(&bucket, &key).await?;
        let before = self.tally();
        let mut counters = Counters::default();
        let mut valid = Vec::new();
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            counters.events += 1;
            let source = format!("s3://{bucket}/{key}:{}", index + 1);
            match classify(line) {
                Classified::Service { customer, at } => {
                    valid.push((customer, at, source, line.to_owned()))
                }
                Classified::Other => counters.ignored += 1,
                Classified::Refused(rejection) => {
                    // `referral backfill --to` wrote only valid events: an edited object.
                    counters.rejected += 1;
                    tracing::warn!(
                        source,
                        field = rejection.error.field(),
                        kind = rejection.error.kind(),
                        "backfill refused an event"
                    );
                }
            }
        }
        let histories = customer_histories(valid);
        counters.customers = histories.len() as u64;
        let mut unfinished = Vec::new();
        for batch in batches(histories) {
            let loaded = load_batch(&self.enricher, &batch, true).await;
            counters.applied += loaded.applied;
            counters.duplicates += loaded.duplicates;
            counters.rejected += loaded.refused.len() as u64;
            for refused in &loaded.refused {
                tracing::warn!(
                    source = refused.source,
                    field = refused.field,
                    kind = refused.kind,
                    "backfill refused an event"
                );
            }
            unfinished.extend(loaded.unfinished);
        }
        counters.writes = since(self.tally(), before);
        counters.write_units = counters.writes.write_units();
        tracing::info!(object = key, counters = ?counters, "backfill loaded an object");
        if !unfinished.is_empty() {
            return Err(BackfillError::Unfinished {
                bucket,
                key,
                count: unfinished.len(),
                masked: unfinished.join(", "),
            });
        }
        Ok(Summary {
            object: format!("s3://{bucket}/{key}"),
            counters,
        })
    }

    async fn read(&self, bucket: &str, key: &str) -> Result<String, BackfillError> {
        let read_error = |detail: String| BackfillError::Read {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            detail,
        };
        let object = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|error| read_error(referral_domain::error_chain(&error)))?;
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|error| read_error(error.to_string()))?
            .into_bytes();
        String::from_utf8(bytes.to_vec()).map_err(|error| {
            let valid = &bytes[..error.utf8_error().valid_up_to()];
            BackfillError::NotText {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                line: valid.iter().filter(|byte| **byte == b'\n').count() + 1,
            }
        })
    }

    fn tally(&self) -> WriteTally {
        *self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// This invocation's share of a tally the process keeps across invocations.
fn since(now: WriteTally, before: WriteTally) -> WriteTally {
    WriteTally {
        item_writes: now.item_writes - before.item_writes,
        refused_writes: now.refused_writes - before.refused_writes,
        item_write_units: now.item_write_units - before.item_write_units,
        archive_writes: now.archive_writes - before.archive_writes,
        unrecorded: now.unrecorded - before.unrecorded,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_list_objects_item_reads_with_or_without_a_bucket() {
        let item: MapItem = serde_json::from_str(
            r#"{"Etag":"\"abc\"","Key":"history/part-0003.jsonl","LastModified":1733580000,"Size":812,"StorageClass":"STANDARD"}"#,
        )
        .unwrap();
        assert_eq!(
            (item.key.as_str(), item.bucket),
            ("history/part-0003.jsonl", None)
        );
        let item: MapItem = serde_json::from_str(r#"{"Key":"k","Bucket":"b"}"#).unwrap();
        assert_eq!(item.bucket.as_deref(), Some("b"));
    }

    #[test]
    fn tables_are_required_and_the_bucket_is_not() {
        let error = Config::from_vars(&Vars::fixed(&[("FEATURES_TABLE", "f")])).unwrap_err();
        assert!(error.to_string().contains("ARCHIVE_TABLE"), "{error}");
        let config = Config::from_vars(&Vars::fixed(&[
            ("FEATURES_TABLE", "f"),
            ("ARCHIVE_TABLE", "a"),
            ("MESSAGES_TABLE", "m"),
        ]))
        .unwrap();
        assert_eq!(config.bucket, None);
        assert_eq!(config.tables.messages, "m");
    }
}
