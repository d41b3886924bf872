//! W3C Trace Context's `traceparent`: the one trace a webhook's journey carries, from
//! ingest's request through the queue and the feature item's stream record to the message.
//!
//! `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, lower-case hex, neither id all
//! zeros (<https://www.w3.org/TR/trace-context/#traceparent-header>). A later version is read
//! for these four fields, as the recommendation asks, and written back as version 00. Ids are
//! random: the adapters draw them and hand them in, so this module stays pure.

use std::fmt;

/// The header, the queue message attribute and the log field's source name.
pub const TRACEPARENT: &str = "traceparent";

/// The bytes [`TraceContext::to_bytes`] gives: trace id, parent id, flags.
pub const STORED_BYTES: usize = 16 + 8 + 1;

/// Only bit 0 (`sampled`) is defined; a started trace sets it, so that whatever samples
/// downstream keeps the journey whole.
const SAMPLED: u8 = 0x01;
/// The one version byte that is never valid.
const FORBIDDEN_VERSION: &str = "ff";
/// `00-` + 32 + `-` + 16 + `-` + 2.
const VERSION_00_LENGTH: usize = 55;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    trace_id: [u8; 16],
    parent_id: [u8; 8],
    flags: u8,
}

/// Why a `traceparent` was not read. Ingest never refuses a webhook for it: it starts a new
/// trace and logs the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TraceparentError {
    #[error("`traceparent` is not `00-<32 hex>-<16 hex>-<2 hex>` in lower-case hex")]
    Shape,
    #[error("`traceparent` has version ff, which is never valid")]
    ForbiddenVersion,
    #[error("`traceparent` version 00 has something after its flags")]
    TrailingData,
    #[error("`traceparent` has an all-zero trace id")]
    ZeroTraceId,
    #[error("`traceparent` has an all-zero parent id")]
    ZeroParentId,
    #[error("a stored trace is not {STORED_BYTES} bytes")]
    StoredLength,
}

impl TraceparentError {
    /// A stable word for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            TraceparentError::Shape => "shape",
            TraceparentError::ForbiddenVersion => "forbidden_version",
            TraceparentError::TrailingData => "trailing_data",
            TraceparentError::ZeroTraceId => "zero_trace_id",
            TraceparentError::ZeroParentId => "zero_parent_id",
            TraceparentError::StoredLength => "stored_length",
        }
    }
}

impl TraceContext {
    /// Reads a `traceparent` value (surrounding blanks allowed, as HTTP header values have).
    pub fn parse(header: &str) -> Result<Self, TraceparentError> {
        // Bytes, not `str` slices: a multi-byte character where a dash belongs must be
        // refused, not split.
        let bytes = header.trim_matches(|c| c == ' ' || c == '\t').as_bytes();
        if bytes.len() < VERSION_00_LENGTH {
            return Err(TraceparentError::Shape);
        }
        let version = &bytes[..2];
        if !is_lower_hex(version) || bytes[2] != b'-' {
            return Err(TraceparentError::Shape);
        }
        if version == FORBIDDEN_VERSION.as_bytes() {
            return Err(TraceparentError::ForbiddenVersion);
        }
        if bytes.len() > VERSION_00_LENGTH {
            // Version 00 is exactly this long; a later one may only add `-`-led fields.
            if version == b"00" {
                return Err(TraceparentError::TrailingData);
            }
            if bytes[VERSION_00_LENGTH] != b'-' {
                return Err(TraceparentError::Shape);
            }
        }
        if bytes[35] != b'-' || bytes[52] != b'-' {
            return Err(TraceparentError::Shape);
        }
        let trace_id: [u8; 16] = decode_hex(&bytes[3..35]).ok_or(TraceparentError::Shape)?;
        let parent_id: [u8; 8] = decode_hex(&bytes[36..52]).ok_or(TraceparentError::Shape)?;
        let [flags] = decode_hex::<1>(&bytes[53..55]).ok_or(TraceparentError::Shape)?;
        Self::checked(trace_id, parent_id, flags)
    }

    /// A new trace, sampled, from random ids; `None` in the (2^-64) case of an all-zero id.
    pub fn start(trace_id: [u8; 16], span_id: [u8; 8]) -> Option<Self> {
        Self::checked(trace_id, span_id, SAMPLED).ok()
    }

    /// A trace whose ids derive from `seed` (a SHA-256 of it), for runs whose output must be
    /// reproducible (`referral run` starts one per input event, as ingest would).
    pub fn derived(seed: &[u8]) -> Option<Self> {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(seed);
        let mut trace_id = [0; 16];
        trace_id.copy_from_slice(&digest[..16]);
        let mut span_id = [0; 8];
        span_id.copy_from_slice(&digest[16..24]);
        Self::start(trace_id, span_id)
    }

    /// The same trace, continued by a new span (`span_id`, random) of the one who forwards it.
    pub fn child(&self, span_id: [u8; 8]) -> Option<Self> {
        Self::checked(self.trace_id, span_id, self.flags).ok()
    }

    /// The 32 lower-case hex digits logs and records carry.
    pub fn trace_id(&self) -> String {
        encode_hex(&self.trace_id)
    }

    pub fn parent_id(&self) -> String {
        encode_hex(&self.parent_id)
    }

    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// The compact form an item stores: every byte of it is paid for in write units and
    /// stream bytes, so no hex and no version.
    pub fn to_bytes(&self) -> [u8; STORED_BYTES] {
        let mut bytes = [0; STORED_BYTES];
        bytes[..16].copy_from_slice(&self.trace_id);
        bytes[16..24].copy_from_slice(&self.parent_id);
        bytes[24] = self.flags;
        bytes
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TraceparentError> {
        let bytes: &[u8; STORED_BYTES] = bytes
            .try_into()
            .map_err(|_| TraceparentError::StoredLength)?;
        let mut trace_id = [0; 16];
        trace_id.copy_from_slice(&bytes[..16]);
        let mut parent_id = [0; 8];
        parent_id.copy_from_slice(&bytes[16..24]);
        Self::checked(trace_id, parent_id, bytes[24])
    }

    fn checked(
        trace_id: [u8; 16],
        parent_id: [u8; 8],
        flags: u8,
    ) -> Result<Self, TraceparentError> {
        if trace_id == [0; 16] {
            return Err(TraceparentError::ZeroTraceId);
        }
        if parent_id == [0; 8] {
            return Err(TraceparentError::ZeroParentId);
        }
        Ok(TraceContext {
            trace_id,
            parent_id,
            flags,
        })
    }
}

/// The `traceparent` header value, always version 00.
impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            encode_hex(&self.trace_id),
            encode_hex(&self.parent_id),
            self.flags
        )
    }
}

/// The links of a batch, in OpenTelemetry's sense (one per record that carried a trace), as
/// one log field: their `traceparent`s, comma-separated, in record order.
pub fn links<'a>(traces: impl IntoIterator<Item = Option<&'a TraceContext>>) -> String {
    let mut field = String::new();
    for trace in traces.into_iter().flatten() {
        if !field.is_empty() {
            field.push(',');
        }
        field.push_str(&trace.to_string());
    }
    field
}

fn is_lower_hex(text: &[u8]) -> bool {
    text.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

fn decode_hex<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0; N];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = hex_value(pair[0])? << 4 | hex_value(pair[1])?;
    }
    Some(out)
}

fn encode_hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(text, "{byte:02x}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_recommendation_s_example_reads_and_writes_back_the_same() {
        let trace = TraceContext::parse(EXAMPLE).unwrap();
        assert_eq!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(trace.parent_id(), "00f067aa0ba902b7");
        assert!(trace.sampled());
        assert_eq!(trace.to_string(), EXAMPLE);
        let unsampled = TraceContext::parse(&EXAMPLE.replace("-01", "-00")).unwrap();
        assert!(!unsampled.sampled());
        // Header values may come with blanks around them.
        assert_eq!(TraceContext::parse(&format!(" {EXAMPLE}\t")), Ok(trace));
    }

    #[test]
    fn malformed_values_are_refused_with_their_reason() {
        let cases = [
            ("", TraceparentError::Shape),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
                TraceparentError::Shape,
            ),
            (&EXAMPLE.to_uppercase(), TraceparentError::Shape),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
                TraceparentError::Shape,
            ),
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                TraceparentError::Shape,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
                TraceparentError::Shape,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
                TraceparentError::Shape,
            ),
            (
                "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                TraceparentError::Shape,
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                TraceparentError::ForbiddenVersion,
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                TraceparentError::ZeroTraceId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                TraceparentError::ZeroParentId,
            ),
            (&format!("{EXAMPLE}-extra"), TraceparentError::TrailingData),
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
                TraceparentError::Shape,
            ),
            // Multi-byte text where the dashes should be never panics on a char boundary.
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473é00f067aa0ba902b7-01",
                TraceparentError::Shape,
            ),
            (
                "éé-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                TraceparentError::Shape,
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(TraceContext::parse(text), Err(expected), "{text:?}");
        }
    }

    #[test]
    fn a_later_version_is_read_for_the_fields_version_00_knows() {
        let later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next";
        let trace = TraceContext::parse(later).unwrap();
        assert_eq!(trace.to_string(), EXAMPLE);
        assert_eq!(
            TraceContext::parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Ok(trace)
        );
    }

    #[test]
    fn a_child_keeps_the_trace_and_its_flags_with_a_new_parent() {
        let trace = TraceContext::parse(EXAMPLE).unwrap();
        let child = trace.child([7; 8]).unwrap();
        assert_eq!(child.trace_id(), trace.trace_id());
        assert_eq!(child.parent_id(), "0707070707070707");
        assert_eq!(child.sampled(), trace.sampled());
        assert_eq!(trace.child([0; 8]), None);
    }

    #[test]
    fn a_started_trace_is_sampled_and_never_all_zero() {
        let trace = TraceContext::start([1; 16], [2; 8]).unwrap();
        assert_eq!(
            trace.to_string(),
            "00-01010101010101010101010101010101-0202020202020202-01"
        );
        assert_eq!(TraceContext::start([0; 16], [2; 8]), None);
        assert_eq!(TraceContext::start([1; 16], [0; 8]), None);
    }

    #[test]
    fn a_derived_trace_is_the_same_for_the_same_seed_only() {
        let one = TraceContext::derived(b"events/a.json:1").unwrap();
        assert_eq!(TraceContext::derived(b"events/a.json:1"), Some(one));
        assert_ne!(TraceContext::derived(b"events/a.json:2"), Some(one));
        assert!(one.sampled());
    }

    #[test]
    fn the_stored_form_is_25_bytes_and_reads_back() {
        let trace = TraceContext::parse(EXAMPLE).unwrap();
        let bytes = trace.to_bytes();
        assert_eq!(bytes.len(), STORED_BYTES);
        assert_eq!(TraceContext::from_bytes(&bytes), Ok(trace));
        assert_eq!(
            TraceContext::from_bytes(&bytes[..24]),
            Err(TraceparentError::StoredLength)
        );
        assert_eq!(
            TraceContext::from_bytes(&[0; STORED_BYTES]),
            Err(TraceparentError::ZeroTraceId)
        );
    }

    #[test]
    fn links_list_the_traced_records_in_order() {
        let first = TraceContext::parse(EXAMPLE).unwrap();
        let second = first.child([9; 8]).unwrap();
        assert_eq!(
            links([Some(&first), None, Some(&second)]),
            format!("{EXAMPLE},{second}")
        );
        assert_eq!(links([None, None]), "");
    }
}
