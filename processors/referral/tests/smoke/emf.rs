//! A validator of CloudWatch embedded-metric-format lines, after the specification: the
//! whole log line is one JSON object whose `_aws` member holds `Timestamp` (epoch
//! milliseconds) and `CloudWatchMetrics`, a list of directives, each with a `Namespace`,
//! `Dimensions` (lists of member names) and `Metrics` (`Name`, optional `Unit`); every
//! dimension is a top-level string member and every metric a top-level number (or a list
//! of numbers).

use serde_json::Value;

/// The units CloudWatch accepts.
const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];
const MAX_METRICS: usize = 100;
const MAX_DIMENSIONS: usize = 30;

/// The EMF lines among a function's log lines: JSON objects with an `_aws` member.
pub fn lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|value| value.get("_aws").is_some())
        .collect()
}

/// Checks one EMF object; returns the metric names it declares.
pub fn validate(line: &Value) -> Result<Vec<String>, String> {
    let root = line.as_object().ok_or("not a JSON object")?;
    let aws = root
        .get("_aws")
        .and_then(Value::as_object)
        .ok_or("no `_aws` object")?;
    let timestamp = aws
        .get("Timestamp")
        .and_then(Value::as_i64)
        .ok_or("`_aws.Timestamp` is not an integer")?;
    let now = chrono::Utc::now().timestamp_millis();
    // Epoch milliseconds, and recent: CloudWatch drops points two weeks old.
    if !(now - 3_600_000..=now + 60_000).contains(&timestamp) {
        return Err(format!(
            "`_aws.Timestamp` {timestamp} is not a recent epoch in ms"
        ));
    }
    let directives = aws
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .filter(|directives| !directives.is_empty())
        .ok_or("`_aws.CloudWatchMetrics` is not a non-empty array")?;
    let mut names = Vec::new();
    for directive in directives {
        let namespace = directive["Namespace"].as_str().unwrap_or_default();
        if namespace.is_empty() || namespace.len() > 1024 {
            return Err(format!("bad Namespace in {directive}"));
        }
        let dimension_sets = directive["Dimensions"]
            .as_array()
            .ok_or(format!("`Dimensions` is not an array in {directive}"))?;
        for set in dimension_sets {
            let set = set.as_array().ok_or("a dimension set is not an array")?;
            if set.len() > MAX_DIMENSIONS {
                return Err(format!("more than {MAX_DIMENSIONS} dimensions"));
            }
            for dimension in set {
                let name = dimension
                    .as_str()
                    .ok_or("a dimension name is not a string")?;
                if !root.get(name).is_some_and(Value::is_string) {
                    return Err(format!("dimension `{name}` is not a top-level string"));
                }
            }
        }
        let metrics = directive["Metrics"]
            .as_array()
            .filter(|metrics| !metrics.is_empty() && metrics.len() <= MAX_METRICS)
            .ok_or(format!(
                "`Metrics` is not 1..={MAX_METRICS} entries in {directive}"
            ))?;
        for metric in metrics {
            let name = metric["Name"].as_str().unwrap_or_default();
            if name.is_empty() || name.len() > 1024 {
                return Err(format!("bad metric Name in {metric}"));
            }
            if let Some(unit) = metric.get("Unit") {
                if !unit.as_str().is_some_and(|unit| UNITS.contains(&unit)) {
                    return Err(format!(
                        "metric `{name}` has unit {unit}, not a CloudWatch unit"
                    ));
                }
            }
            let numeric = match root.get(name) {
                Some(Value::Number(_)) => true,
                Some(Value::Array(values)) => values.iter().all(Value::is_number),
                _ => false,
            };
            if !numeric {
                return Err(format!("metric `{name}` is not a top-level number"));
            }
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

#[test]
fn the_validator_refuses_what_cloudwatch_would_drop() {
    let now = chrono::Utc::now().timestamp_millis();
    let good = serde_json::json!({
        "service": "x", "applied": 3,
        "_aws": { "Timestamp": now, "CloudWatchMetrics": [{
            "Namespace": "N", "Dimensions": [["service"]],
            "Metrics": [{ "Name": "applied", "Unit": "Count" }] }] }
    });
    assert_eq!(validate(&good), Ok(vec!["applied".to_owned()]));
    let broken = |pointer: &str, value: Value| {
        let mut line = good.clone();
        *line.pointer_mut(pointer).unwrap() = value;
        validate(&line)
    };
    assert!(broken("/applied", "3".into()).is_err());
    assert!(broken("/service", 1.into()).is_err());
    assert!(broken("/_aws/Timestamp", (now / 1000).into()).is_err());
    assert!(broken("/_aws/CloudWatchMetrics/0/Metrics/0/Unit", "Things".into()).is_err());
    assert!(broken("/_aws/CloudWatchMetrics/0/Namespace", "".into()).is_err());
    assert!(broken("/_aws/CloudWatchMetrics", serde_json::json!([])).is_err());
}
