//! Logs and metrics of the Lambda functions: JSON lines on stdout, which CloudWatch Logs
//! ingests, and CloudWatch embedded-metric-format (EMF) lines for the counters.

use serde::Serialize;
use tracing_subscriber::EnvFilter;

/// A setting a function cannot start with, logged as the operator must read it: the
/// runtime's own report of the error shows only its debug form.
pub fn refused_setting(error: &referral_domain::env::EnvError) {
    tracing::error!(error = %error, "function not started: fix this setting");
}

/// Installs the `tracing` subscriber: JSON unless `AWS_LAMBDA_LOG_FORMAT=Text`, level from
/// `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else `info`. No ANSI colours, no timestamp
/// (CloudWatch adds its own).
pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned());
    let filter =
        EnvFilter::try_new(level.to_lowercase()).unwrap_or_else(|_| EnvFilter::new("info"));
    let text = std::env::var("AWS_LAMBDA_LOG_FORMAT")
        .is_ok_and(|format| format.eq_ignore_ascii_case("text"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_target(false)
        .without_time();
    // A second init (tests, a CLI that also runs handlers) keeps the first subscriber.
    let _ = if text {
        builder.try_init()
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    };
}

/// The CloudWatch metrics namespace of every function.
pub const NAMESPACE: &str = "ReferralPipeline";

/// One CloudWatch EMF line: `counters` become metrics of `namespace` with no dimension
/// besides the function (added by `service`). Printed straight to stdout, as EMF requires
/// the whole JSON object to be the log line.
pub fn emit_metrics<C: Serialize>(namespace: &str, service: &str, counters: &C) {
    if let Some(line) = metrics_line(
        namespace,
        service,
        counters,
        chrono::Utc::now().timestamp_millis(),
    ) {
        println!("{line}");
    }
}

/// The EMF object for `counters` (every numeric field a metric with unit Count).
pub fn metrics_line<C: Serialize>(
    namespace: &str,
    service: &str,
    counters: &C,
    timestamp_millis: i64,
) -> Option<String> {
    let serde_json::Value::Object(mut fields) = serde_json::to_value(counters).ok()? else {
        return None;
    };
    let metrics: Vec<serde_json::Value> = fields
        .iter()
        .filter(|(_, value)| value.is_number())
        .map(|(name, _)| serde_json::json!({ "Name": name, "Unit": "Count" }))
        .collect();
    fields.insert("service".to_owned(), service.into());
    fields.insert(
        "_aws".to_owned(),
        serde_json::json!({
            "Timestamp": timestamp_millis,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [["service"]],
                "Metrics": metrics,
            }],
        }),
    );
    serde_json::to_string(&fields).ok()
}

#[cfg(test)]
mod tests {
    use super::metrics_line;

    #[derive(serde::Serialize)]
    struct Counts {
        applied: u64,
        rejected: u64,
    }

    #[test]
    fn metrics_line_is_embedded_metric_format() {
        let line = metrics_line(
            "Referral",
            "enricher",
            &Counts {
                applied: 3,
                rejected: 1,
            },
            42,
        )
        .unwrap_or_default();
        let value: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        assert_eq!(value["applied"], 3);
        assert_eq!(value["service"], "enricher");
        assert_eq!(value["_aws"]["Timestamp"], 42);
        let directive = &value["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Referral");
        assert_eq!(directive["Metrics"][0]["Name"], "applied");
        assert_eq!(directive["Metrics"][1]["Name"], "rejected");
    }
}
