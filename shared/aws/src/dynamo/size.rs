//! DynamoDB's sizing of an item, which its write units are billed by: the one sizer of the
//! workspace (the bench prices moto's recorded requests with it too).

use serde_dynamo::AttributeValue as Value;

/// An item's size by DynamoDB's rules: each attribute's name plus its value.
pub fn item_size(item: &serde_dynamo::Item) -> u64 {
    item.iter()
        .map(|(name, value)| name.len() as u64 + attribute_size(value))
        .sum()
}

/// An attribute value's size, without its name: a string its UTF-8 bytes, a number 1 byte
/// plus one per two significant digits, a binary its raw bytes, a boolean or null 1 byte, a
/// list or map 3 bytes plus 1 per element (and a map's key bytes).
pub fn attribute_size(value: &Value) -> u64 {
    match value {
        Value::S(text) => text.len() as u64,
        Value::N(number) => number_size(number),
        Value::B(bytes) => bytes.len() as u64,
        Value::Bool(_) | Value::Null(_) => 1,
        Value::Ss(texts) => texts.iter().map(|t| t.len() as u64).sum(),
        Value::Ns(numbers) => numbers.iter().map(|n| number_size(n)).sum(),
        Value::Bs(blobs) => blobs.iter().map(|b| b.len() as u64).sum(),
        Value::L(values) => 3 + values.iter().map(|v| 1 + attribute_size(v)).sum::<u64>(),
        Value::M(map) => {
            3 + map
                .iter()
                .map(|(key, v)| key.len() as u64 + 1 + attribute_size(v))
                .sum::<u64>()
        }
    }
}

/// A write unit covers up to 1 KB of item.
pub const WRITE_UNIT_BYTES: u64 = 1024;

/// Write units of a write that replaces an item of `old` bytes (0 when absent) with one of
/// `new` bytes: DynamoDB charges the larger of the two, at least one unit.
pub fn write_units(old: u64, new: u64) -> u64 {
    old.max(new).div_ceil(WRITE_UNIT_BYTES).max(1)
}

/// The write units of putting an item of `item`'s stored form where none was.
pub fn put_write_units(item: &impl serde::Serialize) -> u64 {
    serde_dynamo::to_item::<_, serde_dynamo::Item>(item)
        .map_or(1, |stored| write_units(0, item_size(&stored)))
}

/// One byte, plus one per two significant digits (leading and trailing zeros do not count).
pub fn number_size(text: &str) -> u64 {
    let mantissa = text.split(['e', 'E']).next().unwrap_or_default();
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits
        .trim_start_matches('0')
        .trim_end_matches('0')
        .len()
        .max(1);
    1 + (significant as u64).div_ceil(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_sized_by_significant_digits() {
        assert_eq!(number_size("0"), 2);
        assert_eq!(number_size("1500"), 2);
        assert_eq!(number_size("-123.450"), 4);
        assert_eq!(number_size("4.333333333333333"), 9);
    }
}
