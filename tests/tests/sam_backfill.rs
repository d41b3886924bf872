//! The template's backfill path (README "Backfill", "At scale"): a Distributed Map whose
//! items are the S3 objects `referral backfill --to` writes, run with the concurrency of a
//! parameter and no tolerated failure, retrying Lambda's throttles; and grants scoped to the
//! backfill bucket, the function and the state machine itself. The function's own role
//! (its code's actions, its environment) is checked with the others in `sam_template.rs`.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use referral_tests::sam::{get_att, ref_of, resource, template};
use serde_json::{Value, json};

/// A value `MaxConcurrency` can only have through the parameter's substitution.
const CONCURRENCY_MARK: &str = "987654";

/// The state machine's definition: its `Fn::Sub` text with the parameter replaced by a
/// mark and every other substitution by its name, parsed.
fn definition(template: &Value) -> Value {
    let properties = &resource(template, "BackfillStateMachine")["Properties"];
    let text = properties["DefinitionString"]["Fn::Sub"]
        .as_str()
        .expect("DefinitionString is !Sub text");
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').unwrap() + start;
        let name = &rest[start + 2..end];
        out.push_str(if name == "BackfillMaxConcurrency" {
            CONCURRENCY_MARK
        } else {
            name
        });
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    serde_json::from_str(&out).unwrap_or_else(|error| panic!("definition: {error}\n{out}"))
}

fn map_state(template: &Value) -> Value {
    let definition = definition(template);
    let start = definition["StartAt"].as_str().unwrap().to_owned();
    let state = definition["States"][&start].clone();
    assert_eq!(state["Type"], "Map", "{state}");
    state
}

fn statements(template: &Value, role: &str) -> Vec<Value> {
    resource(template, role)["Properties"]["Policies"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|policy| {
            policy["PolicyDocument"]["Statement"]
                .as_array()
                .unwrap()
                .clone()
        })
        .filter(|statement| statement.get("Fn::If").is_none())
        .collect()
}

fn statement(template: &Value, role: &str, sid: &str) -> Value {
    statements(template, role)
        .into_iter()
        .find(|statement| statement["Sid"] == sid)
        .unwrap_or_else(|| panic!("{role} has no statement {sid}"))
}

#[test]
fn the_map_reads_the_backfill_buckets_objects_under_the_executions_prefix() {
    let template = template();
    let map = map_state(&template);
    assert_eq!(
        map["ItemProcessor"]["ProcessorConfig"]["Mode"],
        "DISTRIBUTED"
    );
    let reader = &map["ItemReader"];
    assert_eq!(
        reader["Resource"],
        "arn:AWS::Partition:states:::s3:listObjectsV2"
    );
    assert_eq!(reader["Parameters"]["Bucket"], "BackfillBucket");
    assert_eq!(reader["Parameters"]["Prefix.$"], "$.prefix");
    // The function reads the item's `Key` (and `Bucket`), as `referral_backfill::MapItem`.
    assert_eq!(map["ItemSelector"]["Key.$"], "$$.Map.Item.Value.Key");
    assert_eq!(map["ItemSelector"]["Bucket"], "BackfillBucket");
    // Thousands of item results would pass the 256 KB state limit: the function logs them.
    assert_eq!(map["ResultPath"], Value::Null);
    assert!(
        map.get("ResultPath").is_some(),
        "ResultPath: null is explicit"
    );
}

#[test]
fn the_maps_concurrency_is_the_parameter_and_no_failure_is_tolerated() {
    let template = template();
    let map = map_state(&template);
    assert_eq!(
        map["MaxConcurrency"].to_string(),
        CONCURRENCY_MARK,
        "MaxConcurrency is ${{BackfillMaxConcurrency}}"
    );
    assert_eq!(map["ToleratedFailurePercentage"], 0);
    let parameter = &template["Parameters"]["BackfillMaxConcurrency"];
    assert_eq!(parameter["Type"], "Number");
    assert!(parameter["MinValue"].as_u64() >= Some(1), "{parameter}");
}

#[test]
fn each_item_invokes_the_backfill_function_and_retries_lambdas_throttles() {
    let template = template();
    let map = map_state(&template);
    let processor = &map["ItemProcessor"];
    let task = &processor["States"][processor["StartAt"].as_str().unwrap()];
    assert_eq!(
        task["Resource"],
        "arn:AWS::Partition:states:::lambda:invoke"
    );
    assert_eq!(task["Parameters"]["FunctionName"], "BackfillFunction.Arn");
    let retried: Vec<&Value> = task["Retry"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|retry| retry["ErrorEquals"].as_array().unwrap())
        .collect();
    assert!(
        retried.contains(&&json!("Lambda.TooManyRequestsException")),
        "{retried:?}"
    );
}

#[test]
fn the_state_machine_may_invoke_the_function_list_the_bucket_and_run_its_own_map_only() {
    let template = template();
    let role = "BackfillStateMachineRole";
    let machine = resource(&template, "BackfillStateMachine");
    assert_eq!(
        get_att(&machine["Properties"]["RoleArn"]),
        Some((role, "Arn"))
    );
    let invoke = statement(&template, role, "InvokeBackfill");
    assert_eq!(invoke["Action"], json!(["lambda:InvokeFunction"]));
    assert_eq!(
        get_att(&invoke["Resource"]),
        Some(("BackfillFunction", "Arn"))
    );
    let list = statement(&template, role, "ListPartitions");
    assert_eq!(list["Action"], json!(["s3:ListBucket"]));
    assert_eq!(get_att(&list["Resource"]), Some(("BackfillBucket", "Arn")));
    let name = machine["Properties"]["StateMachineName"]["Fn::Sub"]
        .as_str()
        .unwrap();
    for sid in ["MapRun", "MapRunExecutions"] {
        let grant = statement(&template, role, sid);
        let arn = grant["Resource"]["Fn::Sub"].as_str().unwrap();
        assert!(
            arn.ends_with(&format!(":stateMachine:{name}"))
                || arn.ends_with(&format!(":execution:{name}/*")),
            "{sid} is on this state machine's own executions: {arn}"
        );
    }
    let granted: Vec<String> = statements(&template, role)
        .iter()
        .flat_map(|statement| statement["Action"].as_array().unwrap().clone())
        .map(|action| action.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        granted,
        [
            "lambda:InvokeFunction",
            "s3:ListBucket",
            "states:StartExecution",
            "states:DescribeExecution",
            "states:StopExecution"
        ]
    );
}

#[test]
fn the_function_reads_objects_of_the_backfill_bucket_only() {
    let template = template();
    let read = statement(&template, "BackfillRole", "Partitions");
    assert_eq!(read["Action"], json!(["s3:GetObject"]));
    assert_eq!(
        read["Resource"],
        json!({ "Fn::Sub": "${BackfillBucket.Arn}/*" })
    );
    let environment =
        &resource(&template, "BackfillFunction")["Properties"]["Environment"]["Variables"];
    assert_eq!(
        ref_of(&environment["BACKFILL_BUCKET"]),
        Some("BackfillBucket")
    );
}

#[test]
fn the_backfill_bucket_is_private_encrypted_and_expires_its_partitions() {
    let template = template();
    let bucket = &resource(&template, "BackfillBucket")["Properties"];
    let block = &bucket["PublicAccessBlockConfiguration"];
    for setting in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(block[setting], true, "{setting}");
    }
    assert!(
        bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"].is_array(),
        "{bucket}"
    );
    let rule = &bucket["LifecycleConfiguration"]["Rules"][0];
    assert_eq!(rule["Status"], "Enabled");
    assert_eq!(
        ref_of(&rule["ExpirationInDays"]),
        Some("BackfillObjectRetentionDays")
    );
}
