//! Webhook signatures: `x-signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`.
//!
//! The timestamp is inside the signed text, so it cannot be changed without the secret; a
//! signature is only honoured within a window around now, so a captured request cannot be
//! replayed later. Comparisons are constant-time (`Mac::verify_slice`).

use std::fmt;
use std::time::Duration;

use hmac::{Hmac, Mac};
use referral_domain::redact::hex;
use sha2::Sha256;
use thiserror::Error;

type HmacSha256 = Hmac<Sha256>;

/// The request header carrying the signature (header names are case-insensitive).
pub const SIGNATURE_HEADER: &str = "x-signature";
/// The signature scheme this code understands; other `key=value` entries are ignored.
pub const SCHEME: &str = "v1";
/// More `v1=` entries than this is not a sender rotating secrets, it is a guessing attempt.
pub const MAX_SIGNATURES: usize = 8;

const DIGEST_BYTES: usize = 32;

/// One signing secret, keyed once. `Debug` never shows it.
#[derive(Clone)]
pub struct WebhookSecret {
    keyed: HmacSha256,
}

impl WebhookSecret {
    /// Keys HMAC-SHA256 with `secret` (HMAC accepts any key length, so `None` does not
    /// happen in practice; the configuration also requires a minimum length).
    pub fn new(secret: &[u8]) -> Option<Self> {
        HmacSha256::new_from_slice(secret)
            .ok()
            .map(|keyed| WebhookSecret { keyed })
    }

    fn mac(&self, timestamp: i64, body: &[u8]) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The hex signature of `body` at `timestamp`.
    pub fn signature(&self, timestamp: i64, body: &[u8]) -> String {
        hex(&self.mac(timestamp, body).finalize().into_bytes())
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

/// The `x-signature` header value for `body` signed with `secret` at `timestamp` (unix
/// seconds): what a sender (or `referral local send`) puts on the request.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let signature = WebhookSecret::new(secret.as_bytes())
        .map(|secret| secret.signature(timestamp, body))
        // HMAC takes keys of any length: `new` cannot fail.
        .unwrap_or_else(|| unreachable!("HMAC-SHA256 accepts a key of any length"));
    format!("t={timestamp},{SCHEME}={signature}")
}

/// Why a request's signature was refused. None of these says anything about the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SignatureError {
    #[error("the x-signature header is missing")]
    Missing,
    #[error("the x-signature header is not `t=<unix seconds>,v1=<hex HMAC-SHA256>`")]
    Malformed,
    #[error("the signature's timestamp is outside the accepted window; sign with the current time")]
    Stale,
    #[error("no signature matches the body with a configured secret")]
    Mismatch,
}

impl SignatureError {
    /// A short stable word for responses, logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            SignatureError::Missing => "missing",
            SignatureError::Malformed => "malformed",
            SignatureError::Stale => "stale",
            SignatureError::Mismatch => "mismatch",
        }
    }
}

/// A parsed `x-signature` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    /// Unix seconds, as signed.
    pub timestamp: i64,
    /// Every `v1=` digest, in order.
    pub signatures: Vec<[u8; DIGEST_BYTES]>,
}

/// Parses `t=<digits>,v1=<64 hex>[,v1=<64 hex>…]`. Blank entries and other schemes are
/// ignored; a repeated `t`, a missing `t` or `v1`, or a `v1` that is not 64 hex digits is
/// malformed.
pub fn parse_header(value: &str) -> Result<SignatureHeader, SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (key, value) = entry.split_once('=').ok_or(SignatureError::Malformed)?;
        match key.trim() {
            "t" => {
                if timestamp.is_some() {
                    return Err(SignatureError::Malformed);
                }
                timestamp = Some(parse_timestamp(value.trim())?);
            }
            SCHEME => {
                if signatures.len() == MAX_SIGNATURES {
                    return Err(SignatureError::Malformed);
                }
                signatures.push(decode_digest(value.trim())?);
            }
            _ => {}
        }
    }
    match timestamp {
        Some(timestamp) if !signatures.is_empty() => Ok(SignatureHeader {
            timestamp,
            signatures,
        }),
        _ => Err(SignatureError::Malformed),
    }
}

fn parse_timestamp(text: &str) -> Result<i64, SignatureError> {
    // Digits only: no sign, no exponent; 12 digits reach the year 33658.
    if text.is_empty() || text.len() > 12 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::Malformed);
    }
    text.parse().map_err(|_| SignatureError::Malformed)
}

fn decode_digest(text: &str) -> Result<[u8; DIGEST_BYTES], SignatureError> {
    let bytes = text.as_bytes();
    if bytes.len() != DIGEST_BYTES * 2 {
        return Err(SignatureError::Malformed);
    }
    let mut digest = [0u8; DIGEST_BYTES];
    for (out, pair) in digest.iter_mut().zip(bytes.chunks_exact(2)) {
        let high = hex_value(pair[0]).ok_or(SignatureError::Malformed)?;
        let low = hex_value(pair[1]).ok_or(SignatureError::Malformed)?;
        *out = (high << 4) | low;
    }
    Ok(digest)
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// A verified signature: when it was made and which configured secret (0 = the first)
/// made it, so that operators can see when a retired secret is no longer used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub timestamp: i64,
    pub secret_index: usize,
}

/// Checks `header` (the `x-signature` value, if any) against `body`: some `v1` digest must
/// be the HMAC of `"<t>.<body>"` under one of `secrets`, and `t` must be within
/// `tolerance` of `now` (unix seconds), in the past or in the future.
///
/// The digest is checked before the window, so `Stale` is only said of a genuine
/// signature (a replay, or a sender whose clock is wrong).
pub fn verify(
    secrets: &[WebhookSecret],
    header: Option<&str>,
    body: &[u8],
    now: i64,
    tolerance: Duration,
) -> Result<Verified, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let parsed = parse_header(header)?;
    let secret_index = secrets
        .iter()
        .position(|secret| {
            let mac = secret.mac(parsed.timestamp, body);
            parsed
                .signatures
                .iter()
                .any(|signature| mac.clone().verify_slice(signature).is_ok())
        })
        .ok_or(SignatureError::Mismatch)?;
    if now.abs_diff(parsed.timestamp) > tolerance.as_secs() {
        return Err(SignatureError::Stale);
    }
    Ok(Verified {
        timestamp: parsed.timestamp,
        secret_index,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_fixture_only_not_a_real_secret";
    const WINDOW: Duration = Duration::from_secs(300);

    fn secret(text: &str) -> WebhookSecret {
        WebhookSecret::new(text.as_bytes()).unwrap()
    }

    #[test]
    fn sign_matches_an_independent_hmac() {
        // Computed with Python's hmac module over b"1768230247.{}".
        assert_eq!(
            sign(SECRET, 1_768_230_247, b"{}"),
            "t=1768230247,v1=f3916f5b34f9e6365807652688d83d9c2eaec887353dc864125162bfbbbf7e16"
        );
        let header = sign(SECRET, 1_768_230_247, b"{}");
        let parsed = parse_header(&header).unwrap();
        assert_eq!(parsed.timestamp, 1_768_230_247);
        assert_eq!(parsed.signatures.len(), 1);
    }

    #[test]
    fn verifies_its_own_signature_and_reports_the_secret_used() {
        let body = br#"{"event_id":"e"}"#;
        let header = sign("whsec_second_secret_xxxxxxxx", 1000, body);
        let secrets = [secret(SECRET), secret("whsec_second_secret_xxxxxxxx")];
        let verified = verify(&secrets, Some(&header), body, 1000, WINDOW).unwrap();
        assert_eq!(verified.secret_index, 1);
        assert_eq!(verified.timestamp, 1000);
    }

    #[test]
    fn the_window_applies_both_ways_and_is_inclusive() {
        let body = b"x";
        let header = sign(SECRET, 10_000, body);
        let secrets = [secret(SECRET)];
        for now in [10_000 - 300, 10_000, 10_000 + 300] {
            assert!(
                verify(&secrets, Some(&header), body, now, WINDOW).is_ok(),
                "{now}"
            );
        }
        for now in [10_000 - 301, 10_000 + 301, 0, i64::MAX] {
            assert_eq!(
                verify(&secrets, Some(&header), body, now, WINDOW),
                Err(SignatureError::Stale),
                "{now}"
            );
        }
    }

    #[test]
    fn malformed_headers() {
        let good = "a".repeat(64);
        for header in [
            "".to_owned(),
            "garbage".to_owned(),
            format!("v1={good}"),
            "t=123".to_owned(),
            format!("t=-5,v1={good}"),
            format!("t=12x,v1={good}"),
            format!("t=1,t=2,v1={good}"),
            "t=1,v1=abc".to_owned(),
            format!("t=1,v1={}", "g".repeat(64)),
            format!("t=1{}", format!(",v1={good}").repeat(MAX_SIGNATURES + 1)),
        ] {
            assert_eq!(
                parse_header(&header),
                Err(SignatureError::Malformed),
                "{header}"
            );
        }
    }

    #[test]
    fn tolerant_parsing() {
        let sig = "AB".repeat(32);
        let parsed = parse_header(&format!(
            " t = 7 , v0=whatever, v1={sig} ,, v1={} ",
            "0".repeat(64)
        ))
        .unwrap();
        assert_eq!(parsed.timestamp, 7);
        assert_eq!(parsed.signatures, vec![[0xab; 32], [0; 32]]);
    }

    #[test]
    fn any_of_several_signatures_may_match() {
        let body = b"payload";
        let real = secret(SECRET).signature(50, body);
        let header = format!("t=50,v1={},v1={real}", "0".repeat(64));
        assert!(verify(&[secret(SECRET)], Some(&header), body, 50, WINDOW).is_ok());
    }

    #[test]
    fn refusals() {
        let secrets = [secret(SECRET)];
        assert_eq!(
            verify(&secrets, None, b"x", 0, WINDOW),
            Err(SignatureError::Missing)
        );
        let header = sign(SECRET, 0, b"x");
        assert_eq!(
            verify(&secrets, Some(&header), b"y", 0, WINDOW),
            Err(SignatureError::Mismatch)
        );
        let other = sign("whsec_some_other_secret_xxxx", 0, b"x");
        assert_eq!(
            verify(&secrets, Some(&other), b"x", 0, WINDOW),
            Err(SignatureError::Mismatch)
        );
        // The timestamp is signed: moving it breaks the signature.
        let moved = header.replacen("t=0", "t=1", 1);
        assert_eq!(
            verify(&secrets, Some(&moved), b"x", 1, WINDOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&[], Some(&header), b"x", 0, WINDOW),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn debug_hides_the_secret() {
        assert_eq!(format!("{:?}", secret(SECRET)), "WebhookSecret([redacted])");
    }
}
