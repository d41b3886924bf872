//! The trace a webhook starts at ingest: the sender's `traceparent` continued by ingest's own
//! span, or, when the sender gave none (or one that does not read), a new trace. A malformed
//! header never costs the webhook: it starts a new trace and the log line says why.

use aws_lambda_events::http::HeaderMap;
use referral_domain::trace::{TRACEPARENT, TraceContext, TraceparentError};

/// What became of the request's `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestTrace {
    /// What the queue message carries; `None` only when the system had no random bytes.
    pub trace: Option<TraceContext>,
    /// Why the sender's header was not continued, when it was given and did not read.
    pub refused: Option<TraceparentError>,
}

/// The trace for a request with these headers.
pub fn request_trace(headers: &HeaderMap) -> RequestTrace {
    let mut values = headers.get_all(TRACEPARENT).iter();
    let given = match (values.next(), values.next()) {
        (None, _) => None,
        // Two headers cannot both be the parent: the recommendation has such a request
        // start anew.
        (Some(_), Some(_)) => Some(Err(TraceparentError::Shape)),
        (Some(value), None) => Some(
            value
                .to_str()
                .map_err(|_| TraceparentError::Shape)
                .and_then(TraceContext::parse),
        ),
    };
    let ids = random_ids();
    match given {
        Some(Ok(parent)) => RequestTrace {
            trace: ids.and_then(|(_, span)| parent.child(span)),
            refused: None,
        },
        other => RequestTrace {
            trace: ids.and_then(|(trace, span)| TraceContext::start(trace, span)),
            refused: other.and_then(Result::err),
        },
    }
}

/// A new trace id and span id from the system's random source. `None` when it fails (it
/// does not on Lambda's Linux): the webhook then goes on without a trace.
fn random_ids() -> Option<([u8; 16], [u8; 8])> {
    let mut bytes = [0u8; 24];
    if let Err(error) = getrandom::fill(&mut bytes) {
        tracing::warn!(error = %error, "no random bytes for a trace; the webhook goes on without one");
        return None;
    }
    let mut trace = [0u8; 16];
    trace.copy_from_slice(&bytes[..16]);
    let mut span = [0u8; 8];
    span.copy_from_slice(&bytes[16..]);
    Some((trace, span))
}

#[cfg(test)]
mod tests {
    use aws_lambda_events::http::HeaderValue;

    use super::*;

    const GIVEN: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(TRACEPARENT, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn a_given_trace_is_continued_by_a_new_span() {
        let given = TraceContext::parse(GIVEN).unwrap();
        let continued = request_trace(&headers(&[GIVEN]));
        let trace = continued.trace.unwrap();
        assert_eq!(trace.trace_id(), given.trace_id());
        assert_ne!(trace.parent_id(), given.parent_id());
        assert_eq!(continued.refused, None);
    }

    #[test]
    fn no_header_starts_a_trace_and_each_request_its_own() {
        let first = request_trace(&HeaderMap::new());
        let second = request_trace(&HeaderMap::new());
        assert_eq!(first.refused, None);
        assert!(first.trace.unwrap().sampled());
        assert_ne!(
            first.trace.unwrap().trace_id(),
            second.trace.unwrap().trace_id()
        );
    }

    #[test]
    fn a_malformed_or_repeated_header_starts_a_new_trace_and_says_why() {
        for (values, why) in [
            (
                &["00-00000000000000000000000000000000-00f067aa0ba902b7-01"][..],
                TraceparentError::ZeroTraceId,
            ),
            (&["not a trace"][..], TraceparentError::Shape),
            (&[GIVEN, GIVEN][..], TraceparentError::Shape),
        ] {
            let started = request_trace(&headers(values));
            assert_eq!(started.refused, Some(why), "{values:?}");
            let trace = started.trace.unwrap();
            assert_ne!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        }
    }
}
