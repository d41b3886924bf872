//! Logs and metrics of the Lambda functions: JSON lines on stdout, which CloudWatch Logs
//! ingests, and CloudWatch embedded-metric-format (EMF) lines for the counters.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use tracing_subscriber::EnvFilter;

/// A setting a function cannot start with, logged as the operator must read it: the
/// runtime's own report of the error shows only its debug form.
pub fn refused_setting<E: std::fmt::Display + ?Sized>(error: &E) {
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
///
/// The first call of a process also prints Powertools' `ColdStart` metric (dimensions
/// `function_name` and `service`), so that cold starts read the same as in functions
/// instrumented with Powertools for AWS Lambda.
pub fn emit_metrics<C: Serialize>(namespace: &str, service: &str, counters: &C) {
    let now = chrono::Utc::now().timestamp_millis();
    if !COLD_START_REPORTED.swap(true, Ordering::Relaxed) {
        let function_name = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default();
        println!(
            "{}",
            cold_start_line(namespace, service, &function_name, now)
        );
    }
    if let Some(line) = metrics_line(namespace, service, counters, now) {
        println!("{line}");
    }
}

static COLD_START_REPORTED: AtomicBool = AtomicBool::new(false);

/// Powertools' name for the metric counting a function's cold starts.
pub const COLD_START_METRIC: &str = "ColdStart";

/// The EMF object of one cold start of `function_name`.
pub fn cold_start_line(
    namespace: &str,
    service: &str,
    function_name: &str,
    timestamp_millis: i64,
) -> String {
    serde_json::json!({
        "_aws": emf_metadata(
            namespace,
            &["function_name", "service"],
            [COLD_START_METRIC],
            timestamp_millis,
        ),
        "function_name": function_name,
        "service": service,
        COLD_START_METRIC: 1,
    })
    .to_string()
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
    let metadata = emf_metadata(
        namespace,
        &["service"],
        fields
            .iter()
            .filter(|(_, value)| value.is_number())
            .map(|(name, _)| name.as_str()),
        timestamp_millis,
    );
    fields.insert("service".to_owned(), service.into());
    fields.insert("_aws".to_owned(), metadata);
    serde_json::to_string(&fields).ok()
}

/// The `_aws` member of an EMF line: `metrics` (unit Count) of `namespace`, under one
/// dimension set whose members the line carries at its top level.
fn emf_metadata<'a>(
    namespace: &str,
    dimensions: &[&str],
    metrics: impl IntoIterator<Item = &'a str>,
    timestamp_millis: i64,
) -> serde_json::Value {
    let metrics: Vec<serde_json::Value> = metrics
        .into_iter()
        .map(|name| serde_json::json!({ "Name": name, "Unit": "Count" }))
        .collect();
    serde_json::json!({
        "Timestamp": timestamp_millis,
        "CloudWatchMetrics": [{
            "Namespace": namespace,
            "Dimensions": [dimensions],
            "Metrics": metrics,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::{cold_start_line, metrics_line};

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

    #[test]
    fn cold_start_line_is_powertools_cold_start_metric() {
        let line = cold_start_line("Referral", "ingest", "referral-dev-IngestFunction", 7);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        assert_eq!(value["ColdStart"], 1);
        assert_eq!(value["function_name"], "referral-dev-IngestFunction");
        assert_eq!(value["service"], "ingest");
        let directive = &value["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(
            directive["Dimensions"][0],
            serde_json::json!(["function_name", "service"])
        );
        assert_eq!(directive["Metrics"][0]["Name"], "ColdStart");
    }
}
