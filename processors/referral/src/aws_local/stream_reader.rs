//! Reads a table's stream through the DynamoDB Streams API the way the Lambda event-source
//! mapping does (shards, iterators, records in order), for local runs and tests. The records
//! are handed on as the API returns them: `referral_orchestrator::mapping` turns them into
//! the exact event Lambda delivers, so local runs decode images the function's way.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use tokio::sync::Mutex;

use referral_aws::error::{adapter_error, corrupt};
use referral_domain::ports::AdapterError;

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
        for cursor in cursors.values_mut() {
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
            records.extend(output.records.unwrap_or_default());
            if records.len() >= max {
                break;
            }
        }
        Ok(records)
    }
}
