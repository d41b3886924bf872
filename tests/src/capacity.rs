//! DynamoDB capacity a run costs, from moto's request recording: the Rust counterpart of
//! the side-by-side bench kit's `capacity.py`, with the same sizing rules and prices, split into item
//! sizing (here), the recording's parser ([`recording`]), the accounting ([`ledger`]) and
//! its result ([`report`]).
//!
//! Sizes follow DynamoDB's rules on the JSON wire format (`{"S": "x"}`): attribute name
//! bytes plus the value's size, where a string is its UTF-8 bytes, a number 1 byte plus one
//! per two significant digits, a binary its raw bytes, a boolean or null 1 byte, and a list
//! or map 3 bytes plus 1 per element (and a map's key bytes).

mod items;
pub mod ledger;
pub mod recording;
pub mod report;

use base64::Engine;
use serde_json::{Map, Value};
use thiserror::Error;

pub use ledger::{CapacityLedger, account_recording};
pub use recording::{RecordedRequest, RecordingError, parse_recording};
pub use report::{CapacityError, CapacityReport, TableUsage};

/// On-demand prices in us-east-1, USD per million request units: the same constants as
/// the bench kit's `capacity.py`, so the two tools' figures compare.
pub const USD_PER_MILLION_WRITE_UNITS: f64 = 0.625;
pub const USD_PER_MILLION_READ_UNITS: f64 = 0.125;
/// A write unit covers up to 1 KB of item, a read unit up to 4 KB.
pub const WRITE_UNIT_BYTES: u64 = 1024;
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

/// Size of one attribute value, without its name.
pub fn attribute_size(value: &Value) -> Result<u64, SizeError> {
    let (kind, inner) = typed(value)?;
    match kind {
        "S" => Ok(text(inner, "S")?.len() as u64),
        "N" => number_size(text(inner, "N")?),
        "B" => binary_size(text(inner, "B")?),
        "BOOL" | "NULL" => Ok(1),
        "SS" => sum(array(inner, "SS")?, |v| Ok(text(v, "SS")?.len() as u64)),
        "NS" => sum(array(inner, "NS")?, |v| number_size(text(v, "NS")?)),
        "BS" => sum(array(inner, "BS")?, |v| binary_size(text(v, "BS")?)),
        "L" => Ok(3 + sum(array(inner, "L")?, |v| Ok(1 + attribute_size(v)?))?),
        "M" => {
            let map = inner.as_object().ok_or(SizeError::WrongShape("M"))?;
            map.iter().try_fold(3, |total, (key, value)| {
                Ok(total + key.len() as u64 + 1 + attribute_size(value)?)
            })
        }
        other => Err(SizeError::UnknownType(other.to_owned())),
    }
}

/// 1 byte plus one per two significant digits; leading and trailing zeros do not count.
pub fn number_size(text: &str) -> Result<u64, SizeError> {
    let digits = normal_number(text)?.digits.len() as u64;
    Ok(1 + digits.div_ceil(2))
}

/// Write units of a write that replaces an item of `old` bytes with one of `new` bytes:
/// DynamoDB charges the larger of the two, at least one unit.
pub fn write_units(old: u64, new: u64) -> u64 {
    old.max(new).div_ceil(WRITE_UNIT_BYTES).max(1)
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

fn binary_size(encoded: &str) -> Result<u64, SizeError> {
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map(|bytes| bytes.len() as u64)
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

fn sum(
    values: &[Value],
    size: impl Fn(&Value) -> Result<u64, SizeError>,
) -> Result<u64, SizeError> {
    values
        .iter()
        .try_fold(0, |total, value| Ok(total + size(value)?))
}

#[cfg(test)]
mod tests;
