//! MD5, for the two digests SQS puts on every message (`md5OfBody`,
//! `md5OfMessageAttributes`). A consumer may check them, so generated events carry the
//! real values; MD5 is small enough to keep here rather than add a crate for it.

const SHIFTS: [u32; 64] = [
    7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9,
    14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10, 15,
    21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
];

/// RFC 1321's table: `floor(abs(sin(i + 1)) * 2^32)`.
fn constant(i: usize) -> u32 {
    ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32
}

/// The MD5 digest of `data`, as lower-case hex.
pub fn hex_digest(data: &[u8]) -> String {
    let mut state: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    let mut message = data.to_vec();
    let bit_length = (data.len() as u64).wrapping_mul(8);
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&bit_length.to_le_bytes());
    for block in message.chunks_exact(64) {
        let mut words = [0u32; 16];
        for (word, bytes) in words.iter_mut().zip(block.chunks_exact(4)) {
            *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        let [mut a, mut b, mut c, mut d] = state;
        for (i, shift) in SHIFTS.iter().enumerate() {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let rotated = a
                .wrapping_add(f)
                .wrapping_add(constant(i))
                .wrapping_add(words[g])
                .rotate_left(*shift);
            (a, d, c) = (d, c, b);
            b = b.wrapping_add(rotated);
        }
        for (word, add) in state.iter_mut().zip([a, b, c, d]) {
            *word = word.wrapping_add(add);
        }
    }
    state
        .iter()
        .flat_map(|word| word.to_le_bytes())
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// `md5OfMessageAttributes` of string attributes, as SQS computes it: for each attribute in
/// name order, the name, the data type (each as a 4-byte big-endian length and the bytes),
/// the transport type (1 for strings) and the value.
pub fn string_attributes_digest(attributes: &[(&str, &str)]) -> String {
    let mut sorted = attributes.to_vec();
    sorted.sort_unstable();
    let mut buffer = Vec::new();
    for (name, value) in sorted {
        put_sized(&mut buffer, name.as_bytes());
        put_sized(&mut buffer, b"String");
        buffer.push(1);
        put_sized(&mut buffer, value.as_bytes());
    }
    hex_digest(&buffer)
}

fn put_sized(buffer: &mut Vec<u8>, bytes: &[u8]) {
    // Attribute names and values are far below 4 GiB (SQS takes 256 KiB in all).
    let length = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    buffer.extend_from_slice(&length.to_be_bytes());
    buffer.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_1321_test_suite() {
        assert_eq!(hex_digest(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(hex_digest(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            hex_digest(
                b"12345678901234567890123456789012345678901234567890123456789012345678901234567890"
            ),
            "57edf4a22be3c955ac49da2e2107b67a"
        );
    }

    #[test]
    fn attribute_digest_matches_one_sqs_computed() {
        // The digest on the first hand-written fixture's message; Python's hashlib agrees.
        assert_eq!(
            string_attributes_digest(&[
                ("event_type", "service.completed"),
                ("event_id", "evt_01KESBRMM8A7S6MM0A78RMXX32"),
            ]),
            "4724aff654b0388096285dc3a95ef82a"
        );
    }
}
