//! Reads a table's stream through the DynamoDB Streams API the way the Lambda event-source
//! mapping does (shards, iterators, records in order), for local runs and tests: the
//! [`ChangeFeed`] of the DynamoDB feature store. Each record is turned into the exact
//! record Lambda delivers and decoded by the function's own decoder
//! (`referral_aws::stream_record`), so local runs read images the function's way.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use aws_lambda_events::event::dynamodb::{EventRecord, StreamRecord, StreamViewType};
use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType, StreamViewType as SdkViewType};
use chrono::DateTime;
use referral_aws::error::{adapter_error, corrupt};
use referral_aws::stream_record::change_record;
use referral_domain::ports::{AdapterError, ChangeFeed, ChangeRecord};
use tokio::sync::Mutex;

/// Where a poller starts reading the shards that exist when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartingPosition {
    /// Every record still retained.
    TrimHorizon,
    /// Only records written after the poller started.
    Latest,
}

#[derive(Debug)]
struct ShardCursor {
    /// `None` once the shard is closed and read to its end.
    iterator: Option<String>,
}

/// Reads a stream's shards in order; one `poll` returns records from every open shard.
#[derive(Debug)]
pub struct DynamoStreamFeed {
    client: Client,
    stream_arn: String,
    cursors: Mutex<BTreeMap<String, ShardCursor>>,
    /// The shard of each record the latest poll handed out, to resume from one of them.
    handed_out: Mutex<BTreeMap<String, String>>,
}

impl DynamoStreamFeed {
    /// Opens iterators at `position` on the shards that exist now; shards found later
    /// (after a split) are read from their start.
    pub async fn start(
        client: Client,
        stream_arn: impl Into<String>,
        position: StartingPosition,
    ) -> Result<Self, AdapterError> {
        let feed = DynamoStreamFeed {
            client,
            stream_arn: stream_arn.into(),
            cursors: Mutex::new(BTreeMap::new()),
            handed_out: Mutex::new(BTreeMap::new()),
        };
        let kind = match position {
            StartingPosition::TrimHorizon => ShardIteratorType::TrimHorizon,
            StartingPosition::Latest => ShardIteratorType::Latest,
        };
        let shards = feed.shard_ids().await?;
        let mut cursors = feed.cursors.lock().await;
        for shard in shards {
            let iterator = feed.iterator(&shard, kind.clone()).await?;
            cursors.insert(shard, ShardCursor { iterator });
        }
        drop(cursors);
        Ok(feed)
    }

    pub fn stream_arn(&self) -> &str {
        &self.stream_arn
    }

    async fn shard_ids(&self) -> Result<Vec<String>, AdapterError> {
        let mut ids = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let output = self
                .client
                .describe_stream()
                .stream_arn(&self.stream_arn)
                .set_exclusive_start_shard_id(start.take())
                .send()
                .await
                .map_err(|error| adapter_error("DescribeStream", error))?;
            let description = output
                .stream_description
                .ok_or_else(|| corrupt("DescribeStream", "no stream description"))?;
            ids.extend(
                description
                    .shards
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|shard| shard.shard_id),
            );
            match description.last_evaluated_shard_id {
                Some(last) => start = Some(last),
                None => return Ok(ids),
            }
        }
    }

    async fn iterator(
        &self,
        shard: &str,
        kind: ShardIteratorType,
    ) -> Result<Option<String>, AdapterError> {
        Ok(self
            .client
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(shard)
            .shard_iterator_type(kind)
            .send()
            .await
            .map_err(|error| adapter_error("GetShardIterator", error))?
            .shard_iterator)
    }

    /// Up to `max` records not yet handed out, oldest first within each shard, as the
    /// DynamoDB Streams API returns them (the stream mapping turns them into the exact
    /// event Lambda delivers).
    pub async fn poll_records(&self, max: usize) -> Result<Vec<Record>, AdapterError> {
        Ok(self
            .poll_shards(max)
            .await?
            .into_iter()
            .map(|(_, record)| record)
            .collect())
    }

    /// [`Self::poll_records`], each record with its shard.
    async fn poll_shards(&self, max: usize) -> Result<Vec<(String, Record)>, AdapterError> {
        let mut cursors = self.cursors.lock().await;
        for shard in self.shard_ids().await? {
            if let Entry::Vacant(slot) = cursors.entry(shard) {
                let iterator = self
                    .iterator(slot.key(), ShardIteratorType::TrimHorizon)
                    .await?;
                slot.insert(ShardCursor { iterator });
            }
        }
        let limit = i32::try_from(max.clamp(1, 1000)).unwrap_or(1000);
        let mut records = Vec::new();
        for (shard, cursor) in cursors.iter_mut() {
            let Some(iterator) = cursor.iterator.take() else {
                continue;
            };
            let output = self
                .client
                .get_records()
                .shard_iterator(&iterator)
                .limit(limit)
                .send()
                .await;
            let output = match output {
                Ok(output) => output,
                Err(error) => {
                    // Keep the position so the next poll retries from the same place.
                    cursor.iterator = Some(iterator);
                    return Err(adapter_error("GetRecords", error));
                }
            };
            cursor.iterator = output.next_shard_iterator;
            records.extend(
                output
                    .records
                    .unwrap_or_default()
                    .into_iter()
                    .map(|record| (shard.clone(), record)),
            );
            if records.len() >= max {
                break;
            }
        }
        Ok(records)
    }
}

impl ChangeFeed for DynamoStreamFeed {
    async fn poll(&self, max: usize) -> Result<Vec<ChangeRecord>, AdapterError> {
        let records = self.poll_shards(max).await?;
        let mut handed_out = self.handed_out.lock().await;
        handed_out.clear();
        let mut changes = Vec::with_capacity(records.len());
        for (shard, record) in &records {
            let event = event_record(record, &self.stream_arn);
            let change = change_record(&event).map_err(|error| AdapterError::Corrupt {
                operation: "GetRecords",
                source: Box::new(error),
            })?;
            handed_out.insert(change.sequence_number.clone(), shard.clone());
            changes.push(change);
        }
        Ok(changes)
    }

    async fn resume_from(&self, sequence_number: &str) -> Result<(), AdapterError> {
        let shard = self
            .handed_out
            .lock()
            .await
            .get(sequence_number)
            .cloned()
            .ok_or_else(|| {
                corrupt(
                    "GetShardIterator",
                    format!(
                        "sequence number {sequence_number} was not handed out by the latest poll"
                    ),
                )
            })?;
        let iterator = self
            .client
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(&shard)
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .sequence_number(sequence_number)
            .send()
            .await
            .map_err(|error| adapter_error("GetShardIterator", error))?
            .shard_iterator;
        self.cursors
            .lock()
            .await
            .insert(shard, ShardCursor { iterator });
        Ok(())
    }
}

/// The record Lambda delivers for `record` of the stream `stream_arn`.
pub fn event_record(record: &Record, stream_arn: &str) -> EventRecord {
    let mut out = EventRecord::default();
    out.event_id = record.event_id.clone().unwrap_or_default();
    out.event_name = record
        .event_name
        .as_ref()
        .map(|name| name.as_str().to_owned())
        .unwrap_or_default();
    out.event_source = record.event_source.clone();
    out.event_version = record.event_version.clone();
    out.aws_region = record.aws_region.clone().unwrap_or_default();
    out.event_source_arn = Some(stream_arn.to_owned());
    if let Some(data) = &record.dynamodb {
        let mut change = StreamRecord::default();
        change.keys = data.keys.clone().unwrap_or_default().into();
        change.new_image = data.new_image.clone().unwrap_or_default().into();
        change.old_image = data.old_image.clone().unwrap_or_default().into();
        change.sequence_number = data.sequence_number.clone();
        change.size_bytes = data.size_bytes.unwrap_or_default();
        change.stream_view_type = data.stream_view_type.as_ref().map(view_type);
        if let Some(created) = data.approximate_creation_date_time {
            change.approximate_creation_date_time =
                DateTime::from_timestamp(created.secs(), created.subsec_nanos())
                    .unwrap_or_default();
        }
        out.change = change;
    }
    out
}

fn view_type(view: &SdkViewType) -> StreamViewType {
    match view {
        SdkViewType::NewImage => StreamViewType::NewImage,
        SdkViewType::OldImage => StreamViewType::OldImage,
        SdkViewType::NewAndOldImages => StreamViewType::NewAndOldImages,
        _ => StreamViewType::KeysOnly,
    }
}
