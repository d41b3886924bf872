//! Keeping personal data out of logs: customers appear in logs only as a stable hash.

use std::sync::OnceLock;

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::digits::push_hex;
use crate::env::{EnvError, Vars};

/// The secret that keys [`customer_ref`]. Every process that computes refs reads it (the
/// three functions, and the `referral` tool to match `customer=` filters), and they must
/// share it, or refs in logs and queue attributes stop matching. Unset, refs are plain
/// hashes: anyone with a list of addresses can hash them and find who a ref is, which is
/// acceptable in development (refs stay comparable across runs without a secret to share)
/// and not in production, where the functions read it from Secrets Manager instead (see
/// [`CUSTOMER_REF_KEY_ARN_VAR`]).
pub const CUSTOMER_REF_KEY_VAR: &str = "CUSTOMER_REF_KEY";
/// The Secrets Manager secret holding the key, as deployed: the key itself then sits in no
/// environment variable. Read at start-up and given to [`install_customer_ref_key`].
pub const CUSTOMER_REF_KEY_ARN_VAR: &str = "CUSTOMER_REF_KEY_ARN";
/// Shorter keys are refused: they could be guessed from refs and a list of addresses.
pub const MIN_CUSTOMER_REF_KEY_BYTES: usize = 16;

/// The process's key: installed at start-up, or read from [`CUSTOMER_REF_KEY_VAR`] the
/// first time a ref is computed.
static PROCESS_KEY: OnceLock<Option<String>> = OnceLock::new();

fn process_key() -> Option<&'static [u8]> {
    PROCESS_KEY
        .get_or_init(|| Vars::process().get(CUSTOMER_REF_KEY_VAR))
        .as_deref()
        .map(str::as_bytes)
}

/// Makes `key` (read from a secret store) the process's key. Call it at start-up, before the
/// first ref: refs computed before would be keyed otherwise, so a process that computed one
/// already, under another key, refuses it. Short keys are refused as in
/// [`check_customer_ref_key`]; `source` names where the key came from in the error.
pub fn install_customer_ref_key(source: &'static str, key: String) -> Result<(), EnvError> {
    if key.len() < MIN_CUSTOMER_REF_KEY_BYTES {
        return Err(EnvError::Invalid {
            name: source,
            expected: "a secret of at least 16 bytes",
            value: format!("<{} bytes, not shown>", key.len()),
        });
    }
    let installed = PROCESS_KEY.get_or_init(|| Some(key.clone()));
    if installed.as_deref() != Some(key.as_str()) {
        return Err(EnvError::Invalid {
            name: source,
            expected: "to be installed before the first customer ref is computed",
            value: "<a key, not shown>".to_owned(),
        });
    }
    Ok(())
}

/// Refuses a key too short to be secret. Each binary calls it at start-up with the rest of
/// its settings, so that a bad key stops it before the first ref is logged.
pub fn check_customer_ref_key<F: Fn(&str) -> Option<String>>(
    vars: &Vars<F>,
) -> Result<(), EnvError> {
    match vars.get(CUSTOMER_REF_KEY_VAR) {
        Some(key) if key.len() < MIN_CUSTOMER_REF_KEY_BYTES => Err(EnvError::Invalid {
            name: CUSTOMER_REF_KEY_VAR,
            expected: "a secret of at least 16 bytes (or unset for plain hashes)",
            value: format!("<{} bytes, not shown>", key.len()),
        }),
        _ => Ok(()),
    }
}

/// The first 64 bits of SHA-256, in hex: short enough for log lines and item bookkeeping,
/// long enough that an accidental collision between two payloads is not a practical concern.
pub fn short_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    hex(&digest[..8])
}

/// A stable reference to a customer for logs, metrics and queue attributes: 12 hex digits,
/// keyed with the process's `CUSTOMER_REF_KEY` when one is set (see
/// [`CUSTOMER_REF_KEY_VAR`]). The one function every component calls.
pub fn customer_ref(email: &str) -> String {
    customer_ref_with(process_key(), email)
}

/// [`customer_ref`] with an explicit key: HMAC-SHA256 of `customer:<email>` under `key`, or
/// without one its plain SHA-256 (the domain separator keeps it distinct from other hashes
/// of the same address); the first 48 bits either way.
pub fn customer_ref_with(key: Option<&[u8]>, email: &str) -> String {
    hex(&keyed_digest(key, b"customer:", email)[..6])
}

/// The key of a customer's erasure marker: the same keyed hash as [`customer_ref`] under
/// another domain separator, all 256 bits, because a collision here would drop a stranger's
/// events instead of merely blurring a log line.
pub fn erasure_hash(email: &str) -> String {
    erasure_hash_with(process_key(), email)
}

/// [`erasure_hash`] with an explicit key.
pub fn erasure_hash_with(key: Option<&[u8]>, email: &str) -> String {
    hex(&keyed_digest(key, b"erased:", email))
}

/// HMAC-SHA256 of `separator` then `email` under `key`, or without a key its plain SHA-256.
fn keyed_digest(key: Option<&[u8]>, separator: &[u8], email: &str) -> [u8; 32] {
    match key {
        Some(key) => {
            let mut mac = <Hmac<Sha256> as KeyInit>::new(&hmac_key_block(key).into());
            mac.update(separator);
            mac.update(email.as_bytes());
            mac.finalize().into_bytes().into()
        }
        None => {
            let mut hasher = Sha256::new();
            hasher.update(separator);
            hasher.update(email.as_bytes());
            hasher.finalize().into()
        }
    }
}

/// HMAC's key block for SHA-256 (RFC 2104): the key zero-padded to 64 bytes, or its digest
/// when longer. Built here so that keying cannot fail (the slice constructor's error case
/// never happens for HMAC, but would need handling).
fn hmac_key_block(key: &[u8]) -> [u8; 64] {
    let mut block = [0u8; 64];
    if key.len() > block.len() {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    block
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
    fn a_key_makes_refs_unguessable_from_the_address_alone() {
        let email = "jane@example.com";
        let plain = customer_ref_with(None, email);
        // The unkeyed ref is what anyone with the address can compute.
        let mut guess = Sha256::new();
        guess.update(b"customer:");
        guess.update(email.as_bytes());
        assert_eq!(plain, hex(&guess.finalize()[..6]));

        let key = b"ref-key-0123456789abcdef";
        let keyed = customer_ref_with(Some(key), email);
        assert_ne!(keyed, plain);
        assert_eq!(keyed, customer_ref_with(Some(key), email), "stable");
        assert_ne!(
            keyed,
            customer_ref_with(Some(b"another-key-0123456789"), email)
        );
        assert_eq!(keyed.len(), 12);
        // RFC 2104 HMAC-SHA256, as any other implementation computes it:
        // python3 -c 'import hmac,hashlib; print(hmac.new(b"ref-key-0123456789abcdef",
        //   b"customer:jane@example.com", hashlib.sha256).hexdigest()[:12])'
        assert_eq!(keyed, "856963b6a9da");
        let long_key = [7u8; 100];
        assert_eq!(customer_ref_with(Some(&long_key), email), "c90b5c76eaea");
    }

    #[test]
    fn erasure_hashes_are_keyed_full_length_and_apart_from_refs() {
        let email = "jane@example.com";
        let key = b"ref-key-0123456789abcdef";
        let keyed = erasure_hash_with(Some(key), email);
        assert_eq!(keyed.len(), 64);
        assert_eq!(keyed, erasure_hash_with(Some(key), email), "stable");
        assert_ne!(keyed, erasure_hash_with(None, email));
        assert_ne!(keyed, erasure_hash_with(Some(key), "john@example.com"));
        assert!(!keyed.starts_with(&customer_ref_with(Some(key), email)));
        // python3 -c 'import hmac,hashlib; print(hmac.new(b"ref-key-0123456789abcdef",
        //   b"erased:jane@example.com", hashlib.sha256).hexdigest())'
        assert_eq!(
            keyed,
            "e8077793d8dd5408b9dbaba0e2fbdd2b7ad2502e1922deaf6997c078aa014ae2"
        );
    }

    #[test]
    fn a_short_key_is_refused_without_showing_it() {
        let vars = |value: &'static str| {
            Vars::new(move |name: &str| (name == CUSTOMER_REF_KEY_VAR).then(|| value.to_owned()))
        };
        assert_eq!(check_customer_ref_key(&vars("")), Ok(()));
        assert_eq!(check_customer_ref_key(&vars("0123456789abcdef")), Ok(()));
        let refused = check_customer_ref_key(&vars("short-secret")).unwrap_err();
        assert!(
            refused.to_string().contains(CUSTOMER_REF_KEY_VAR),
            "{refused}"
        );
        assert!(!refused.to_string().contains("short-secret"), "{refused}");
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
