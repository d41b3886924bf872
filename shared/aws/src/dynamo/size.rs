//! DynamoDB's sizing of an item, which its write units are billed by.

use serde_dynamo::AttributeValue as Value;

/// An item's size by DynamoDB's rules: each attribute's name plus its value.
pub fn item_size(item: &serde_dynamo::Item) -> u64 {
    item.iter()
        .map(|(name, value)| name.len() as u64 + attribute_size(value))
        .sum()
}

fn attribute_size(value: &Value) -> u64 {
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

/// The write units of putting an item of `item`'s stored form: one per started KB.
pub fn put_write_units(item: &impl serde::Serialize) -> u64 {
    serde_dynamo::to_item::<_, serde_dynamo::Item>(item)
        .map_or(1, |stored| item_size(&stored).div_ceil(1024).max(1))
}

/// One byte, plus one per two significant digits.
fn number_size(text: &str) -> u64 {
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
