//! Keeping personal data out of logs: customers appear in logs only as a stable hash.

use sha2::{Digest, Sha256};

/// The first 64 bits of SHA-256, in hex: short enough for log lines and item bookkeeping,
/// long enough that an accidental collision between two payloads is not a practical concern.
pub fn short_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    hex(&digest[..8])
}

/// A stable, non-reversible reference to a customer for logs and metrics. The domain
/// separator keeps it distinct from other hashes of the same address.
pub fn customer_ref(email: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"customer:");
    hasher.update(email.as_bytes());
    hex(&hasher.finalize()[..6])
}

/// Masks an address for human-facing output: `jane.doe@example.com` → `j***@example.com`.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first = local.chars().next().map(String::from).unwrap_or_default();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            // Writing to a String cannot fail.
            let _ = write!(out, "{byte:02x}");
            out
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_refs_are_stable_and_do_not_contain_the_address() {
        let a = customer_ref("jane@example.com");
        assert_eq!(a, customer_ref("jane@example.com"));
        assert_ne!(a, customer_ref("john@example.com"));
        assert_eq!(a.len(), 12);
        assert!(!a.contains("jane"));
    }

    #[test]
    fn masking_keeps_only_the_first_letter_and_the_domain() {
        assert_eq!(mask_email("jane.doe@example.com"), "j***@example.com");
        assert_eq!(mask_email("nonsense"), "***");
    }
}
