//! The backfill at scale, against moto's S3 and DynamoDB: `referral backfill --to s3://…`
//! writes each valid row once, each customer in one object; the backfill Lambda binary,
//! run under the Lambda emulator with the items a Distributed Map over S3 hands it, then
//! loads those objects to exactly the features `referral backfill` gives from the same
//! files, with no message; and a retried item writes nothing.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use referral_aws::dynamo::DynamoFeatureStore;
use referral_cli::names::{ResourceNames, STREAM_FAILURE_QUEUE, TableNames};
use referral_cli::remote;
use referral_domain::features::CustomerFeatures;
use referral_lambda_emulator::{FunctionSpec, InvocationOutcome, Payload, run_function};
use referral_tests::comparable;
use referral_tests::corpus::Corpus;
use referral_tests::emulator::{endpoint, sdk_config, unique};
use serde_json::{Value, json};

mod common;
use common::lambda_binaries;
use lambda_binaries::lambda_binary;

fn referral(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_referral"))
        .current_dir(dir)
        .args(args)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_ENDPOINT_URL")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn json_of(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("--json prints one JSON document")
}

async fn tables(sdk: &aws_config::SdkConfig) -> ResourceNames {
    let names = ResourceNames {
        tables: TableNames {
            features_table: unique("features"),
            archive_table: unique("archive"),
            messages_table: unique("messages"),
        },
        queue: unique("queue"),
        dlq: unique("dlq"),
        stream_failures: STREAM_FAILURE_QUEUE.to_owned(),
    };
    remote::setup(sdk, &names, 5).await.expect("setup");
    names
}

async fn scan_all(store: &DynamoFeatureStore) -> BTreeMap<String, CustomerFeatures> {
    let mut items = BTreeMap::new();
    let mut start = None;
    loop {
        let page = store.scan_page(start).await.expect("scan");
        assert!(page.undecodable.is_empty());
        for item in page.items {
            items.insert(item.customer_email.clone(), item);
        }
        match page.next {
            Some(next) => start = Some(next),
            None => return items,
        }
    }
}

/// The map's items for the objects under `prefix`, as the S3 item reader lists them.
async fn map_items(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<Value> {
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    listed
        .contents()
        .iter()
        .map(|object| {
            json!({
                "Etag": object.e_tag().unwrap_or_default(),
                "Key": object.key().unwrap(),
                "Size": object.size().unwrap_or_default(),
                "StorageClass": "STANDARD",
            })
        })
        .collect()
}

async fn run_backfill_lambda(names: &ResourceNames, bucket: &str, items: &[Value]) -> Vec<Value> {
    let mut spec = FunctionSpec::new(lambda_binary("backfill"), "backfill");
    spec.env = [
        ("FEATURES_TABLE", names.tables.features_table.as_str()),
        ("ARCHIVE_TABLE", &names.tables.archive_table),
        ("MESSAGES_TABLE", &names.tables.messages_table),
        ("BACKFILL_BUCKET", bucket),
        ("AWS_ENDPOINT_URL", &endpoint()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect();
    spec.timeout = Duration::from_secs(120);
    let events = items.iter().map(|item| item.to_string().into_bytes());
    let stats = run_function(&spec, events).await.unwrap();
    assert!(stats.init_error.is_none(), "{stats:?}");
    stats
        .invocations
        .into_iter()
        .map(|invocation| match invocation.outcome {
            InvocationOutcome::Response(Payload::Json(summary)) => summary,
            other => panic!("expected a summary: {other:?}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_on_s3_load_through_the_lambda_as_the_cli_loads_the_files() {
    let sdk = sdk_config().await;
    let corpus = Corpus::shuffled_history();
    let dir = std::env::temp_dir().join(unique("backfill-s3"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut jsonl = std::fs::File::create(dir.join("history.jsonl")).unwrap();
    for delivery in &corpus.deliveries {
        writeln!(jsonl, "{}", delivery.body).unwrap();
    }
    writeln!(jsonl, "not json").unwrap();
    drop(jsonl);

    // --to: validated, partitioned by customer, each row once.
    let s3 = referral_backfill::s3_client(&sdk);
    let bucket = unique("backfill").to_lowercase().replace('_', "-");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let to = format!("s3://{bucket}/history/run-1");
    let endpoint = endpoint();
    let uploaded = json_of(&referral(
        &[
            "backfill",
            "history.jsonl",
            "--to",
            &to,
            "--partitions",
            "8",
            "--json",
            "--state-dir",
            "state",
            "--rejects",
            "rejects.jsonl",
            "--endpoint-url",
            &endpoint,
        ],
        &dir,
    ));
    assert_eq!(uploaded["rejected"], 1, "{uploaded}");
    assert_eq!(uploaded["valid"], corpus.deliveries.len(), "{uploaded}");
    assert_eq!(
        uploaded["execution_input"],
        json!({ "prefix": "history/run-1/" })
    );
    let items = map_items(&s3, &bucket, "history/run-1/").await;
    assert_eq!(uploaded["objects"], items.len(), "{uploaded}");
    assert!(items.len() > 1 && items.len() <= 8, "{}", items.len());
    let mut rows = Vec::new();
    let mut objects_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for item in &items {
        let key = item["Key"].as_str().unwrap();
        let object = s3
            .get_object()
            .bucket(&bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        let bytes = object.body.collect().await.unwrap().into_bytes();
        for line in String::from_utf8(bytes.to_vec()).unwrap().lines() {
            let body: Value = serde_json::from_str(line).unwrap();
            let customer = body["customer"]["email"].as_str().unwrap().to_lowercase();
            objects_of
                .entry(customer)
                .or_default()
                .insert(key.to_owned());
            rows.push(line.to_owned());
        }
    }
    let mut expected: Vec<String> = corpus.deliveries.iter().map(|d| d.body.clone()).collect();
    expected.sort();
    rows.sort();
    assert_eq!(rows, expected, "every valid row exactly once");
    for (customer, objects) in &objects_of {
        assert_eq!(objects.len(), 1, "{customer} is in {objects:?}");
    }

    // The reference: `referral backfill` of the same file.
    let local = tables(&sdk).await;
    json_of(&referral(
        &[
            "backfill",
            "history.jsonl",
            "--json",
            "--state-dir",
            "state",
            "--rejects",
            "rejects-local.jsonl",
            "--features-table",
            &local.tables.features_table,
            "--archive-table",
            &local.tables.archive_table,
            "--messages-table",
            &local.tables.messages_table,
            "--endpoint-url",
            &endpoint,
        ],
        &dir,
    ));

    // The map: one Lambda invocation per object.
    let remote = tables(&sdk).await;
    let summaries = run_backfill_lambda(&remote, &bucket, &items).await;
    assert_eq!(summaries.len(), items.len());
    let total = |name: &str| -> u64 {
        summaries
            .iter()
            .map(|summary| summary[name].as_u64().unwrap())
            .sum()
    };
    assert_eq!(total("events"), corpus.deliveries.len() as u64);
    assert_eq!(
        total("applied") + total("duplicates"),
        corpus.deliveries.len() as u64
    );
    assert_eq!(total("rejected"), 0);
    assert_eq!(total("unrecorded"), 0);
    assert!(total("write_units") > 0);

    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let want = scan_all(&DynamoFeatureStore::new(
        dynamodb.clone(),
        &local.tables.features_table,
    ))
    .await;
    let got = scan_all(&DynamoFeatureStore::new(
        dynamodb.clone(),
        &remote.tables.features_table,
    ))
    .await;
    assert_eq!(got.len(), want.len());
    assert!(!got.is_empty());
    for (customer, item) in &got {
        assert_eq!(
            comparable(item.clone()),
            comparable(want[customer].clone()),
            "{customer}"
        );
        assert_eq!(item.trigger_event_id, None, "history earns no message");
    }

    // A retried item (the map retries a failed one) finds its events applied: no write.
    let retried = run_backfill_lambda(&remote, &bucket, &items[..1]).await;
    assert_eq!(retried[0]["applied"], 0, "{}", retried[0]);
    assert_eq!(retried[0]["item_writes"], 0, "{}", retried[0]);
    assert_eq!(retried[0]["archive_writes"], 0, "{}", retried[0]);
}

/// `--status` follows an execution of the state machine: a line while it runs, a line when
/// it ends, and the exit status says how it ended. moto runs no state machine, so its
/// executions stay RUNNING until stopped, and it keeps no map run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_follows_an_execution_until_it_ends_and_fails_when_it_is_aborted() {
    let sdk = sdk_config().await;
    let sfn = aws_sdk_sfn::Client::new(&sdk);
    let machine = sfn
        .create_state_machine()
        .name(unique("backfill"))
        .definition(r#"{"StartAt":"Load","States":{"Load":{"Type":"Pass","End":true}}}"#)
        .role_arn("arn:aws:iam::123456789012:role/backfill")
        .send()
        .await
        .unwrap();
    let execution = sfn
        .start_execution()
        .state_machine_arn(machine.state_machine_arn())
        .input(r#"{"prefix":"history/run-1/"}"#)
        .send()
        .await
        .unwrap();
    let arn = execution.execution_arn().to_owned();

    let mut follower = Command::new(env!("CARGO_BIN_EXE_referral"))
        .args([
            "backfill",
            "--status",
            &arn,
            "--poll-seconds",
            "1",
            "--json",
            "--endpoint-url",
            &endpoint(),
        ])
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(follower.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    let running: Value = serde_json::from_str(&first).expect("one JSON object a line");
    assert_eq!(running["status"], "RUNNING", "{first}");
    assert_eq!(running["items_total"], 0, "{first}");

    sfn.stop_execution()
        .execution_arn(&arn)
        .error("Operator")
        .send()
        .await
        .unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let status = follower.wait().unwrap();
    let last: Value = serde_json::from_str(rest.lines().last().expect("a line when it ends"))
        .expect("one JSON object a line");
    assert_eq!(last["status"], "ABORTED", "{rest}");
    assert_eq!(
        status.code(),
        Some(1),
        "an execution that did not succeed fails the command"
    );
    // Unchanged progress is not printed again while it runs.
    assert_eq!(rest.lines().count(), 1, "{rest}");

    let unknown = referral(
        &[
            "backfill",
            "--status",
            &format!("{arn}-unknown"),
            "--endpoint-url",
            &endpoint(),
        ],
        &std::env::temp_dir(),
    );
    assert_eq!(unknown.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.contains(&format!("{arn}-unknown")), "{stderr}");
}
