//! The event archive table (`CustomerFeaturesArchive`): one item per customer and bucket,
//! keyed `customerEmail` + `bucket` (a number), holding the bucket's events as a binary set
//! of 9-byte entries. Adding and removing are `ADD` and `DELETE` on that set: atomic unions
//! and differences with no read and no condition, so any number of writers may add the same
//! entries in any order.
//!
//! Erasure markers live in the same table, keyed `erased#<hash>` (bucket 0): no address can
//! take that key (normalised addresses have an `@` and no `#`), the table has no stream to
//! trip a reader, and the enricher may read it already. The filter of their hashes sits
//! under `erasure-filter`: bucket 0 holds only its generation (a read unit per batch with a
//! customer the enricher holds no item of), bucket 1 the generation and the pages (read when
//! the generation moved).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use chrono::{DateTime, Utc};

use super::{CUSTOMER_KEY, Item, get_latest};
use crate::error::{adapter_error, corrupt};
use referral_domain::features::ArchivedEvent;
use referral_domain::ports::{
    AdapterError, ErasureFilter, ErasureLog, ErasureMarker, EventArchive,
};

/// Sort key of the archive table.
pub const BUCKET_KEY: &str = "bucket";
/// The binary set of a bucket's events.
const EVENTS: &str = "events";
/// Partition-key prefix of erasure markers.
pub const ERASURE_KEY_PREFIX: &str = "erased#";
const LAST_VERSION: &str = "last_version";
/// Epoch milliseconds.
const ERASED_AT: &str = "erased_at_ms";
/// Partition key of the erasure filter: no `@`, so no address, and not a marker's prefix.
const FILTER_KEY: &str = "erasure-filter";
const FILTER_GENERATION_BUCKET: u32 = 0;
const FILTER_PAGES_BUCKET: u32 = 1;
const GENERATION: &str = "generation";
const PAGES: &str = "pages";
/// Concurrent `forget`s retry their read-modify-write of the filter this often at most.
const FILTER_WRITE_ATTEMPTS: u32 = 16;

/// SDK operations the enricher makes on the archive (its IAM policy; checked against the
/// template). `buckets` (Query) is for operators' tools only.
pub const ARCHIVE_IAM_ACTIONS: &[&str] = &["dynamodb:GetItem", "dynamodb:UpdateItem"];

#[derive(Debug, Clone)]
pub struct DynamoEventArchive {
    client: Client,
    table: String,
}

impl DynamoEventArchive {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoEventArchive {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn key(customer_email: &str, bucket: u32) -> Item {
        Item::from([
            (
                CUSTOMER_KEY.to_owned(),
                AttributeValue::S(customer_email.to_owned()),
            ),
            (BUCKET_KEY.to_owned(), AttributeValue::N(bucket.to_string())),
        ])
    }

    fn set_of(events: &[ArchivedEvent]) -> AttributeValue {
        AttributeValue::Bs(
            events
                .iter()
                .map(|event| Blob::new(event.to_bytes().to_vec()))
                .collect(),
        )
    }

    fn events_of(operation: &'static str, item: &Item) -> Result<Vec<ArchivedEvent>, AdapterError> {
        match item.get(EVENTS) {
            None => Ok(Vec::new()),
            Some(AttributeValue::Bs(blobs)) => blobs
                .iter()
                .map(|blob| {
                    ArchivedEvent::from_bytes(blob.as_ref())
                        .map_err(|error| corrupt(operation, error))
                })
                .collect(),
            Some(_) => Err(corrupt(operation, "`events` is not a binary set")),
        }
    }

    fn bucket_of(operation: &'static str, item: &Item) -> Result<u32, AdapterError> {
        match item.get(BUCKET_KEY) {
            Some(AttributeValue::N(number)) => number
                .parse()
                .map_err(|_| corrupt(operation, "`bucket` is not a bucket number")),
            _ => Err(corrupt(operation, "an archive item has no `bucket` number")),
        }
    }
}

impl EventArchive for DynamoEventArchive {
    async fn bucket(
        &self,
        customer_email: &str,
        bucket: u32,
    ) -> Result<Vec<ArchivedEvent>, AdapterError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(customer_email, bucket)))
            // An entry added just before must be seen, or an event could be applied twice.
            .consistent_read(true)
            .projection_expression("#events")
            .expression_attribute_names("#events", EVENTS)
            .send()
            .await
            .map_err(|error| adapter_error("GetItem", error))?;
        match output.item {
            Some(item) => Self::events_of("GetItem", &item),
            None => Ok(Vec::new()),
        }
    }

    async fn add(
        &self,
        customer_email: &str,
        bucket: u32,
        events: &[ArchivedEvent],
    ) -> Result<(), AdapterError> {
        if events.is_empty() {
            return Ok(());
        }
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(customer_email, bucket)))
            .update_expression("ADD #events :events")
            .expression_attribute_names("#events", EVENTS)
            .expression_attribute_values(":events", Self::set_of(events))
            .send()
            .await
            .map_err(|error| adapter_error("UpdateItem", error))?;
        Ok(())
    }

    async fn remove(
        &self,
        customer_email: &str,
        bucket: u32,
        events: &[ArchivedEvent],
    ) -> Result<(), AdapterError> {
        if events.is_empty() {
            return Ok(());
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(customer_email, bucket)))
            .update_expression("DELETE #events :events")
            // An UpdateItem makes the item it does not find: a removal must not.
            .condition_expression("attribute_exists(#key)")
            .expression_attribute_names("#events", EVENTS)
            .expression_attribute_names("#key", CUSTOMER_KEY)
            .expression_attribute_values(":events", Self::set_of(events))
            .send()
            .await;
        condition_may_fail(result)
    }

    async fn buckets(
        &self,
        customer_email: &str,
    ) -> Result<Vec<(u32, Vec<ArchivedEvent>)>, AdapterError> {
        let mut buckets = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#key = :customer")
                .expression_attribute_names("#key", CUSTOMER_KEY)
                .expression_attribute_values(
                    ":customer",
                    AttributeValue::S(customer_email.to_owned()),
                )
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|error| adapter_error("Query", error))?;
            for item in output.items.unwrap_or_default() {
                let events = Self::events_of("Query", &item)?;
                if !events.is_empty() {
                    buckets.push((Self::bucket_of("Query", &item)?, events));
                }
            }
            match output.last_evaluated_key.filter(|key| !key.is_empty()) {
                Some(key) => start = Some(key),
                None => break,
            }
        }
        buckets.sort_by_key(|(bucket, _)| *bucket);
        Ok(buckets)
    }
}

impl DynamoEventArchive {
    fn marker_key(hash: &str) -> Item {
        Self::key(&format!("{ERASURE_KEY_PREFIX}{hash}"), 0)
    }

    fn marker_of(hash: &str, item: &Item) -> Result<ErasureMarker, AdapterError> {
        let number = |name: &str| match item.get(name) {
            Some(AttributeValue::N(number)) => number.parse::<i64>().ok(),
            _ => None,
        };
        let last_version = number(LAST_VERSION)
            .and_then(|version| u64::try_from(version).ok())
            .ok_or_else(|| corrupt("GetItem", "an erasure marker has no `last_version`"))?;
        let erased_at = number(ERASED_AT)
            .and_then(DateTime::<Utc>::from_timestamp_millis)
            .ok_or_else(|| corrupt("GetItem", "an erasure marker has no `erased_at_ms`"))?;
        Ok(ErasureMarker {
            hash: hash.to_owned(),
            last_version,
            erased_at,
        })
    }
}

impl DynamoEventArchive {
    fn generation_of(operation: &'static str, item: &Item) -> Result<u64, AdapterError> {
        match item.get(GENERATION) {
            Some(AttributeValue::N(number)) => number.parse().map_err(|_| {
                corrupt(
                    operation,
                    "the erasure filter's `generation` is not a count",
                )
            }),
            _ => Err(corrupt(operation, "the erasure filter has no `generation`")),
        }
    }

    fn filter_of(item: &Item) -> Result<(u64, ErasureFilter), AdapterError> {
        let generation = Self::generation_of("GetItem", item)?;
        let pages: Vec<&[u8]> = match item.get(PAGES) {
            Some(AttributeValue::L(pages)) => pages
                .iter()
                .map(|page| match page {
                    AttributeValue::B(bytes) => Ok(bytes.as_ref()),
                    _ => Err(corrupt("GetItem", "an erasure filter page is not binary")),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(corrupt("GetItem", "the erasure filter has no `pages` list")),
        };
        let filter = ErasureFilter::from_pages(pages).map_err(|error| corrupt("GetItem", error))?;
        Ok((generation, filter))
    }

    /// Adds `hash` to the stored filter (a conditional read-modify-write, retried against
    /// concurrent `forget`s); returns the generation that holds it.
    async fn add_to_filter(&self, hash: &str) -> Result<u64, AdapterError> {
        for _ in 0..FILTER_WRITE_ATTEMPTS {
            let (generation, mut filter) = self.filter().await?;
            if !filter.insert(hash) {
                return Ok(generation);
            }
            let next = generation + 1;
            let mut item = Self::key(FILTER_KEY, FILTER_PAGES_BUCKET);
            item.insert(GENERATION.to_owned(), AttributeValue::N(next.to_string()));
            item.insert(
                PAGES.to_owned(),
                AttributeValue::L(
                    filter
                        .pages()
                        .iter()
                        .map(|page| AttributeValue::B(Blob::new(page.to_bytes())))
                        .collect(),
                ),
            );
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(#key) OR #generation = :generation")
                .expression_attribute_names("#key", CUSTOMER_KEY)
                .expression_attribute_names("#generation", GENERATION)
                .expression_attribute_values(
                    ":generation",
                    AttributeValue::N(generation.to_string()),
                )
                .send()
                .await;
            match result {
                Ok(_) => return Ok(next),
                Err(SdkError::ServiceError(context))
                    if matches!(
                        context.err(),
                        PutItemError::ConditionalCheckFailedException(_)
                    ) => {}
                Err(error) => return Err(adapter_error("PutItem", error)),
            }
        }
        Err(AdapterError::Transient {
            operation: "PutItem",
            source: "the erasure filter kept changing under concurrent erasures; run again".into(),
        })
    }

    /// Moves the small generation item up to `generation`, never down.
    async fn publish_generation(&self, generation: u64) -> Result<(), AdapterError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(FILTER_KEY, FILTER_GENERATION_BUCKET)))
            .update_expression("SET #generation = :generation")
            .condition_expression("attribute_not_exists(#generation) OR #generation < :generation")
            .expression_attribute_names("#generation", GENERATION)
            .expression_attribute_values(":generation", AttributeValue::N(generation.to_string()))
            .send()
            .await;
        // Refused: a later erasure published a later generation, which holds this one's hash.
        condition_may_fail(result)
    }
}

/// An UpdateItem whose refused condition means there was nothing to do.
fn condition_may_fail<O>(
    result: Result<O, SdkError<UpdateItemError, HttpResponse>>,
) -> Result<(), AdapterError> {
    match result {
        Ok(_) => Ok(()),
        Err(SdkError::ServiceError(context))
            if matches!(
                context.err(),
                UpdateItemError::ConditionalCheckFailedException(_)
            ) =>
        {
            Ok(())
        }
        Err(error) => Err(adapter_error("UpdateItem", error)),
    }
}

impl ErasureLog for DynamoEventArchive {
    async fn record(&self, marker: &ErasureMarker) -> Result<(), AdapterError> {
        let mut item = Self::marker_key(&marker.hash);
        item.insert(
            LAST_VERSION.to_owned(),
            AttributeValue::N(marker.last_version.to_string()),
        );
        item.insert(
            ERASED_AT.to_owned(),
            AttributeValue::N(marker.erased_at.timestamp_millis().to_string()),
        );
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|error| adapter_error("PutItem", error))?;
        // Published only once the pages hold the hash: an enricher that sees the new
        // generation reads pages that have it.
        let generation = self.add_to_filter(&marker.hash).await?;
        self.publish_generation(generation).await
    }

    async fn find(&self, hash: &str) -> Result<Option<ErasureMarker>, AdapterError> {
        get_latest(&self.client, &self.table, Self::marker_key(hash))
            .await?
            .map(|item| Self::marker_of(hash, &item))
            .transpose()
    }

    async fn filter_generation(&self) -> Result<u64, AdapterError> {
        get_latest(
            &self.client,
            &self.table,
            Self::key(FILTER_KEY, FILTER_GENERATION_BUCKET),
        )
        .await?
        .map_or(Ok(0), |item| Self::generation_of("GetItem", &item))
    }

    async fn filter(&self) -> Result<(u64, ErasureFilter), AdapterError> {
        get_latest(
            &self.client,
            &self.table,
            Self::key(FILTER_KEY, FILTER_PAGES_BUCKET),
        )
        .await?
        .map_or(Ok((0, ErasureFilter::default())), |item| {
            Self::filter_of(&item)
        })
    }
}
