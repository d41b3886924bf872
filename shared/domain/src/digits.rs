//! Decimal and hex digits appended to a `String` without `core::fmt`: ids, hashes and
//! counts are formatted several times per event, and the formatting machinery costs more
//! than the digits themselves.

/// Appends `value` in decimal, left-padded with zeros to at least `width` digits: what
/// `{:0width$}` writes (`width` 0: what `{}` writes).
pub fn push_decimal(out: &mut String, value: u64, width: usize) {
    // u64::MAX has 20 digits.
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    let mut rest = value;
    loop {
        start -= 1;
        // A remainder below 10 always fits a u8.
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let written = digits.len() - start;
    out.extend(std::iter::repeat_n('0', width.saturating_sub(written)));
    out.extend(digits[start..].iter().copied().map(char::from));
}

/// `prefix` followed by `value` zero-padded to `width` digits, in a string of exact size.
pub fn padded_id(prefix: &str, value: u64, width: usize) -> String {
    let mut id = String::with_capacity(prefix.len() + width.max(20));
    id.push_str(prefix);
    push_decimal(&mut id, value, width);
    id
}

/// Appends `bytes` as lower-case hex, two digits a byte: what `{:02x}` per byte writes.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_match_the_formatter() {
        for value in [
            0,
            1,
            9,
            10,
            99,
            100,
            12_345,
            999_999_999_999,
            1_000_000_000_000,
            u64::MAX,
        ] {
            for width in [0, 1, 8, 12, 21, 25] {
                let mut out = String::from("x");
                push_decimal(&mut out, value, width);
                assert_eq!(out, format!("x{value:0width$}"), "{value} {width}");
            }
        }
        assert_eq!(padded_id("v", 42, 12), "v000000000042");
    }

    #[test]
    fn hex_matches_the_formatter() {
        let bytes: Vec<u8> = (0..=255).collect();
        let mut out = String::new();
        push_hex(&mut out, &bytes);
        let expected: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(out, expected);
    }
}
