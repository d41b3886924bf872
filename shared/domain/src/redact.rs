//! Keeping personal data out of logs: customers appear in logs only as a stable hash.

use sha2::{Digest, Sha256};

use crate::digits::push_hex;

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

/// Masks every e-mail-like token in free text: `jane.doe@example.com` → `j***@example.com`.
/// For text that may quote customer data, such as an error from a parser or a service.
pub fn mask_emails(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut at = 0;
    while let Some(offset) = text[at..].find('@') {
        let sign = at + offset;
        let start = (0..sign)
            .rev()
            .take_while(|&index| is_local_byte(bytes[index]))
            .last()
            .unwrap_or(sign);
        let mut end = (sign + 1..bytes.len())
            .take_while(|&index| is_domain_byte(bytes[index]))
            .last()
            .map_or(sign + 1, |index| index + 1);
        // A sentence's full stop after the address is not part of the domain.
        while end > sign + 1 && bytes[end - 1] == b'.' {
            end -= 1;
        }
        let domain = &text[sign + 1..end];
        if start < sign && start >= copied && domain.contains('.') && !domain.starts_with('.') {
            out.push_str(&text[copied..start]);
            out.push_str(&mask_email(&text[start..end]));
            copied = end;
        }
        at = end.max(sign + 1);
    }
    out.push_str(&text[copied..]);
    out
}

/// The usual characters of an address's local part. RFC 5322 allows more (`=`, `'`, ...),
/// but those also delimit addresses in text (`customer=ann@x.org`, `'ann@x.org'`), and
/// masking must not swallow the text around an address.
fn is_local_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"._%+-".contains(&byte)
}

fn is_domain_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'.' || byte == b'-'
}

pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
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
    fn addresses_in_text_are_masked_and_the_rest_kept() {
        assert_eq!(
            mask_emails("from Jane.Doe@Example.com, and bob@x.org."),
            "from J***@Example.com, and b***@x.org."
        );
        assert_eq!(mask_emails("no address @ all"), "no address @ all");
        assert_eq!(mask_emails("user@localhost"), "user@localhost");
        assert_eq!(mask_emails("a@b.c@d.e"), "a***@b.c@d.e");
        assert_eq!(mask_emails("é@x.io ü"), "é@x.io ü");
        assert_eq!(mask_emails(""), "");
        assert_eq!(mask_emails("customer=ann@x.org"), "customer=a***@x.org");
    }

    #[test]
    fn masking_keeps_only_the_first_letter_and_the_domain() {
        assert_eq!(mask_email("jane.doe@example.com"), "j***@example.com");
        assert_eq!(mask_email("nonsense"), "***");
    }
}
