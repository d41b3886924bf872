//! `infra/template.yaml` against the code: each function's environment is exactly what its
//! binary reads, its role grants exactly the SDK operations its code calls (the lists live
//! next to that code) plus its event-source mapping's and its logs' fixed needs, nothing
//! anywhere is granted on a wildcard, and the three functions are built and run as Rust
//! binaries on `provided.al2023` / arm64 (five: ingest, enricher, orchestrator, backfill,
//! eraser) (the `Architecture` parameter's default). The eraser's grants are each on exactly
//! the resource its erasure deletes from.
//!
//! The template is read by `referral_tests::sam`, with short-form intrinsics in their long
//! form. Its alarms are checked against the metrics the code emits in `sam_alarms.rs`.
// Helpers outside #[test] functions abort the test on a broken template, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;

use referral_aws::dynamo::{CLAIM_TTL_ATTRIBUTE, CUSTOMER_KEY, MESSAGE_KEY};
use referral_tests::sam::{get_att, ref_of, resource, resources_of_type, template, workspace};
use serde_json::{Map, Value, json};

/// Statement id of the grant on the customer-managed key, present only with one.
const KMS_SID: &str = "CustomerManagedKey";
/// What the functions need of the customer-managed key: reading and writing the queues,
/// tables, streams and logs it encrypts.
const KMS_ACTIONS: &[&str] = &["kms:Decrypt", "kms:GenerateDataKey"];
/// Statement id of the grant X-Ray's active tracing needs, present only with `Tracing=Active`.
const XRAY_SID: &str = "XRayTracing";
/// What Lambda's active tracing needs: X-Ray takes these on no resource but `*`.
const XRAY_ACTIONS: &[&str] = &["xray:PutTelemetryRecords", "xray:PutTraceSegments"];
/// Statement ids of the grants that Lambda's pollers use, not the function's code.
const MAPPING_SID_PREFIX: &str = "EventSourceMapping";
/// Statement id of the grant that lets the function write its own log group.
const LOGS_SID: &str = "Logs";
/// What the runtime needs to write to the function's (pre-created) log group.
const LOG_ACTIONS: &[&str] = &["logs:CreateLogStream", "logs:PutLogEvents"];
/// What Lambda's SQS poller needs on the queue it reads.
const SQS_MAPPING_ACTIONS: &[&str] = &[
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
];
/// What Lambda's DynamoDB-stream poller needs, and its on-failure destination's send.
const STREAM_MAPPING_ACTIONS: &[&str] = &[
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
    "sqs:SendMessage",
];

/// One deployable: its resource in the template and what its crate says it needs.
struct Function {
    logical_id: &'static str,
    binary: &'static str,
    package_dir: &'static str,
    env_vars: Vec<&'static str>,
    code_actions: Vec<&'static str>,
    mapping_actions: &'static [&'static str],
}

fn functions() -> Vec<Function> {
    vec![
        Function {
            logical_id: "IngestFunction",
            binary: "ingest",
            package_dir: "processors/ingest",
            env_vars: referral_ingest::ENV_VARS.to_vec(),
            code_actions: referral_ingest::IAM_ACTIONS.to_vec(),
            mapping_actions: &[],
        },
        Function {
            logical_id: "EnricherFunction",
            binary: "enricher",
            package_dir: "processors/enricher",
            env_vars: referral_enricher::ENV_VARS.to_vec(),
            code_actions: referral_enricher::iam_actions(),
            mapping_actions: SQS_MAPPING_ACTIONS,
        },
        Function {
            logical_id: "OrchestratorFunction",
            binary: "orchestrator",
            package_dir: "processors/orchestrator",
            env_vars: referral_orchestrator::env_vars(),
            code_actions: referral_orchestrator::iam_actions(),
            mapping_actions: STREAM_MAPPING_ACTIONS,
        },
        // Invoked by the backfill state machine (`sam_backfill.rs`), no event source.
        Function {
            logical_id: "BackfillFunction",
            binary: "backfill",
            package_dir: "processors/backfill",
            env_vars: referral_backfill::ENV_VARS.to_vec(),
            code_actions: referral_backfill::iam_actions(),
            mapping_actions: &[],
        },
        // Invoked by operators (`aws lambda invoke`), no event source.
        Function {
            logical_id: "EraserFunction",
            binary: "eraser",
            package_dir: "processors/eraser",
            env_vars: referral_eraser::ENV_VARS.to_vec(),
            code_actions: referral_eraser::iam_actions(),
            mapping_actions: &[],
        },
    ]
}

/// SAM's merge of `Globals` into a resource: maps merge key by key, lists are concatenated
/// (global entries first), other values of the resource win.
fn merge(global: &Value, own: &Value) -> Value {
    match (global, own) {
        (Value::Object(global), Value::Object(own)) => {
            let mut merged: Map<String, Value> = global.clone();
            for (key, value) in own {
                let value = match global.get(key) {
                    Some(global) => merge(global, value),
                    None => value.clone(),
                };
                merged.insert(key.clone(), value);
            }
            Value::Object(merged)
        }
        (Value::Array(global), Value::Array(own)) => {
            Value::Array(global.iter().chain(own).cloned().collect())
        }
        (_, own) => own.clone(),
    }
}

/// A function's properties as deployed: its own, merged over `Globals.Function`.
fn function_properties(template: &Value, id: &str) -> Value {
    let function = resource(template, id);
    assert_eq!(function["Type"], "AWS::Serverless::Function", "{id}");
    let globals = template
        .pointer("/Globals/Function")
        .cloned()
        .unwrap_or_else(|| json!({}));
    merge(&globals, &function["Properties"])
}

/// A string or a list of strings (IAM's `Action` and `Resource`).
fn strings(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

fn action_set(value: &Value) -> BTreeSet<String> {
    strings(value)
        .into_iter()
        .map(|action| {
            action
                .as_str()
                .unwrap_or_else(|| panic!("action {action} is not a string"))
                .to_owned()
        })
        .collect()
}

fn owned(actions: &[&str]) -> BTreeSet<String> {
    actions.iter().map(|a| (*a).to_owned()).collect()
}

/// A statement as granted when its condition holds: `!If [Condition, statement,
/// !Ref AWS::NoValue]` is the statement (only that form is accepted), anything else itself.
fn when_granted(statement: &Value) -> Value {
    let Some(branches) = statement.get("Fn::If") else {
        return statement.clone();
    };
    let branches = branches.as_array().expect("Fn::If takes a list");
    assert_eq!(branches.len(), 3, "{statement}");
    assert_eq!(
        branches[2],
        json!({ "Ref": "AWS::NoValue" }),
        "a conditional statement is granted or absent: {statement}"
    );
    let condition = match branches[1]["Sid"].as_str() {
        Some(KMS_SID) => "HasKmsKey",
        Some(XRAY_SID) => "TracingActive",
        _ => panic!(
            "only the customer-managed key's and X-Ray's grants are conditional: {statement}"
        ),
    };
    assert_eq!(branches[0], condition, "{statement}");
    branches[1].clone()
}

/// The statements of the role a function runs as.
fn role_statements(template: &Value, function: &str) -> Vec<Value> {
    let properties = &resource(template, function)["Properties"];
    assert!(
        properties.get("Policies").is_none(),
        "{function}: grants belong in its own role, not in SAM `Policies` (SAM adds managed policies on `*`)"
    );
    let (role, attribute) = get_att(&properties["Role"]).unwrap_or_else(|| {
        panic!("{function}: Role must be !GetAtt <a role of this template>.Arn")
    });
    assert_eq!(attribute, "Arn", "{function}");
    let role = resource(template, role);
    assert_eq!(role["Type"], "AWS::IAM::Role", "{function}");
    assert!(
        role["Properties"].get("ManagedPolicyArns").is_none(),
        "{function}: managed policies are not checked here; write the statements out"
    );
    let statements: Vec<Value> = role["Properties"]["Policies"]
        .as_array()
        .unwrap_or_else(|| panic!("{function}: its role has no Policies"))
        .iter()
        .flat_map(|policy| strings(&policy["PolicyDocument"]["Statement"]))
        .map(when_granted)
        .collect();
    assert!(
        !statements.is_empty(),
        "{function}: its role has no statement"
    );
    statements
}

#[test]
fn the_template_declares_exactly_the_five_functions() {
    let template = template();
    let declared = resources_of_type(&template, "AWS::Serverless::Function");
    let expected: BTreeSet<&str> = functions().iter().map(|f| f.logical_id).collect();
    assert_eq!(declared, expected);
}

#[test]
fn functions_are_rust_binaries_on_provided_al2023_arm64() {
    let template = template();
    // One parameter sets the architecture: arm64 for deployments, x86_64 for CI's build.
    let parameter = &template["Parameters"]["Architecture"];
    assert_eq!(parameter["Default"], "arm64");
    assert_eq!(parameter["AllowedValues"], json!(["arm64", "x86_64"]));
    for function in functions() {
        let id = function.logical_id;
        let properties = function_properties(&template, id);
        assert_eq!(properties["Runtime"], "provided.al2023", "{id}");
        assert_eq!(
            properties["Architectures"],
            json!([{ "Ref": "Architecture" }]),
            "{id}"
        );
        assert_eq!(properties["Handler"], "bootstrap", "{id}");
        assert!(
            properties["MemorySize"].is_u64(),
            "{id}: MemorySize is not set"
        );
        assert!(properties["Timeout"].is_u64(), "{id}: Timeout is not set");

        let metadata = &resource(&template, id)["Metadata"];
        assert_eq!(metadata["BuildMethod"], "rust-cargolambda", "{id}");
        assert_eq!(
            metadata["BuildProperties"]["Binary"], function.binary,
            "{id}"
        );
        // CodeUri is relative to infra/ and names the package whose [[bin]] it is.
        let code_uri = properties["CodeUri"].as_str().expect("CodeUri is a path");
        let package = workspace().join("infra").join(code_uri);
        assert_eq!(
            package.canonicalize().ok(),
            workspace().join(function.package_dir).canonicalize().ok(),
            "{id}: CodeUri {code_uri}"
        );
        let manifest = std::fs::read_to_string(Path::new(&package).join("Cargo.toml")).unwrap();
        assert!(
            manifest.contains(&format!("[[bin]]\nname = \"{}\"", function.binary)),
            "{id}: {code_uri}/Cargo.toml has no binary {}",
            function.binary
        );

        let logging = &properties["LoggingConfig"];
        assert_eq!(logging["LogFormat"], "JSON", "{id}");
        let log_group = ref_of(&logging["LogGroup"])
            .unwrap_or_else(|| panic!("{id}: LoggingConfig.LogGroup must be !Ref <a log group>"));
        let log_group = resource(&template, log_group);
        assert_eq!(log_group["Type"], "AWS::Logs::LogGroup", "{id}");
        assert!(
            !log_group["Properties"]["RetentionInDays"].is_null(),
            "{id}: its log group keeps logs forever"
        );
    }
}

/// A function's `Timeout`, in seconds (its own or the Globals').
fn timeout_of(template: &Value, id: &str) -> u64 {
    function_properties(template, id)["Timeout"]
        .as_u64()
        .unwrap_or_else(|| panic!("{id}'s Timeout is a number"))
}

/// A slow SQS must end in the SDK (operation timeout, shared by every client) and be
/// answered 503 with `Retry-After`, not in a killed invocation: the ingest function's
/// timeout leaves at least two seconds after the operation timeout, and stays below API
/// Gateway's 30 s integration limit. (`processors/ingest/tests/slow_queue.rs` shows the
/// 503.)
#[test]
fn the_ingest_timeout_outlasts_its_sqs_calls() {
    let template = template();
    let timeout = timeout_of(&template, "IngestFunction");
    let operation = referral_aws::config::OPERATION_TIMEOUT.as_secs();
    assert!(
        timeout >= operation + 2,
        "ingest timeout {timeout} s leaves no room after the SDK's {operation} s"
    );
    assert!(
        timeout < 30,
        "ingest timeout {timeout} s reaches API Gateway's 30 s"
    );
}

/// An erasure deletes only once no enricher can still act on an erasure filter read before
/// its markers: the eraser's settle outlasts the enricher's timeout plus how long it trusts a
/// filter read (`shared/aws/src/erasure.rs`), and the code's own bounds match the template.
#[test]
fn the_erasure_settles_past_any_enricher_that_read_the_filter_before() {
    use referral_domain::ports::{ENRICHER_MAX_INVOCATION, ERASURE_GENERATION_TTL, ERASURE_SETTLE};
    let template = template();
    let enricher_timeout = timeout_of(&template, "EnricherFunction");
    assert!(
        enricher_timeout <= ENRICHER_MAX_INVOCATION.as_secs(),
        "the enricher may run {enricher_timeout} s, the erasure assumes {} s",
        ENRICHER_MAX_INVOCATION.as_secs()
    );
    let settle = function_properties(&template, "EraserFunction")["Environment"]["Variables"]
        [referral_eraser::ENV_SETTLE_SECONDS]
        .as_u64()
        .expect("the eraser's ERASURE_SETTLE_SECONDS is a number");
    let exposed = enricher_timeout + ERASURE_GENERATION_TTL.as_secs();
    assert!(
        settle > exposed,
        "the eraser waits {settle} s; an enricher acts on an old filter up to {exposed} s"
    );
    assert!(
        ERASURE_SETTLE.as_secs() > exposed,
        "the CLI's default settle"
    );
}

#[test]
fn each_function_sets_exactly_the_environment_its_binary_reads() {
    let template = template();
    for function in functions() {
        let id = function.logical_id;
        let properties = function_properties(&template, id);
        let set: BTreeSet<&str> = properties["Environment"]["Variables"]
            .as_object()
            .map(|variables| variables.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let read: BTreeSet<&str> = function.env_vars.iter().copied().collect();
        assert_eq!(
            set,
            read,
            "{id}: set but not read: {:?}; read but not set: {:?}",
            set.difference(&read).collect::<Vec<_>>(),
            read.difference(&set).collect::<Vec<_>>()
        );
    }
}

#[test]
fn each_role_grants_its_code_actions_its_mapping_actions_and_its_logs_only() {
    let template = template();
    for function in functions() {
        let id = function.logical_id;
        let (mut code, mut mapping, mut logs) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        let (mut key, mut xray) = (BTreeSet::new(), BTreeSet::new());
        for statement in role_statements(&template, id) {
            assert_eq!(statement["Effect"], "Allow", "{id}: {statement}");
            let sid = statement["Sid"]
                .as_str()
                .unwrap_or_else(|| panic!("{id}: every statement needs a Sid: {statement}"));
            let actions = action_set(&statement["Action"]);
            assert!(!actions.is_empty(), "{id}: statement {sid} grants nothing");
            if sid.starts_with(MAPPING_SID_PREFIX) {
                mapping.extend(actions);
            } else if sid == LOGS_SID {
                logs.extend(actions);
            } else if sid == KMS_SID {
                assert_eq!(
                    statement["Resource"],
                    json!({ "Ref": "KmsKeyArn" }),
                    "{id}: the key's grant is on that key only"
                );
                key.extend(actions);
            } else if sid == XRAY_SID {
                assert_eq!(statement["Resource"], "*", "{id}: {statement}");
                xray.extend(actions);
            } else {
                code.extend(actions);
            }
        }
        assert_eq!(code, owned(&function.code_actions), "{id}: code actions");
        assert_eq!(
            mapping,
            owned(function.mapping_actions),
            "{id}: mapping actions"
        );
        assert_eq!(logs, owned(LOG_ACTIONS), "{id}: log actions");
        assert_eq!(
            key,
            owned(KMS_ACTIONS),
            "{id}: customer-managed key actions"
        );
        assert_eq!(xray, owned(XRAY_ACTIONS), "{id}: X-Ray actions");
    }
}

#[test]
fn no_policy_grants_a_wildcard_action_or_resource() {
    let template = template();
    let mut statements = Vec::new();
    collect_statements(&template["Resources"], &mut statements);
    assert!(
        statements.len() >= 3,
        "found only {} statements",
        statements.len()
    );
    for statement in statements {
        if statement["Sid"] == XRAY_SID {
            // X-Ray's segments have no resource to name: its two actions on `*`, only
            // when tracing is active (`when_granted` checked the condition).
            assert_eq!(
                action_set(&statement["Action"]),
                owned(XRAY_ACTIONS),
                "{statement}"
            );
            continue;
        }
        for key in ["NotAction", "NotResource"] {
            assert!(
                statement.get(key).is_none(),
                "{key} grants everything else: {statement}"
            );
        }
        for action in action_set(&statement["Action"]) {
            assert!(
                !action.contains('*'),
                "wildcard action {action}: {statement}"
            );
        }
        for resource in strings(&statement["Resource"]) {
            let text = resource
                .as_str()
                .or_else(|| resource.get("Fn::Sub").and_then(Value::as_str));
            // `*`, or an ARN with a wildcard region, account or whole resource part.
            let wildcard = text
                .is_some_and(|text| text == "*" || text.contains(":*:") || text.ends_with(":*"));
            assert!(!wildcard, "wildcard resource: {statement}");
        }
    }
}

/// Every policy statement anywhere under `value` (roles, SAM `Policies`, queue and topic
/// policies alike).
fn collect_statements(value: &Value, statements: &mut Vec<Value>) {
    match value {
        Value::Object(object) => {
            if let Some(found) = object.get("Statement") {
                statements.extend(strings(found).into_iter().map(when_granted));
            }
            for child in object.values() {
                collect_statements(child, statements);
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|item| collect_statements(item, statements)),
        _ => {}
    }
}

/// A statement the function's code needs, as opposed to its mapping's, or the logs, the key
/// and X-Ray that every function is granted (checked on their own).
fn is_code_statement(statement: &Value) -> bool {
    let sid = statement["Sid"].as_str().unwrap_or_default();
    !sid.starts_with(MAPPING_SID_PREFIX) && sid != LOGS_SID && sid != KMS_SID && sid != XRAY_SID
}

/// The resources of the code (not mapping, not log) statements of `function`'s role that
/// grant `action`.
fn code_grants(template: &Value, function: &str, action: &str) -> Vec<Value> {
    role_statements(template, function)
        .iter()
        .filter(|statement| is_code_statement(statement))
        .filter(|statement| action_set(&statement["Action"]).contains(action))
        .flat_map(|statement| strings(&statement["Resource"]).into_iter().cloned())
        .collect()
}

/// Each action list of the erasure core is granted in one statement, on exactly the
/// resources of the variables the eraser reads (the three queues for the sweep): an erasure
/// can reach nothing else, and a list that grows in the code fails here until the template
/// follows.
#[test]
fn the_eraser_reaches_exactly_what_an_erasure_deletes() {
    use referral_aws::erasure::{
        ARCHIVE_IAM_ACTIONS, FEATURES_IAM_ACTIONS, MESSAGES_IAM_ACTIONS, QUEUE_IAM_ACTIONS,
    };
    use referral_eraser as eraser;

    let template = template();
    let eraser_env =
        function_properties(&template, "EraserFunction")["Environment"]["Variables"].clone();
    let arn_of = |variable: &str| {
        let resource = ref_of(&eraser_env[variable])
            .unwrap_or_else(|| panic!("EraserFunction's {variable} is !Ref <resource>"));
        json!({ "Fn::GetAtt": [resource, "Arn"] })
    };
    let mut expected: Vec<(BTreeSet<String>, BTreeSet<String>)> = [
        (
            FEATURES_IAM_ACTIONS,
            vec![arn_of(referral_aws::dynamo::ENV_FEATURES_TABLE)],
        ),
        (
            ARCHIVE_IAM_ACTIONS,
            vec![arn_of(referral_aws::dynamo::ENV_ARCHIVE_TABLE)],
        ),
        (
            MESSAGES_IAM_ACTIONS,
            vec![arn_of(referral_aws::dynamo::ENV_MESSAGES_TABLE)],
        ),
        (
            QUEUE_IAM_ACTIONS,
            vec![
                arn_of(eraser::ENV_WEBHOOK_QUEUE_URL),
                arn_of(eraser::ENV_DEAD_LETTER_QUEUE_URL),
                arn_of(eraser::ENV_STREAM_FAILURE_QUEUE_URL),
            ],
        ),
        (
            referral_aws::secrets::SECRETS_IAM_ACTIONS,
            vec![json!({ "Ref": "CustomerRefKeySecret" })],
        ),
    ]
    .into_iter()
    .map(|(actions, resources)| {
        (
            owned(actions),
            resources.iter().map(Value::to_string).collect(),
        )
    })
    .collect();
    expected.sort();
    let mut granted: Vec<(BTreeSet<String>, BTreeSet<String>)> =
        role_statements(&template, "EraserFunction")
            .iter()
            .filter(|statement| is_code_statement(statement))
            .map(|statement| {
                (
                    action_set(&statement["Action"]),
                    strings(&statement["Resource"])
                        .into_iter()
                        .map(Value::to_string)
                        .collect(),
                )
            })
            .collect();
    granted.sort();
    assert_eq!(granted, expected);
}

#[test]
fn queues_tables_and_mappings_agree_with_the_code() {
    let template = template();
    let env = |id: &str, name: &str| {
        function_properties(&template, id)["Environment"]["Variables"][name].clone()
    };

    // The webhook queue: written by ingest, read by the enricher, redriven to the DLQ the
    // enricher also sends its refusals to.
    let ingest_queue = ref_of(&env("IngestFunction", "WEBHOOK_QUEUE_URL")).map(str::to_owned);
    let enricher = function_properties(&template, "EnricherFunction");
    let sqs_event = enricher["Events"]
        .as_object()
        .and_then(|events| events.values().find(|e| e["Type"] == "SQS"))
        .expect("the enricher has an SQS event");
    let read_queue = get_att(&sqs_event["Properties"]["Queue"]).map(|(queue, _)| queue.to_owned());
    assert_eq!(
        ingest_queue, read_queue,
        "ingest writes where the enricher reads"
    );
    let queue_id = read_queue.expect("the SQS event's Queue is !GetAtt <queue>.Arn");
    let queue = &resource(&template, &queue_id)["Properties"];
    let dlq =
        get_att(&queue["RedrivePolicy"]["deadLetterTargetArn"]).map(|(dlq, _)| dlq.to_owned());
    assert_eq!(
        ref_of(&env("EnricherFunction", "DEAD_LETTER_QUEUE_URL")).map(str::to_owned),
        dlq,
        "the enricher's dead letters go to the queue's own DLQ"
    );
    // Each send is granted on its own queue only.
    let queue_arn = |id: &Option<String>| vec![json!({ "Fn::GetAtt": [id, "Arn"] })];
    assert_eq!(
        code_grants(&template, "IngestFunction", "sqs:SendMessage"),
        queue_arn(&Some(queue_id.clone()))
    );
    assert_eq!(
        code_grants(&template, "EnricherFunction", "sqs:SendMessage"),
        queue_arn(&dlq)
    );
    let timeout = enricher["Timeout"].as_u64().unwrap();
    let visibility = queue["VisibilityTimeout"]
        .as_u64()
        .expect("VisibilityTimeout is a number");
    assert!(
        visibility >= 6 * timeout,
        "visibility {visibility} s < 6 x timeout {timeout} s"
    );
    assert!(!queue["RedrivePolicy"]["maxReceiveCount"].is_null());
    let mapping = &sqs_event["Properties"];
    assert_eq!(
        mapping["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );

    // The feature table and its stream, read by the orchestrator.
    let features = ref_of(&env("EnricherFunction", "FEATURES_TABLE"))
        .map(str::to_owned)
        .expect("FEATURES_TABLE is !Ref <table>");
    let table = &resource(&template, &features)["Properties"];
    assert_eq!(
        table["KeySchema"],
        json!([{ "AttributeName": CUSTOMER_KEY, "KeyType": "HASH" }])
    );
    assert_eq!(table["StreamSpecification"]["StreamViewType"], "NEW_IMAGE");
    let orchestrator = function_properties(&template, "OrchestratorFunction");
    let stream_event = orchestrator["Events"]
        .as_object()
        .and_then(|events| events.values().find(|e| e["Type"] == "DynamoDB"))
        .expect("the orchestrator has a DynamoDB event");
    let mapping = &stream_event["Properties"];
    assert_eq!(
        get_att(&mapping["Stream"]),
        Some((features.as_str(), "StreamArn"))
    );
    assert_eq!(
        mapping["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    assert_eq!(mapping["BisectBatchOnFunctionError"], true);
    let destination = get_att(&mapping["DestinationConfig"]["OnFailure"]["Destination"]);
    let (destination, _) = destination.expect("an on-failure destination");
    assert_eq!(resource(&template, destination)["Type"], "AWS::SQS::Queue");
    // Undecodable records are quarantined by the code on that very queue, and only there.
    assert_eq!(
        ref_of(&env("OrchestratorFunction", "STREAM_FAILURE_QUEUE_URL")),
        Some(destination)
    );
    assert_eq!(
        code_grants(&template, "OrchestratorFunction", "sqs:SendMessage"),
        vec![json!({ "Fn::GetAtt": [destination, "Arn"] })]
    );
    let patterns: Vec<Value> = mapping["FilterCriteria"]["Filters"]
        .as_array()
        .expect("a filter")
        .iter()
        .map(|filter| serde_json::from_str(filter["Pattern"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(patterns, vec![json!({ "eventName": ["INSERT", "MODIFY"] })]);

    // The message table: keys and claim TTL as the message store writes them.
    let messages = ref_of(&env("OrchestratorFunction", "MESSAGES_TABLE"))
        .map(str::to_owned)
        .expect("MESSAGES_TABLE is !Ref <table>");
    let table = &resource(&template, &messages)["Properties"];
    assert_eq!(
        table["KeySchema"],
        json!([
            { "AttributeName": CUSTOMER_KEY, "KeyType": "HASH" },
            { "AttributeName": MESSAGE_KEY, "KeyType": "RANGE" },
        ])
    );
    assert_eq!(
        table["TimeToLiveSpecification"]["AttributeName"],
        CLAIM_TTL_ATTRIBUTE
    );

    // A claim outlives any invocation that holds it.
    let lease: u64 = env("OrchestratorFunction", "CLAIM_LEASE_SECONDS")
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("CLAIM_LEASE_SECONDS is a number");
    let timeout = orchestrator["Timeout"].as_u64().unwrap();
    assert!(
        lease > timeout,
        "claim lease {lease} s <= orchestrator timeout {timeout} s"
    );

    // Other consumers find the feature table by this parameter.
    let parameter = resources_of_type(&template, "AWS::SSM::Parameter")
        .into_iter()
        .map(|id| &resource(&template, id)["Properties"])
        .find(|p| ref_of(&p["Value"]) == Some(features.as_str()))
        .expect("an SSM parameter holds the feature table's name");
    let name = ref_of(&parameter["Name"]).expect("its Name is a parameter");
    assert_eq!(
        template["Parameters"][name]["Default"],
        "/referral-system/customer-features-table-name"
    );
}

#[test]
fn the_message_policy_comes_from_parameters_whose_defaults_keep_todays_behaviour() {
    use referral_domain::env::Vars;
    use referral_domain::orchestrator::policy::{self, MessagePolicy};

    let template = template();
    let orchestrator = function_properties(&template, "OrchestratorFunction");
    let mut defaults = Vec::new();
    let mut parameters = BTreeSet::new();
    for &name in policy::ENV_VARS {
        let parameter = ref_of(&orchestrator["Environment"]["Variables"][name])
            .unwrap_or_else(|| panic!("{name} is !Ref <parameter>"));
        assert!(parameters.insert(parameter), "{parameter} set twice");
        let declared = &template["Parameters"][parameter];
        // A String, so that empty (the rule off) is a value a deployer can pass back.
        assert_eq!(declared["Type"], "String", "{parameter}");
        let default = declared["Default"]
            .as_str()
            .unwrap_or_else(|| panic!("{parameter} has a default"));
        defaults.push((name, default));
    }
    // The defaults as the function reads them: every rule off, as before the policy.
    assert_eq!(
        MessagePolicy::from_vars(&Vars::fixed(&defaults)),
        Ok(MessagePolicy::default())
    );
}

#[test]
fn the_lifetime_value_rule_comes_from_parameters_whose_defaults_are_designs() {
    use referral_domain::env::Vars;
    use referral_domain::features::LifetimeValueRule;

    let template = template();
    let enricher = function_properties(&template, "EnricherFunction");
    let mut defaults = Vec::new();
    for name in LifetimeValueRule::ENV_VARS {
        let parameter = ref_of(&enricher["Environment"]["Variables"][name])
            .unwrap_or_else(|| panic!("{name} is !Ref <parameter>"));
        let declared = &template["Parameters"][parameter]["Default"];
        let default = match declared {
            Value::String(text) => text.clone(),
            Value::Number(number) => number.to_string(),
            other => panic!("{parameter}'s default {other:?}"),
        };
        defaults.push((name, default));
    }
    let defaults: Vec<(&str, &str)> = defaults
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    assert_eq!(
        LifetimeValueRule::from_vars(&Vars::fixed(&defaults)),
        Ok(LifetimeValueRule::default())
    );
}

#[test]
fn the_budget_alarm_watches_the_metric_the_orchestrator_emits() {
    use referral_domain::orchestrator::StreamCounters;

    let template = template();
    let alarm = &resource(&template, "BedrockBudgetExhaustedAlarm")["Properties"];
    // The orchestrator's EMF line: its counters, in this namespace, by service.
    assert_eq!(alarm["Namespace"], referral_aws::telemetry::NAMESPACE);
    assert_eq!(
        alarm["Dimensions"],
        json!([{ "Name": "service", "Value": "orchestrator" }])
    );
    let counters = serde_json::to_value(StreamCounters::default()).unwrap();
    let metric = alarm["MetricName"].as_str().unwrap();
    assert_eq!(metric, "budget_exhausted");
    assert!(counters[metric].is_number(), "{metric} is not a counter");
    // Any exhausted call in the period raises it, to the alarm topic.
    assert_eq!(alarm["Statistic"], "Sum");
    assert_eq!(alarm["Threshold"], 0);
    assert_eq!(alarm["ComparisonOperator"], "GreaterThanThreshold");
    assert_eq!(alarm["AlarmActions"], json!([{ "Ref": "AlarmTopic" }]));
}

#[test]
fn the_throttle_retry_window_has_the_same_bound_in_the_template_and_the_function() {
    let template = template();
    let orchestrator = function_properties(&template, "OrchestratorFunction");
    let parameter =
        ref_of(&orchestrator["Environment"]["Variables"]["BEDROCK_THROTTLE_RETRY_SECONDS"])
            .expect("BEDROCK_THROTTLE_RETRY_SECONDS is !Ref <parameter>");
    let declared = &template["Parameters"][parameter];
    assert_eq!(declared["MinValue"].as_u64(), Some(0), "{parameter}");
    assert_eq!(
        declared["MaxValue"].as_u64(),
        Some(referral_orchestrator::MAX_THROTTLE_RETRY_SECONDS),
        "{parameter}: a value the template accepts must start the function"
    );
}

#[test]
fn message_retention_is_a_parameter_of_a_year_with_the_functions_bounds() {
    use referral_domain::env::Vars;
    use referral_domain::ports::{
        ENV_MESSAGE_RETENTION_DAYS, MAX_RETENTION_DAYS, MessageRetention,
    };

    let template = template();
    let orchestrator = function_properties(&template, "OrchestratorFunction");
    let parameter = ref_of(&orchestrator["Environment"]["Variables"][ENV_MESSAGE_RETENTION_DAYS])
        .expect("MESSAGE_RETENTION_DAYS is !Ref <parameter>");
    assert_eq!(parameter, "MessageRetentionDays");
    let declared = &template["Parameters"][parameter];
    assert_eq!(declared["MinValue"].as_u64(), Some(0), "0 keeps messages");
    assert_eq!(
        declared["MaxValue"].as_u64(),
        Some(u64::from(MAX_RETENTION_DAYS)),
        "a value the template accepts must start the function"
    );
    let default = declared["Default"].to_string();
    assert_eq!(
        MessageRetention::from_vars(&Vars::fixed(&[(ENV_MESSAGE_RETENTION_DAYS, &default)])),
        Ok(MessageRetention::days(365))
    );
}

/// `value` is `!If [HasKmsKey, with_key, without_key]`.
fn assert_by_key(value: &Value, with_key: Value, without_key: Value, what: &str) {
    assert_eq!(
        *value,
        json!({ "Fn::If": ["HasKmsKey", with_key, without_key] }),
        "{what}"
    );
}

#[test]
fn a_customer_managed_key_when_given_encrypts_every_table_queue_and_log_group() {
    let template = template();
    let parameter = &template["Parameters"]["KmsKeyArn"];
    assert_eq!(
        parameter["Default"], "",
        "AWS-managed keys unless one is given"
    );
    assert_eq!(
        template["Conditions"]["HasKmsKey"],
        json!({ "Fn::Not": [{ "Fn::Equals": [{ "Ref": "KmsKeyArn" }, ""] }] })
    );
    let key = || json!({ "Ref": "KmsKeyArn" });
    let none = || json!({ "Ref": "AWS::NoValue" });

    let tables = resources_of_type(&template, "AWS::DynamoDB::Table");
    assert_eq!(tables.len(), 3, "{tables:?}");
    for id in tables {
        let sse = &resource(&template, id)["Properties"]["SSESpecification"];
        // Enabled without a type is the AWS-managed key, as before the parameter.
        assert_eq!(sse["SSEEnabled"], true, "{id}");
        assert_by_key(&sse["SSEType"], json!("KMS"), none(), id);
        assert_by_key(&sse["KMSMasterKeyId"], key(), none(), id);
    }
    let queues = resources_of_type(&template, "AWS::SQS::Queue");
    assert_eq!(queues.len(), 3, "{queues:?}");
    for id in queues {
        let properties = &resource(&template, id)["Properties"];
        // SQS refuses both at once: its own managed SSE, or the key.
        assert_by_key(&properties["SqsManagedSseEnabled"], none(), json!(true), id);
        assert_by_key(&properties["KmsMasterKeyId"], key(), none(), id);
    }
    let secrets = resources_of_type(&template, "AWS::SecretsManager::Secret");
    assert_eq!(secrets.len(), 2, "{secrets:?}");
    for id in secrets {
        let properties = &resource(&template, id)["Properties"];
        assert_by_key(&properties["KmsKeyId"], key(), none(), id);
    }
    // The backfill's partitions hold customer data too.
    let bucket = &resource(&template, "BackfillBucket")["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        [0]["ServerSideEncryptionByDefault"];
    assert_by_key(
        bucket,
        json!({ "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key() }),
        json!({ "SSEAlgorithm": "AES256" }),
        "BackfillBucket",
    );
    let log_groups = resources_of_type(&template, "AWS::Logs::LogGroup");
    assert_eq!(log_groups.len(), functions().len(), "{log_groups:?}");
    for id in log_groups {
        let properties = &resource(&template, id)["Properties"];
        assert_by_key(&properties["KmsKeyId"], key(), none(), id);
    }
    // Every function logs to its own (encrypted) group, not one Lambda would create.
    for function in functions() {
        let properties = function_properties(&template, function.logical_id);
        let group = ref_of(&properties["LoggingConfig"]["LogGroup"]).map(str::to_owned);
        assert!(
            group.is_some_and(|group| resource(&template, &group)["Type"] == "AWS::Logs::LogGroup"),
            "{}: LoggingConfig.LogGroup is !Ref <a log group of this template>",
            function.logical_id
        );
    }
}

#[test]
fn a_prod_stack_keeps_its_tables_when_deleted_or_replaced() {
    let template = template();
    assert_eq!(
        template["Conditions"]["IsProd"],
        json!({ "Fn::Equals": [{ "Ref": "Stage" }, "prod"] })
    );
    for id in resources_of_type(&template, "AWS::DynamoDB::Table") {
        let table = resource(&template, id);
        for policy in ["DeletionPolicy", "UpdateReplacePolicy"] {
            assert_eq!(
                table[policy],
                json!({ "Fn::If": ["IsProd", "Retain", "Delete"] }),
                "{id}: {policy}"
            );
        }
        assert_eq!(
            table["Properties"]["DeletionProtectionEnabled"],
            json!({ "Fn::If": ["IsProd", true, false] }),
            "{id}"
        );
    }
    // CloudFormation takes an intrinsic function in these two attributes only through the
    // language extensions, which must run before SAM's transform.
    let conditional = template["Resources"]
        .as_object()
        .into_iter()
        .flat_map(|resources| resources.values())
        .any(|resource| {
            ["DeletionPolicy", "UpdateReplacePolicy"]
                .iter()
                .any(|policy| {
                    resource
                        .get(*policy)
                        .is_some_and(|value| !value.is_string())
                })
        });
    if conditional {
        assert_eq!(
            template["Transform"],
            json!(["AWS::LanguageExtensions", "AWS::Serverless-2016-10-31"])
        );
    }
}

/// NoEcho parameters that still reach a function's environment, and why.

#[test]
fn no_output_or_environment_variable_carries_a_secret() {
    let template = template();
    let secret_parameters: Vec<&str> = template["Parameters"]
        .as_object()
        .expect("parameters")
        .iter()
        .filter(|(_, declared)| declared["NoEcho"] == true)
        .map(|(name, _)| name.as_str())
        .collect();
    let shows = |text: &str, parameter: &str| {
        text.contains(&json!({ "Ref": parameter }).to_string())
            || text.contains(&format!("${{{parameter}}}"))
    };
    let outputs = template["Outputs"].to_string();
    for parameter in &secret_parameters {
        assert!(
            !shows(&outputs, parameter),
            "an output shows the NoEcho parameter {parameter}"
        );
    }
    for function in functions() {
        let id = function.logical_id;
        let environment = function_properties(&template, id)["Environment"].clone();
        for parameter in &secret_parameters {
            assert!(
                !shows(&environment.to_string(), parameter),
                "{id}: an environment variable carries the NoEcho parameter {parameter}"
            );
        }
        // A secret's value resolved by CloudFormation lands in the variable in clear.
        assert!(
            !environment.to_string().contains("{{resolve:secretsmanager")
                && !environment.to_string().contains("{{resolve:ssm-secure"),
            "{id}: a dynamic reference puts a secret's value in the environment"
        );
        // The variable that takes the webhook secrets in clear is for local runs only.
        assert!(
            environment["Variables"]
                .get(referral_ingest::config::SECRETS_VAR)
                .is_none(),
            "{id}: sets {}",
            referral_ingest::config::SECRETS_VAR
        );
    }
}

#[test]
fn every_function_reads_the_customer_ref_key_from_its_secret_and_only_that_secret() {
    let template = template();
    let variable = referral_domain::redact::CUSTOMER_REF_KEY_ARN_VAR;
    let globals = &template["Globals"]["Function"]["Environment"]["Variables"];
    let secret = ref_of(&globals[variable])
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("Globals set {variable} to !Ref <a secret>"));
    let declared = resource(&template, &secret);
    assert_eq!(declared["Type"], "AWS::SecretsManager::Secret");
    assert!(
        declared["Properties"]["GenerateSecretString"]["PasswordLength"]
            .as_u64()
            .unwrap_or(0)
            >= referral_domain::redact::MIN_CUSTOMER_REF_KEY_BYTES as u64 * 2
    );
    assert!(declared["Properties"].get("SecretString").is_none());
    assert!(
        globals
            .get(referral_domain::redact::CUSTOMER_REF_KEY_VAR)
            .is_none(),
        "the key itself is in no variable"
    );
    for function in functions() {
        let grants = code_grants(
            &template,
            function.logical_id,
            "secretsmanager:GetSecretValue",
        );
        assert!(
            grants.contains(&json!({ "Ref": secret })),
            "{}: may read {secret}",
            function.logical_id
        );
    }
}

#[test]
fn ingest_reads_its_webhook_secrets_from_the_one_secret_it_may_read() {
    let template = template();
    let ingest = function_properties(&template, "IngestFunction");
    let secret =
        ref_of(&ingest["Environment"]["Variables"][referral_ingest::config::SECRETS_ARN_VAR])
            .map(str::to_owned)
            .expect("WEBHOOK_SECRETS_ARN is !Ref <a secret>");
    let declared = resource(&template, &secret);
    assert_eq!(declared["Type"], "AWS::SecretsManager::Secret");
    assert_eq!(
        code_grants(&template, "IngestFunction", "secretsmanager:GetSecretValue"),
        vec![
            json!({ "Ref": secret }),
            json!({ "Ref": "CustomerRefKeySecret" })
        ],
        "GetSecretValue on that secret and the customer-ref key only"
    );
    for function in ["EnricherFunction", "OrchestratorFunction"] {
        assert_eq!(
            code_grants(&template, function, "secretsmanager:GetSecretValue"),
            vec![json!({ "Ref": "CustomerRefKeySecret" })],
            "{function} reads the customer-ref key only"
        );
    }
    // A generated value is letters and digits: a comma would split it into two secrets,
    // and it must be as long as the function requires.
    let generated = &declared["Properties"]["GenerateSecretString"];
    assert_eq!(generated["ExcludePunctuation"], true);
    assert!(
        generated["PasswordLength"].as_u64().unwrap_or(0)
            >= referral_ingest::config::MIN_SECRET_BYTES as u64 * 2
    );
    assert!(
        declared["Properties"].get("SecretString").is_none(),
        "the value is not written in the template"
    );
}

#[test]
fn x_ray_active_tracing_is_an_option_of_every_function_off_by_default() {
    let template = template();
    let parameter = &template["Parameters"]["Tracing"];
    assert_eq!(parameter["Default"], "PassThrough");
    assert_eq!(parameter["AllowedValues"], json!(["Active", "PassThrough"]));
    assert_eq!(
        template["Conditions"]["TracingActive"],
        json!({ "Fn::Equals": [{ "Ref": "Tracing" }, "Active"] })
    );
    assert_eq!(
        template.pointer("/Globals/Function/Tracing"),
        Some(&json!({ "Ref": "Tracing" })),
        "set once, in Globals"
    );
    for function in functions() {
        let id = function.logical_id;
        assert!(
            resource(&template, id)["Properties"]
                .get("Tracing")
                .is_none(),
            "{id}: overrides the Tracing parameter"
        );
        assert_eq!(
            function_properties(&template, id)["Tracing"],
            json!({ "Ref": "Tracing" }),
            "{id}"
        );
        // Its role may send segments when (and only when) tracing is active.
        let properties = &resource(&template, id)["Properties"];
        let (role, _) = get_att(&properties["Role"]).unwrap();
        let mut conditional = Vec::new();
        for policy in resource(&template, role)["Properties"]["Policies"]
            .as_array()
            .unwrap()
        {
            for statement in strings(&policy["PolicyDocument"]["Statement"]) {
                if let Some(branches) = statement.get("Fn::If")
                    && branches[1]["Sid"] == XRAY_SID
                {
                    conditional.push(branches[0].clone());
                }
            }
        }
        assert_eq!(conditional, [json!("TracingActive")], "{id}: {role}");
    }
}
