//! The template's alarms against the code: every failure metric a function names
//! (`ALARMED_METRICS`, next to its counters) is a metric it emits and has an alarm; every
//! alarm on the functions' own metrics names metrics they emit (a renamed counter breaks
//! this test, not the alarm in production, silently); the API's 5xx answers and the age of
//! the oldest webhook are watched; every alarm notifies the topic and has a runbook line in
//! the README.
// Helpers outside #[test] functions abort the test on a broken template, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeSet;

use referral_aws::telemetry::NAMESPACE;
use referral_tests::sam::{
    emitted_metrics, get_att, ref_of, resource, resources_of_type, template, workspace,
};
use serde_json::{Value, json};

/// What each function emits under its `service` dimension, and what it says needs an alarm.
fn services() -> Vec<(&'static str, BTreeSet<String>, &'static [&'static str])> {
    emitted_metrics()
        .into_iter()
        .map(|(service, emitted)| {
            let alarmed: &'static [&'static str] = match service {
                referral_enricher::METRICS_SERVICE => referral_enricher::ALARMED_METRICS,
                referral_orchestrator::METRICS_SERVICE => referral_orchestrator::ALARMED_METRICS,
                _ => &[],
            };
            (service, emitted, alarmed)
        })
        .collect()
}

/// Every metric an alarm watches, as (namespace, name, dimensions), whether the alarm names
/// one metric or combines several with metric math.
fn watched(alarm: &Value) -> Vec<(String, String, Value)> {
    let properties = &alarm["Properties"];
    let one = |metric: &Value| {
        (
            metric["Namespace"].as_str().unwrap_or_default().to_owned(),
            metric["MetricName"].as_str().unwrap_or_default().to_owned(),
            metric["Dimensions"].clone(),
        )
    };
    if properties.get("MetricName").is_some() {
        return vec![one(properties)];
    }
    properties["Metrics"]
        .as_array()
        .unwrap_or_else(|| panic!("an alarm with neither MetricName nor Metrics: {alarm}"))
        .iter()
        .filter_map(|query| query.pointer("/MetricStat/Metric"))
        .map(one)
        .collect()
}

fn alarms(template: &Value) -> Vec<(&str, &Value)> {
    resources_of_type(template, "AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|id| (id, resource(template, id)))
        .collect()
}

fn service_dimension(service: &str) -> Value {
    json!([{ "Name": "service", "Value": service }])
}

/// The failure metrics the code names (`service/metric`) that no alarm of `template`
/// watches; panics on one the function does not emit.
fn unalarmed(template: &Value) -> Vec<String> {
    let alarms = alarms(template);
    let mut missing = Vec::new();
    for (service, emitted, alarmed) in services() {
        for metric in alarmed {
            assert!(
                emitted.contains(*metric),
                "{service} names {metric} for an alarm but emits no such metric: {emitted:?}"
            );
            let watched_by_one = alarms.iter().any(|(_, alarm)| {
                watched(alarm).contains(&(
                    NAMESPACE.to_owned(),
                    (*metric).to_owned(),
                    service_dimension(service),
                ))
            });
            if !watched_by_one {
                missing.push(format!("{service}/{metric}"));
            }
        }
    }
    missing
}

#[test]
fn each_failure_metric_the_code_names_is_emitted_and_alarmed() {
    // The template-fallback rate, quarantined stream records, conflicting duplicates,
    // unprovable, refused and quarantined events, failed dead-letter sends.
    let named: usize = services().iter().map(|(_, _, alarmed)| alarmed.len()).sum();
    assert_eq!(named, 7);
    assert_eq!(unalarmed(&template()), Vec::<String>::new());
}

#[test]
fn the_check_fails_when_an_alarm_is_removed() {
    for (id, metric) in [
        ("TemplateFallbackRateAlarm", "orchestrator/fallbacks"),
        ("QuarantinedRecordsAlarm", "orchestrator/quarantined"),
        (
            "ConflictingDuplicatesAlarm",
            "enricher/conflicting_duplicate",
        ),
        ("UnprovableEventsAlarm", "enricher/unprovable"),
        ("QuarantinedEventsAlarm", "enricher/quarantined"),
        ("RejectedEventsAlarm", "enricher/rejected"),
        (
            "DeadLetterSendFailuresAlarm",
            "enricher/dead_letter_failures",
        ),
    ] {
        let mut template = template();
        let removed = template["Resources"].as_object_mut().unwrap().remove(id);
        assert!(removed.is_some(), "the template has no {id}");
        assert_eq!(unalarmed(&template), [metric], "without {id}");
    }
}

#[test]
fn alarms_on_the_functions_metrics_watch_metrics_they_emit() {
    let template = template();
    let services = services();
    let mut own = 0;
    for (id, alarm) in alarms(&template) {
        for (namespace, name, dimensions) in watched(alarm) {
            if namespace != NAMESPACE {
                continue;
            }
            own += 1;
            let emitted = services
                .iter()
                .find(|(service, _, _)| dimensions == service_dimension(service))
                .map(|(_, emitted, _)| emitted)
                .unwrap_or_else(|| panic!("{id}: dimensions {dimensions} name no function"));
            assert!(
                emitted.contains(&name),
                "{id} watches {name}, which the function does not emit: {emitted:?}"
            );
        }
    }
    assert!(own >= 5, "only {own} alarmed metrics of the functions");
}

#[test]
fn the_apis_5xx_answers_and_the_oldest_webhooks_age_are_alarmed() {
    let template = template();
    let alarms = alarms(&template);
    let find = |namespace: &str, metric: &str| -> Vec<Value> {
        alarms
            .iter()
            .flat_map(|(_, alarm)| watched(alarm))
            .filter(|(ns, name, _)| ns == namespace && name == metric)
            .map(|(_, _, dimensions)| dimensions)
            .collect()
    };
    let api = find("AWS/ApiGateway", "5xx");
    assert_eq!(api.len(), 1, "{api:?}");
    assert_eq!(api[0][0]["Name"], "ApiId");
    assert_eq!(ref_of(&api[0][0]["Value"]), Some("WebhookApi"));

    let age = find("AWS/SQS", "ApproximateAgeOfOldestMessage");
    assert_eq!(age.len(), 1, "{age:?}");
    assert_eq!(
        get_att(&age[0][0]["Value"]),
        Some(("WebhookQueue", "QueueName"))
    );
}

#[test]
fn every_alarm_notifies_the_topic_and_has_a_runbook_line() {
    let template = template();
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let runbook = readme
        .split("## Runbook")
        .nth(1)
        .expect("the README has a Runbook section");
    let alarms = alarms(&template);
    assert!(alarms.len() >= 15, "only {} alarms", alarms.len());
    for (id, alarm) in alarms {
        let properties = &alarm["Properties"];
        assert_eq!(
            properties["AlarmActions"]
                .as_array()
                .map(|actions| actions.iter().filter_map(ref_of).collect::<Vec<_>>()),
            Some(vec!["AlarmTopic"]),
            "{id}"
        );
        // `!Sub referral-${Stage}-<name>`: the runbook names the alarm by <name>.
        let name = properties["AlarmName"]["Fn::Sub"]
            .as_str()
            .and_then(|name| name.strip_prefix("referral-${Stage}-"))
            .unwrap_or_else(|| panic!("{id}: AlarmName is not !Sub referral-${{Stage}}-<name>"));
        assert!(
            runbook.contains(&format!("`{name}`")),
            "{id}: the README's runbook has no line for `{name}`"
        );
    }
}
