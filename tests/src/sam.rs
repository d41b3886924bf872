//! `infra/template.yaml` as the tests read it. The template keeps CloudFormation's
//! short-form tags (`!Ref`, `!GetAtt`, `!Sub`), the form SAM users read and write;
//! `serde_norway` (the maintained fork of `serde_yaml` 0.9) keeps them as tagged values,
//! which [`json`] turns into the long form (`{"Ref": ..}`, `{"Fn::GetAtt": [..]}`) so every
//! check sees one shape.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::{Value, json};

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The template, with short-form intrinsics in their long form.
pub fn template() -> Value {
    let path = workspace().join("infra/template.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let yaml: serde_norway::Value =
        serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    json(&yaml)
}

/// YAML to JSON; `!Ref x` becomes `{"Ref": x}`, `!GetAtt a.b` `{"Fn::GetAtt": [a, b]}`,
/// `!Name x` `{"Fn::Name": x}` (`!Condition` stays `Condition`).
pub fn json(yaml: &serde_norway::Value) -> Value {
    use serde_norway::Value as Y;
    match yaml {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(*b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                json!(i)
            } else if let Some(u) = n.as_u64() {
                json!(u)
            } else {
                json!(n.as_f64())
            }
        }
        Y::String(s) => Value::String(s.clone()),
        Y::Sequence(items) => Value::Array(items.iter().map(json).collect()),
        Y::Mapping(mapping) => Value::Object(
            mapping
                .iter()
                .map(|(key, value)| {
                    let key = match key {
                        Y::String(s) => s.clone(),
                        other => serde_norway::to_string(other).unwrap().trim().to_owned(),
                    };
                    (key, json(value))
                })
                .collect(),
        ),
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let value = json(&tagged.value);
            match (name, value) {
                ("GetAtt", Value::String(dotted)) => {
                    let (resource, attribute) = dotted
                        .split_once('.')
                        .unwrap_or_else(|| panic!("!GetAtt {dotted} has no attribute"));
                    json!({ "Fn::GetAtt": [resource, attribute] })
                }
                ("Ref" | "Condition", value) => json!({ name: value }),
                (name, value) => json!({ format!("Fn::{name}"): value }),
            }
        }
    }
}

pub fn resource<'a>(template: &'a Value, id: &str) -> &'a Value {
    template["Resources"]
        .get(id)
        .unwrap_or_else(|| panic!("the template has no resource {id}"))
}

pub fn resources_of_type<'a>(template: &'a Value, kind: &str) -> BTreeSet<&'a str> {
    template["Resources"]
        .as_object()
        .expect("Resources is a map")
        .iter()
        .filter(|(_, resource)| resource["Type"] == kind)
        .map(|(id, _)| id.as_str())
        .collect()
}

pub fn ref_of(value: &Value) -> Option<&str> {
    value
        .as_object()
        .filter(|o| o.len() == 1)?
        .get("Ref")?
        .as_str()
}

pub fn get_att(value: &Value) -> Option<(&str, &str)> {
    let parts = value
        .as_object()
        .filter(|o| o.len() == 1)?
        .get("Fn::GetAtt")?
        .as_array()?;
    match parts.as_slice() {
        [resource, attribute] => Some((resource.as_str()?, attribute.as_str()?)),
        _ => None,
    }
}

/// A function's metrics as its EMF lines name them: the counters' serialised field names.
fn metric_names<C: Serialize + Default>() -> BTreeSet<String> {
    match serde_json::to_value(C::default()) {
        Ok(Value::Object(fields)) => fields.keys().cloned().collect(),
        other => panic!("counters serialise as {other:?}"),
    }
}

/// What each function emits in the `ReferralPipeline` namespace under its `service`
/// dimension (besides Powertools' `ColdStart`, which also has `function_name`).
pub fn emitted_metrics() -> Vec<(&'static str, BTreeSet<String>)> {
    let mut orchestrator = metric_names::<referral_domain::orchestrator::StreamCounters>();
    orchestrator.extend(metric_names::<referral_domain::fallback::FallbackCounters>());
    vec![
        (
            referral_ingest::METRICS_SERVICE,
            metric_names::<referral_ingest::RequestCounters>(),
        ),
        (
            referral_enricher::METRICS_SERVICE,
            metric_names::<referral_enricher::HandlerCounters>(),
        ),
        (referral_orchestrator::METRICS_SERVICE, orchestrator),
        (
            referral_backfill::METRICS_SERVICE,
            metric_names::<referral_backfill::Counters>(),
        ),
        (
            referral_eraser::METRICS_SERVICE,
            metric_names::<referral_eraser::Counters>(),
        ),
    ]
}
