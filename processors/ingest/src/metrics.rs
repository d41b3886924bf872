//! The ingest function's metrics: one embedded-metric-format line per request, counted by
//! how it was answered, so that signature failures and oversized posts can be alarmed on
//! apart from validation errors.

use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use serde::Serialize;

/// What one request counts for; every field is a CloudWatch metric (unit Count).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RequestCounters {
    pub requests: u64,
    /// 202: queued.
    pub accepted: u64,
    /// 200: the very signed request was queued before (a replay, or a retry after a lost
    /// answer); not queued again.
    pub replayed: u64,
    /// 401: missing, malformed, stale or mismatching signature.
    pub unauthorized: u64,
    /// 413: above the queue's message size.
    pub too_large: u64,
    /// Any other 4xx: wrong method or content type, an invalid webhook.
    pub rejected: u64,
    /// 503: the queue is throttling or unreachable; the sender retries.
    pub unavailable: u64,
    /// Any other 5xx.
    pub failed: u64,
}

impl RequestCounters {
    pub fn of(response: &ApiGatewayV2httpResponse) -> Self {
        let mut counters = RequestCounters {
            requests: 1,
            ..RequestCounters::default()
        };
        let slot = match response.status_code {
            200 => &mut counters.replayed,
            201..=299 => &mut counters.accepted,
            401 => &mut counters.unauthorized,
            413 => &mut counters.too_large,
            503 => &mut counters.unavailable,
            400..=499 => &mut counters.rejected,
            _ => &mut counters.failed,
        };
        *slot = 1;
        counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counted(status: i64) -> RequestCounters {
        let mut response = ApiGatewayV2httpResponse::default();
        response.status_code = status;
        RequestCounters::of(&response)
    }

    #[test]
    fn each_answer_counts_once_in_its_class() {
        assert_eq!(counted(202).accepted, 1);
        assert_eq!((counted(200).replayed, counted(200).accepted), (1, 0));
        assert_eq!(counted(401).unauthorized, 1);
        assert_eq!(counted(413).too_large, 1);
        assert_eq!(counted(415).rejected, 1);
        assert_eq!(counted(503).unavailable, 1);
        assert_eq!(counted(500).failed, 1);
        let all = counted(400);
        assert_eq!(
            (all.requests, all.rejected, all.accepted + all.failed),
            (1, 1, 0)
        );
    }
}
