//! DynamoDB capacity a run costs, from moto's request recording: the Rust counterpart of
//! the side-by-side bench kit's `capacity.py`, with the same sizing rules and prices, split into item
//! sizing (here), the recording's parser ([`recording`]), the accounting ([`ledger`]) and
//! its result ([`report`]).
//!
//! A recorded item is in DynamoDB's JSON wire format (`{"S": "x"}`): it is checked and read
//! into attribute values, then sized by the sizer the functions bill their own writes with
//! (`referral_aws::dynamo::size`), so the bench and the code cannot disagree on a byte.

mod items;
pub mod ledger;
pub mod recording;
pub mod report;

use base64::Engine;
use referral_aws::dynamo::size;
pub use referral_aws::dynamo::size::{WRITE_UNIT_BYTES, write_units};
use serde_dynamo::AttributeValue;
use serde_json::{Map, Value};
use thiserror::Error;

pub use ledger::{CapacityLedger, account_recording};
pub use recording::{RecordedRequest, RecordingError, parse_recording};
pub use report::{CapacityError, CapacityReport, TableUsage};

/// On-demand prices in us-east-1, USD per million request units: the same constants as
/// the bench kit's `capacity.py`, so the two tools' figures compare.
pub const USD_PER_MILLION_WRITE_UNITS: f64 = 0.625;
pub const USD_PER_MILLION_READ_UNITS: f64 = 0.125;
/// A read unit covers up to 4 KB of item (a write unit 1 KB: [`WRITE_UNIT_BYTES`]).
pub const READ_UNIT_BYTES: u64 = 4096;
/// DynamoDB numbers carry at most 38 significant digits.
pub const MAX_NUMBER_DIGITS: usize = 38;

/// A value that is not DynamoDB's JSON wire format.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SizeError {
    #[error("an attribute value must be an object with one type key, like {{\"S\": \"x\"}}")]
    NotAnAttribute,
    #[error("an item must be a JSON object of attribute values")]
    NotAnItem,
    #[error("unknown attribute type `{0}`")]
    UnknownType(String),
    #[error("a `{0}` value has the wrong JSON type")]
    WrongShape(&'static str),
    #[error("`{0}` is not a DynamoDB number (at most 38 significant digits)")]
    BadNumber(String),
    #[error("a binary value is not valid base64")]
    BadBase64,
}

/// Size of an item (a JSON object of attribute values) by DynamoDB's rules.
pub fn item_size(item: &Value) -> Result<u64, SizeError> {
    item_map_size(item.as_object().ok_or(SizeError::NotAnItem)?)
}

/// [`item_size`] of an item already known to be an object.
pub fn item_map_size(item: &Map<String, Value>) -> Result<u64, SizeError> {
    item.iter().try_fold(0, |total, (name, value)| {
        Ok(total + name.len() as u64 + attribute_size(value)?)
    })
}

/// Size of one attribute value, without its name: the wire form read into the SDK's value,
/// sized by the workspace's one sizer.
pub fn attribute_size(value: &Value) -> Result<u64, SizeError> {
    Ok(size::attribute_size(&attribute_value(value)?))
}

/// 1 byte plus one per two significant digits, of a valid DynamoDB number.
pub fn number_size(text: &str) -> Result<u64, SizeError> {
    normal_number(text)?;
    Ok(size::number_size(text))
}

/// An attribute value in DynamoDB's JSON wire format (`{"S": "x"}`), checked.
fn attribute_value(value: &Value) -> Result<AttributeValue, SizeError> {
    let (kind, inner) = typed(value)?;
    let texts = |kind: &'static str| -> Result<Vec<String>, SizeError> {
        array(inner, kind)?
            .iter()
            .map(|v| text(v, kind).map(str::to_owned))
            .collect()
    };
    let number = |text: &str| normal_number(text).map(|_| text.to_owned());
    Ok(match kind {
        "S" => AttributeValue::S(text(inner, "S")?.to_owned()),
        "N" => AttributeValue::N(number(text(inner, "N")?)?),
        "B" => AttributeValue::B(binary(text(inner, "B")?)?),
        "BOOL" => AttributeValue::Bool(inner.as_bool().ok_or(SizeError::WrongShape("BOOL"))?),
        "NULL" => AttributeValue::Null(true),
        "SS" => AttributeValue::Ss(texts("SS")?),
        "NS" => AttributeValue::Ns(
            texts("NS")?
                .iter()
                .map(|text| number(text))
                .collect::<Result<_, _>>()?,
        ),
        "BS" => AttributeValue::Bs(
            array(inner, "BS")?
                .iter()
                .map(|v| binary(text(v, "BS")?))
                .collect::<Result<_, _>>()?,
        ),
        "L" => AttributeValue::L(
            array(inner, "L")?
                .iter()
                .map(attribute_value)
                .collect::<Result<_, _>>()?,
        ),
        "M" => AttributeValue::M(
            inner
                .as_object()
                .ok_or(SizeError::WrongShape("M"))?
                .iter()
                .map(|(key, value)| Ok((key.clone(), attribute_value(value)?)))
                .collect::<Result<_, SizeError>>()?,
        ),
        other => return Err(SizeError::UnknownType(other.to_owned())),
    })
}

/// Read units of reading an item of `size` bytes (0 when absent): at least one unit per
/// 4 KB, half of that when eventually consistent.
pub fn read_units(size: u64, consistent: bool) -> f64 {
    let units = size.div_ceil(READ_UNIT_BYTES).max(1) as f64;
    if consistent { units } else { units / 2.0 }
}

/// A number reduced to its significant digits and a power of ten, so equal numbers written
/// differently (`1.50`, `15E-1`) compare equal as keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NormalNumber {
    pub negative: bool,
    /// Significant digits, `0` for zero.
    pub digits: String,
    pub exponent: i64,
}

pub(crate) fn normal_number(text: &str) -> Result<NormalNumber, SizeError> {
    let bad = || SizeError::BadNumber(text.to_owned());
    let (negative, unsigned) = match text.trim().as_bytes().first() {
        Some(b'-') => (true, &text.trim()[1..]),
        Some(b'+') => (false, &text.trim()[1..]),
        _ => (false, text.trim()),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (
            &unsigned[..at],
            unsigned[at + 1..].parse::<i64>().map_err(|_| bad())?,
        ),
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.len() + fraction.len() == 0 || !all_digits(whole) || !all_digits(fraction) {
        return Err(bad());
    }
    let joined = format!("{whole}{fraction}");
    let trimmed = joined.trim_start_matches('0');
    let significant = trimmed.trim_end_matches('0');
    if significant.is_empty() {
        return Ok(NormalNumber {
            negative: false,
            digits: "0".to_owned(),
            exponent: 0,
        });
    }
    if significant.len() > MAX_NUMBER_DIGITS {
        return Err(bad());
    }
    let dropped = (trimmed.len() - significant.len()) as i64;
    Ok(NormalNumber {
        negative,
        digits: significant.to_owned(),
        exponent: exponent - fraction.len() as i64 + dropped,
    })
}

fn binary(encoded: &str) -> Result<Vec<u8>, SizeError> {
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| SizeError::BadBase64)
}

/// The single `type: value` entry of an attribute value.
pub(crate) fn typed(value: &Value) -> Result<(&str, &Value), SizeError> {
    let map = value.as_object().ok_or(SizeError::NotAnAttribute)?;
    let mut entries = map.iter();
    match (entries.next(), entries.next()) {
        (Some((kind, inner)), None) => Ok((kind.as_str(), inner)),
        _ => Err(SizeError::NotAnAttribute),
    }
}

fn text<'a>(value: &'a Value, kind: &'static str) -> Result<&'a str, SizeError> {
    value.as_str().ok_or(SizeError::WrongShape(kind))
}

fn array<'a>(value: &'a Value, kind: &'static str) -> Result<&'a [Value], SizeError> {
    value
        .as_array()
        .map(Vec::as_slice)
        .ok_or(SizeError::WrongShape(kind))
}

#[cfg(test)]
mod tests;
