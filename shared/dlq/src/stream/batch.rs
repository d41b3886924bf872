//! Reading a failed batch back from the table's stream, while it still holds it: from the
//! batch's first sequence number up to its last, or the reason it cannot be had.

use std::cmp::Ordering;

use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use referral_aws::error::adapter_error;
use referral_domain::ports::AdapterError;

use super::BatchInfo;

/// Records read per GetRecords call (the API's maximum).
const RECORDS_PER_CALL: i32 = 1000;
/// Empty GetRecords answers in a row after which an open shard has nothing more: DynamoDB
/// may answer empty pages before reaching the records of a shard.
const EMPTY_PAGES: u32 = 3;
/// Upper bound on GetRecords calls for one failure record.
const MAX_PAGES: u32 = 1000;

/// Why a batch's records cannot be read.
pub(super) enum ReadError {
    /// Trimmed from the stream (older than its retention) or the stream is gone.
    Gone(String),
    /// Anything else: worth trying again later.
    Other(AdapterError),
}

/// Orders DynamoDB sequence numbers: decimal strings of up to 40 digits, too long for u128
/// in general, so compared by length and then digit by digit.
pub fn compare_sequence_numbers(a: &str, b: &str) -> Ordering {
    let digits = |text: &str| -> Option<String> {
        text.chars()
            .all(|c| c.is_ascii_digit())
            .then(|| text.trim_start_matches('0').to_owned())
    };
    match (digits(a), digits(b)) {
        (Some(a), Some(b)) => a.len().cmp(&b.len()).then_with(|| a.cmp(&b)),
        _ => a.cmp(b),
    }
}

/// The batch's records, or why they cannot be had.
pub(super) async fn read(
    streams: &aws_sdk_dynamodbstreams::Client,
    info: &BatchInfo,
) -> Result<Vec<Record>, ReadError> {
    let gone = |detail: String| {
        ReadError::Gone(format!(
            "the stream no longer holds {}..{} of shard {}: {detail}",
            info.start_sequence_number, info.end_sequence_number, info.shard_id
        ))
    };
    let iterator = streams
        .get_shard_iterator()
        .stream_arn(&info.stream_arn)
        .shard_id(&info.shard_id)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .sequence_number(&info.start_sequence_number)
        .send()
        .await;
    let mut iterator = match iterator {
        Ok(output) => output.shard_iterator,
        Err(error) => {
            let detail = aws_sdk_dynamodbstreams::error::DisplayErrorContext(&error).to_string();
            return match error.as_service_error() {
                Some(service)
                    if service.is_trimmed_data_access_exception()
                        || service.is_resource_not_found_exception() =>
                {
                    Err(gone(detail))
                }
                _ => Err(ReadError::Other(adapter_error("GetShardIterator", error))),
            };
        }
    };
    let end = info.end_sequence_number.as_str();
    let mut records = Vec::new();
    let mut empty_pages = 0;
    let mut pages = 0;
    let mut reached_end = false;
    while let Some(current) = iterator.take() {
        pages += 1;
        if pages > MAX_PAGES {
            break;
        }
        let output = match streams
            .get_records()
            .shard_iterator(current)
            .limit(RECORDS_PER_CALL)
            .send()
            .await
        {
            Ok(output) => output,
            Err(error) => {
                let detail =
                    aws_sdk_dynamodbstreams::error::DisplayErrorContext(&error).to_string();
                return match error.as_service_error() {
                    Some(service)
                        if service.is_trimmed_data_access_exception()
                            || service.is_expired_iterator_exception()
                            || service.is_resource_not_found_exception() =>
                    {
                        Err(gone(detail))
                    }
                    _ => Err(ReadError::Other(adapter_error("GetRecords", error))),
                };
            }
        };
        let page = output.records.unwrap_or_default();
        if page.is_empty() {
            empty_pages += 1;
        } else {
            empty_pages = 0;
        }
        for record in page {
            let sequence = record
                .dynamodb
                .as_ref()
                .and_then(|data| data.sequence_number.as_deref())
                .unwrap_or_default();
            match compare_sequence_numbers(sequence, end) {
                Ordering::Greater => {
                    reached_end = true;
                    break;
                }
                Ordering::Equal => {
                    reached_end = true;
                    records.push(record);
                    break;
                }
                Ordering::Less => records.push(record),
            }
        }
        if reached_end || empty_pages >= EMPTY_PAGES {
            break;
        }
        iterator = output.next_shard_iterator;
    }
    let first = records
        .first()
        .and_then(|record| record.dynamodb.as_ref())
        .and_then(|data| data.sequence_number.as_deref());
    let last = records
        .last()
        .and_then(|record| record.dynamodb.as_ref())
        .and_then(|data| data.sequence_number.as_deref());
    match (first, last) {
        (Some(first), Some(last))
            if compare_sequence_numbers(first, &info.start_sequence_number) == Ordering::Equal
                && compare_sequence_numbers(last, end) == Ordering::Equal =>
        {
            Ok(records)
        }
        (None, _) | (_, None) => Err(gone("no record at those positions".to_owned())),
        _ => Err(gone(format!(
            "found {} record(s), not the whole range",
            records.len()
        ))),
    }
}
