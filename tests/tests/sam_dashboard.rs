//! The template's CloudWatch dashboard against the code and the template: every metric of
//! the functions it draws is one they emit (a renamed counter leaves an empty graph in
//! production, silently, so it breaks this test instead); every AWS metric names a resource
//! of the template; every function, queue and table is drawn; every alarm's threshold is a
//! line on a graph of what the alarm watches, and the alarm is on the status widget.
// Helpers outside #[test] functions abort the test on a broken template, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeSet;

use referral_aws::telemetry::{COLD_START_METRIC, NAMESPACE};
use referral_tests::sam::{emitted_metrics, resource, resources_of_type, template};
use serde_json::Value;

const DASHBOARD: &str = "Dashboard";

/// A reference in the body's `!Sub` as the checks read it: `${Name}` is `ref:Name`,
/// `${Name.Attribute}` is `getatt:Name.Attribute`, `${AWS::Region}` is `ref:AWS::Region`.
fn substituted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .expect("an unclosed ${ in the dashboard body");
        let name = &after[..end];
        if name.contains('.') {
            out.push_str(&format!("getatt:{name}"));
        } else {
            out.push_str(&format!("ref:{name}"));
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The same reading of a CloudFormation value (a dimension's `Value`, an alarm's name).
fn reference(value: &Value) -> String {
    if let Some(text) = value.as_str() {
        return text.to_owned();
    }
    if let Some(name) = value.get("Ref").and_then(Value::as_str) {
        return format!("ref:{name}");
    }
    if let Some([resource, attribute]) = value
        .get("Fn::GetAtt")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    {
        return format!(
            "getatt:{}.{}",
            resource.as_str().unwrap(),
            attribute.as_str().unwrap()
        );
    }
    if let Some(text) = value.get("Fn::Sub").and_then(Value::as_str) {
        return substituted(text);
    }
    panic!("a value the dashboard checks cannot read: {value}")
}

fn body(template: &Value) -> Value {
    let properties = &resource(template, DASHBOARD)["Properties"];
    let text = properties["DashboardBody"]["Fn::Sub"]
        .as_str()
        .expect("DashboardBody is a !Sub string");
    serde_json::from_str(&substituted(text)).unwrap_or_else(|e| panic!("DashboardBody: {e}"))
}

/// One metric a graph draws: namespace, name and dimensions (sorted), with its stat.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Drawn {
    namespace: String,
    name: String,
    dimensions: Vec<(String, String)>,
    stat: String,
}

/// A metric row of a graph; `None` for an expression row.
fn drawn(row: &Value) -> Option<Drawn> {
    let parts = row.as_array().expect("a metric row is an array");
    if parts.first().is_some_and(Value::is_object) {
        return None;
    }
    let (options, fields) = match parts.last() {
        Some(last) if last.is_object() => (last, &parts[..parts.len() - 1]),
        _ => (&Value::Null, parts.as_slice()),
    };
    let texts: Vec<&str> = fields
        .iter()
        .map(|field| field.as_str().expect("metric row fields are strings"))
        .collect();
    assert!(
        !texts.contains(&"."),
        "a metric row uses the \".\" shorthand, which these checks do not read: {row}"
    );
    let [namespace, name, dimensions @ ..] = texts.as_slice() else {
        panic!("a metric row without namespace and name: {row}");
    };
    assert!(
        dimensions.len() % 2 == 0,
        "a dimension without a value: {row}"
    );
    let mut dimensions: Vec<(String, String)> = dimensions
        .chunks(2)
        .map(|pair| (pair[0].to_owned(), pair[1].to_owned()))
        .collect();
    dimensions.sort();
    Some(Drawn {
        namespace: (*namespace).to_owned(),
        name: (*name).to_owned(),
        dimensions,
        stat: options["stat"].as_str().unwrap_or("Average").to_owned(),
    })
}

fn graphs(body: &Value) -> Vec<&Value> {
    body["widgets"]
        .as_array()
        .expect("widgets")
        .iter()
        .filter(|widget| widget["type"] == "metric")
        .map(|widget| &widget["properties"])
        .collect()
}

fn metrics_of(graph: &Value) -> Vec<Drawn> {
    graph["metrics"]
        .as_array()
        .expect("a graph has metrics")
        .iter()
        .filter_map(drawn)
        .collect()
}

fn all_drawn(body: &Value) -> BTreeSet<Drawn> {
    graphs(body).into_iter().flat_map(metrics_of).collect()
}

fn dimension<'a>(metric: &'a Drawn, name: &str) -> Option<&'a str> {
    metric
        .dimensions
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// What is wrong with the metrics `body` draws: a function metric the code does not emit,
/// or a reference to something the template does not declare.
fn unknown_metrics(template: &Value, body: &Value) -> Vec<String> {
    let emitted = emitted_metrics();
    let declared = |reference: &str| -> bool {
        let name = reference.strip_prefix("ref:").or_else(|| {
            reference
                .strip_prefix("getatt:")
                .and_then(|r| r.split('.').next())
        });
        match name {
            Some(name) => {
                name.starts_with("AWS::")
                    || template["Resources"].get(name).is_some()
                    || template["Parameters"].get(name).is_some()
            }
            None => true,
        }
    };
    let mut problems = Vec::new();
    for metric in all_drawn(body) {
        for (_, value) in &metric.dimensions {
            if !declared(value) {
                problems.push(format!(
                    "{metric:?} names {value}, which the template lacks"
                ));
            }
        }
        if metric.namespace != NAMESPACE {
            continue;
        }
        let service = dimension(&metric, "service").unwrap_or_default();
        let Some((_, names)) = emitted.iter().find(|(name, _)| *name == service) else {
            problems.push(format!("{metric:?}: no function has service={service}"));
            continue;
        };
        let known = if metric.name == COLD_START_METRIC {
            metric.dimensions.len() == 2 && dimension(&metric, "function_name").is_some()
        } else {
            metric.dimensions.len() == 1 && names.contains(&metric.name)
        };
        if !known {
            problems.push(format!("{metric:?}: {service} emits no such metric"));
        }
    }
    problems
}

#[test]
fn every_metric_drawn_is_one_the_code_emits_or_a_resource_of_the_template() {
    let template = template();
    let body = body(&template);
    assert!(
        all_drawn(&body).len() >= 60,
        "{} metrics",
        all_drawn(&body).len()
    );
    assert_eq!(unknown_metrics(&template, &body), Vec::<String>::new());
}

#[test]
fn the_check_fails_on_a_renamed_counter_or_a_missing_resource() {
    let template = template();
    let text = resource(&template, DASHBOARD)["Properties"]["DashboardBody"]["Fn::Sub"]
        .as_str()
        .unwrap()
        .to_owned();
    for (from, to) in [
        (
            "\"applied\", \"service\", \"enricher\"",
            "\"appplied\", \"service\", \"enricher\"",
        ),
        (
            "\"created\", \"service\", \"orchestrator\"",
            "\"created\", \"service\", \"ingest\"",
        ),
        ("${ReferralMessagesTable}", "${MessagesTable}"),
    ] {
        assert!(text.contains(from), "the dashboard has no {from}");
        let mut mutant = template.clone();
        mutant["Resources"][DASHBOARD]["Properties"]["DashboardBody"]["Fn::Sub"] =
            Value::String(text.replace(from, to));
        let problems = unknown_metrics(&mutant, &body(&mutant));
        assert!(!problems.is_empty(), "{from} -> {to} went unnoticed");
    }
}

#[test]
fn every_function_queue_and_table_is_drawn() {
    let template = template();
    let drawn = all_drawn(&body(&template));
    let has = |namespace: &str, name: &str, dimension_value: &str, stat: &str| {
        drawn.iter().any(|metric| {
            metric.namespace == namespace
                && metric.name == name
                && metric.stat == stat
                && metric
                    .dimensions
                    .iter()
                    .any(|(_, value)| value == dimension_value)
        })
    };
    let mut missing = Vec::new();
    let mut expect = |namespace: &str, name: &str, dimension_value: String, stat: &str| {
        if !has(namespace, name, &dimension_value, stat) {
            missing.push(format!("{namespace} {name} {stat} of {dimension_value}"));
        }
    };
    let functions = resources_of_type(&template, "AWS::Serverless::Function");
    assert_eq!(functions.len(), 5, "{functions:?}");
    for function in &functions {
        expect("AWS/Lambda", "Duration", format!("ref:{function}"), "p50");
        expect("AWS/Lambda", "Duration", format!("ref:{function}"), "p99");
        expect(
            NAMESPACE,
            COLD_START_METRIC,
            format!("ref:{function}"),
            "Sum",
        );
    }
    expect(
        "AWS/Lambda",
        "IteratorAge",
        "ref:OrchestratorFunction".into(),
        "Maximum",
    );
    for queue in resources_of_type(&template, "AWS::SQS::Queue") {
        let name = format!("getatt:{queue}.QueueName");
        expect(
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            name,
            "Maximum",
        );
    }
    expect(
        "AWS/SQS",
        "ApproximateAgeOfOldestMessage",
        "getatt:WebhookQueue.QueueName".into(),
        "Maximum",
    );
    for table in resources_of_type(&template, "AWS::DynamoDB::Table") {
        for metric in [
            "ConsumedReadCapacityUnits",
            "ConsumedWriteCapacityUnits",
            "ReadThrottleEvents",
            "WriteThrottleEvents",
        ] {
            expect("AWS/DynamoDB", metric, format!("ref:{table}"), "Sum");
        }
    }
    for metric in ["Invocations", "InputTokenCount", "OutputTokenCount"] {
        expect("AWS/Bedrock", metric, "ref:BedrockModelId".into(), "Sum");
    }
    for (service, metric) in [
        ("ingest", "accepted"),
        ("ingest", "rejected"),
        ("ingest", "failed"),
        ("enricher", "applied"),
        ("enricher", "duplicate"),
        ("enricher", "rejected"),
        ("enricher", "dead_lettered"),
        ("orchestrator", "created"),
        ("orchestrator", "suppressed_cooldown"),
        ("orchestrator", "suppressed_satisfaction"),
        ("orchestrator", "suppressed_trigger_score"),
        ("orchestrator", "primary_ok"),
        ("orchestrator", "fallback_throttled"),
        ("orchestrator", "budget_exhausted"),
    ] {
        expect(NAMESPACE, metric, service.into(), "Sum");
    }
    assert_eq!(missing, Vec::<String>::new());
}

/// The alarms whose threshold is not a line on a graph of what they watch, or which the
/// status widget lacks.
fn undrawn_alarms(template: &Value) -> Vec<String> {
    let body = body(template);
    let on_status: BTreeSet<String> = body["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|widget| widget["type"] == "alarm")
        .flat_map(|widget| widget["properties"]["alarms"].as_array().unwrap().clone())
        .filter_map(|arn| arn.as_str().map(str::to_owned))
        .collect();
    let mut undrawn = Vec::new();
    for id in resources_of_type(template, "AWS::CloudWatch::Alarm") {
        let properties = &resource(template, id)["Properties"];
        if !on_status.contains(&format!("getatt:{id}.Arn")) {
            undrawn.push(format!("{id}: not on the alarm status widget"));
        }
        let label = format!("alarm {}", reference(&properties["AlarmName"]));
        let threshold = properties["Threshold"].as_f64().unwrap();
        let (watched, expressions) = watched(properties);
        let drawn_here = graphs(&body).into_iter().any(|graph| {
            let metrics = metrics_of(graph);
            let rows = graph["metrics"].as_array().unwrap();
            let line = graph["annotations"]["horizontal"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|line| {
                    line["label"] == label.as_str() && line["value"].as_f64() == Some(threshold)
                });
            line && watched.iter().all(|metric| metrics.contains(metric))
                && expressions.iter().all(|expression| {
                    rows.iter()
                        .any(|row| row[0]["expression"] == expression.as_str())
                })
        });
        if !drawn_here {
            undrawn.push(format!("{id}: no graph draws {watched:?} {expressions:?} with a line `{label}` at {threshold}"));
        }
    }
    undrawn
}

/// What an alarm watches: its metrics (with its statistic) and its metric-math expressions.
fn watched(properties: &Value) -> (Vec<Drawn>, Vec<String>) {
    let one = |metric: &Value, stat: &Value| {
        let mut dimensions: Vec<(String, String)> = metric["Dimensions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                (
                    d["Name"].as_str().unwrap().to_owned(),
                    reference(&d["Value"]),
                )
            })
            .collect();
        dimensions.sort();
        Drawn {
            namespace: metric["Namespace"].as_str().unwrap().to_owned(),
            name: metric["MetricName"].as_str().unwrap().to_owned(),
            dimensions,
            stat: stat.as_str().unwrap().to_owned(),
        }
    };
    if properties.get("MetricName").is_some() {
        return (vec![one(properties, &properties["Statistic"])], Vec::new());
    }
    let queries = properties["Metrics"].as_array().unwrap();
    let metrics = queries
        .iter()
        .filter_map(|query| {
            Some(one(
                query.pointer("/MetricStat/Metric")?,
                &query["MetricStat"]["Stat"],
            ))
        })
        .collect();
    let expressions = queries
        .iter()
        .filter_map(|query| query["Expression"].as_str().map(str::to_owned))
        .collect();
    (metrics, expressions)
}

#[test]
fn every_alarms_threshold_is_a_line_on_a_graph_of_what_it_watches() {
    let template = template();
    assert!(resources_of_type(&template, "AWS::CloudWatch::Alarm").len() >= 19);
    assert_eq!(undrawn_alarms(&template), Vec::<String>::new());
}

#[test]
fn the_check_fails_when_a_threshold_moves_or_an_alarm_is_added() {
    let mut moved = template();
    moved["Resources"]["WebhookQueueAgeAlarm"]["Properties"]["Threshold"] = 600.into();
    assert_eq!(
        undrawn_alarms(&moved).len(),
        1,
        "{:?}",
        undrawn_alarms(&moved)
    );

    let mut added = template();
    let mut copy = added["Resources"]["IngestErrorsAlarm"].clone();
    copy["Properties"]["AlarmName"] = serde_json::json!({ "Fn::Sub": "referral-${Stage}-copy" });
    added["Resources"]["CopiedAlarm"] = copy;
    assert_eq!(
        undrawn_alarms(&added).len(),
        2,
        "{:?}",
        undrawn_alarms(&added)
    );
}

#[test]
fn the_dashboard_is_named_by_stage() {
    let template = template();
    let properties = &resource(&template, DASHBOARD)["Properties"];
    assert_eq!(
        reference(&properties["DashboardName"]),
        "referral-ref:Stage"
    );
}
