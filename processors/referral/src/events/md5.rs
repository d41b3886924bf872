//! MD5, for the two digests SQS puts on every message (`md5OfBody`,
//! `md5OfMessageAttributes`). A consumer may check them, so generated events carry the
//! real values.

use md5::{Digest, Md5};
use referral_domain::redact::hex;

/// The MD5 digest of `data`, as lower-case hex.
pub fn hex_digest(data: &[u8]) -> String {
    hex(&Md5::digest(data))
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
