//! Bytes a DynamoDB stream record carries: its keys and images, sized by the item-size rules
//! of [`crate::capacity`]. This is what a stream's readers (the orchestrator Lambda) are
//! sent per change, and what GetRecords' 1 MB page limit is counted in.
//!
//! Records are taken in the DynamoDB Streams JSON wire format, as GetRecords returns them
//! (`{"eventName", "dynamodb": {"Keys", "NewImage", "OldImage", ...}}`); the Lambda event of
//! a stream trigger has the same shape. [`fetch_table_records`] reads a whole stream from an
//! endpoint and hands records over in that format. Its `SizeBytes` is kept as the server
//! reported it: moto's is the length of the record's JSON, far above DynamoDB's figure.

use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_types::error::display::DisplayErrorContext;
use base64::Engine;
use serde_json::{Map, Value, json};
use thiserror::Error;

use crate::capacity::{SizeError, item_size};

/// Records per GetRecords call: the API's maximum.
const PAGE: i32 = 1000;

/// The sized parts of one record; absent parts are 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordBytes {
    pub keys: u64,
    pub new_image: u64,
    pub old_image: u64,
}

impl RecordBytes {
    pub fn total(&self) -> u64 {
        self.keys + self.new_image + self.old_image
    }
}

/// Count, mean and largest record of a stream, with the parts' totals.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamSummary {
    pub records: u64,
    pub total_bytes: u64,
    pub mean_bytes: f64,
    pub max_bytes: u64,
    pub keys_bytes: u64,
    pub new_image_bytes: u64,
    pub old_image_bytes: u64,
}

#[derive(Debug, Error)]
pub enum StreamFetchError {
    #[error("{operation} failed: {message}")]
    Sdk {
        operation: &'static str,
        message: String,
        #[source]
        source: BoxError,
    },
    #[error("table {table} has no stream: create it with a StreamSpecification")]
    NoStream { table: String },
    #[error("the stream holds an attribute type this SDK version does not know")]
    UnknownAttribute,
}

/// Sizes one record, given whole or as its `dynamodb` part.
pub fn record_bytes(record: &Value) -> Result<RecordBytes, SizeError> {
    let change = record.get("dynamodb").unwrap_or(record);
    let part = |name: &str| change.get(name).map_or(Ok(0), item_size);
    Ok(RecordBytes {
        keys: part("Keys")?,
        new_image: part("NewImage")?,
        old_image: part("OldImage")?,
    })
}

/// Sums up the records' sizes.
pub fn summarize<'a>(
    records: impl IntoIterator<Item = &'a Value>,
) -> Result<StreamSummary, SizeError> {
    let mut summary = StreamSummary::default();
    for record in records {
        let bytes = record_bytes(record)?;
        summary.records += 1;
        summary.total_bytes += bytes.total();
        summary.max_bytes = summary.max_bytes.max(bytes.total());
        summary.keys_bytes += bytes.keys;
        summary.new_image_bytes += bytes.new_image;
        summary.old_image_bytes += bytes.old_image;
    }
    if summary.records > 0 {
        summary.mean_bytes = summary.total_bytes as f64 / summary.records as f64;
    }
    Ok(summary)
}

/// The stream ARN of `table`.
pub async fn table_stream_arn(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<String, StreamFetchError> {
    dynamodb
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(sdk("DescribeTable"))?
        .table
        .and_then(|description| description.latest_stream_arn)
        .ok_or_else(|| StreamFetchError::NoStream {
            table: table.to_owned(),
        })
}

/// Every record the stream of `table` still holds, shard by shard, oldest first.
pub async fn fetch_table_records(
    dynamodb: &aws_sdk_dynamodb::Client,
    streams: &aws_sdk_dynamodbstreams::Client,
    table: &str,
) -> Result<Vec<Value>, StreamFetchError> {
    let arn = table_stream_arn(dynamodb, table).await?;
    fetch_stream_records(streams, &arn).await
}

/// Every record of a stream from its trim horizon. A shard is read until a page comes back
/// empty: on an open shard that means caught up (DynamoDB itself may also answer an empty
/// page early, so against AWS call this after writes have settled).
pub async fn fetch_stream_records(
    streams: &aws_sdk_dynamodbstreams::Client,
    stream_arn: &str,
) -> Result<Vec<Value>, StreamFetchError> {
    let mut records = Vec::new();
    for shard in shard_ids(streams, stream_arn).await? {
        let mut iterator = streams
            .get_shard_iterator()
            .stream_arn(stream_arn)
            .shard_id(&shard)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .map_err(sdk("GetShardIterator"))?
            .shard_iterator;
        while let Some(current) = iterator.take() {
            let page = streams
                .get_records()
                .shard_iterator(current)
                .limit(PAGE)
                .send()
                .await
                .map_err(sdk("GetRecords"))?;
            let page_records = page.records.unwrap_or_default();
            if page_records.is_empty() {
                break;
            }
            for record in &page_records {
                records.push(record_to_wire(record)?);
            }
            iterator = page.next_shard_iterator;
        }
    }
    Ok(records)
}

async fn shard_ids(
    streams: &aws_sdk_dynamodbstreams::Client,
    stream_arn: &str,
) -> Result<Vec<String>, StreamFetchError> {
    let mut ids = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let description = streams
            .describe_stream()
            .stream_arn(stream_arn)
            .set_exclusive_start_shard_id(start.take())
            .send()
            .await
            .map_err(sdk("DescribeStream"))?
            .stream_description;
        let Some(description) = description else {
            return Ok(ids);
        };
        let shards = description.shards.unwrap_or_default();
        ids.extend(shards.into_iter().filter_map(|shard| shard.shard_id));
        match description.last_evaluated_shard_id {
            Some(last) => start = Some(last),
            None => return Ok(ids),
        }
    }
}

/// A GetRecords record in the API's JSON wire format.
pub fn record_to_wire(record: &Record) -> Result<Value, StreamFetchError> {
    let mut change = Map::new();
    if let Some(stream_record) = &record.dynamodb {
        let images = [
            ("Keys", &stream_record.keys),
            ("NewImage", &stream_record.new_image),
            ("OldImage", &stream_record.old_image),
        ];
        for (name, image) in images {
            if let Some(image) = image {
                let wire = image
                    .iter()
                    .map(|(key, value)| Ok((key.clone(), attribute_to_wire(value)?)))
                    .collect::<Result<Map<String, Value>, StreamFetchError>>()?;
                change.insert(name.to_owned(), Value::Object(wire));
            }
        }
        if let Some(sequence) = &stream_record.sequence_number {
            change.insert("SequenceNumber".to_owned(), json!(sequence));
        }
        if let Some(size) = stream_record.size_bytes {
            change.insert("SizeBytes".to_owned(), json!(size));
        }
    }
    Ok(json!({
        "eventID": record.event_id,
        "eventName": record.event_name.as_ref().map(|name| name.as_str()),
        "dynamodb": change,
    }))
}

/// One attribute value in the wire format (`{"S": "x"}`, binaries base64).
pub fn attribute_to_wire(value: &AttributeValue) -> Result<Value, StreamFetchError> {
    let base64 = |blob: &aws_smithy_types::Blob| {
        base64::engine::general_purpose::STANDARD.encode(blob.as_ref())
    };
    Ok(match value {
        AttributeValue::S(text) => json!({"S": text}),
        AttributeValue::N(number) => json!({"N": number}),
        AttributeValue::B(blob) => json!({"B": base64(blob)}),
        AttributeValue::Bool(flag) => json!({"BOOL": flag}),
        AttributeValue::Null(flag) => json!({"NULL": flag}),
        AttributeValue::Ss(texts) => json!({"SS": texts}),
        AttributeValue::Ns(numbers) => json!({"NS": numbers}),
        AttributeValue::Bs(blobs) => json!({"BS": blobs.iter().map(base64).collect::<Vec<_>>()}),
        AttributeValue::L(values) => json!({"L": values
            .iter()
            .map(attribute_to_wire)
            .collect::<Result<Vec<_>, _>>()?}),
        AttributeValue::M(map) => json!({"M": map
            .iter()
            .map(|(key, value)| Ok((key.clone(), attribute_to_wire(value)?)))
            .collect::<Result<Map<String, Value>, StreamFetchError>>()?}),
        _ => return Err(StreamFetchError::UnknownAttribute),
    })
}

fn sdk<E>(operation: &'static str) -> impl FnOnce(E) -> StreamFetchError
where
    E: std::error::Error + Send + Sync + 'static,
{
    move |error| StreamFetchError::Sdk {
        operation,
        message: DisplayErrorContext(&error).to_string(),
        source: Box::new(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODIFY: &str = include_str!("../../events/lambda/legacy-dynamodb-stream-modify.json");

    #[test]
    fn sizes_keys_and_both_images_of_a_real_record() {
        let event: Value = serde_json::from_str(MODIFY).unwrap();
        let record = &event["Records"][0];
        let bytes = record_bytes(record).unwrap();
        // "customerEmail" (13) + "jane.doe@example.com" (20).
        assert_eq!(bytes.keys, 33);
        let change = &record["dynamodb"];
        assert_eq!(bytes.new_image, item_size(&change["NewImage"]).unwrap());
        assert_eq!(bytes.old_image, item_size(&change["OldImage"]).unwrap());
        assert!(bytes.old_image > 0 && bytes.new_image > bytes.old_image);
        // The inner part alone sizes the same.
        assert_eq!(record_bytes(change).unwrap(), bytes);
    }

    #[test]
    fn summaries_count_mean_and_max() {
        let records = [
            json!({"dynamodb": {"Keys": {"k": {"S": "a"}}, "NewImage": {"k": {"S": "a"}}}}),
            json!({"dynamodb": {"Keys": {"k": {"S": "bb"}},
                                "NewImage": {"k": {"S": "bb"}, "n": {"N": "12"}}}}),
            json!({"eventName": "REMOVE", "dynamodb": {"Keys": {"k": {"S": "a"}}}}),
        ];
        let summary = summarize(&records).unwrap();
        assert_eq!(summary.records, 3);
        assert_eq!(
            (summary.keys_bytes, summary.new_image_bytes),
            (2 + 3 + 2, 2 + 3 + 3)
        );
        assert_eq!(summary.max_bytes, 3 + 6);
        assert_eq!(summary.total_bytes, 15);
        assert_eq!(summary.mean_bytes, 5.0);
        assert_eq!(
            summarize(std::iter::empty()).unwrap(),
            StreamSummary::default()
        );
    }

    #[test]
    fn sdk_records_become_the_wire_format() {
        use aws_sdk_dynamodbstreams::types::{OperationType, StreamRecord};
        let stream_record = StreamRecord::builder()
            .keys("pk", AttributeValue::S("a".into()))
            .new_image("pk", AttributeValue::S("a".into()))
            .new_image(
                "b",
                AttributeValue::B(aws_smithy_types::Blob::new(vec![1, 2, 3])),
            )
            .new_image(
                "l",
                AttributeValue::L(vec![
                    AttributeValue::Ns(vec!["1".into()]),
                    AttributeValue::Null(true),
                ]),
            )
            .size_bytes(99)
            .build();
        let record = Record::builder()
            .event_name(OperationType::Insert)
            .dynamodb(stream_record)
            .build();
        let wire = record_to_wire(&record).unwrap();
        assert_eq!(wire["eventName"], "INSERT");
        assert_eq!(wire["dynamodb"]["NewImage"]["b"], json!({"B": "AQID"}));
        assert_eq!(wire["dynamodb"]["SizeBytes"], 99);
        let bytes = record_bytes(&wire).unwrap();
        // pk: 2 + 1; b: 1 + 3; l: 1 + 3 + (1 + 2) + (1 + 1).
        assert_eq!(
            (bytes.keys, bytes.new_image, bytes.old_image),
            (3, 3 + 4 + 9, 0)
        );
    }
}
