//! The functions' AWS calls under `referral invoke`, against moto's server
//! (`REFERRAL_TEST_ENDPOINT`, which `tests/run.sh` sets; unset, these tests fail saying so).

use referral_aws::dynamo::DynamoFeatureStore;
use referral_domain::ports::FeatureStore;
use referral_tests::emulator::{endpoint, fresh_queues, fresh_tables, queue_depth, sdk_config};

use super::*;

fn queue_name(url: &str) -> &str {
    url.rsplit('/')
        .next()
        .expect("a queue URL ends with its name")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_webhook_reaches_the_queue() {
    let url = endpoint();
    let ingest = lambda_binary("ingest");
    let config = sdk_config().await;
    let queues = fresh_queues(&config, 5).await;
    let name = queue_name(&queues.url);
    // invoke builds the URL of a queue named on the command line the way moto does.
    assert_eq!(queues.url, format!("{url}/123456789012/{name}"));

    let mut request = unsigned_request();
    let body = request["body"].as_str().unwrap().to_owned();
    let signature = referral_ingest::sign(SECRET, chrono::Utc::now().timestamp(), body.as_bytes());
    request["headers"]["x-signature"] = Value::from(signature);
    let args = [
        "--event",
        "-",
        "--endpoint-url",
        &url,
        "--queue",
        name,
        "--webhook-secrets",
        SECRET,
        "--binary",
        ingest.to_str().unwrap(),
    ];
    let output =
        tokio::task::block_in_place(|| invoke("ingest", &args, request.to_string().as_bytes()));
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 1, "{}", show(&output));
    let (status, answer) = http_answer(&lines[0]);
    assert_eq!(status, 202, "{}", show(&output));
    assert_eq!(answer["event_id"], "evt_01KESBRMM8A7S6MM0A78RMXX32");

    let sqs = aws_sdk_sqs::Client::new(&config);
    assert_eq!(queue_depth(&sqs, &queues.url).await, (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sqs_batch_reaches_the_features_table_through_the_enricher() {
    let url = endpoint();
    let enricher = lambda_binary("enricher");
    let config = sdk_config().await;
    let (tables, _stream) = fresh_tables(&config).await;
    let queues = fresh_queues(&config, 5).await;
    let args = [
        "--event",
        "events/lambda/sqs-batch.json",
        "--endpoint-url",
        &url,
        "--features-table",
        &tables.features,
        "--archive-table",
        &tables.archive,
        "--dlq",
        queue_name(&queues.dlq_url),
        "--binary",
        enricher.to_str().unwrap(),
    ];
    let output = tokio::task::block_in_place(|| invoke("enricher", &args, b""));
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let lines = stdout_lines(&output);
    assert_eq!(
        lines,
        [serde_json::json!({ "batchItemFailures": [] })],
        "{}",
        show(&output)
    );

    // Two customers' webhooks and a redelivery of the first; the last record's body is not
    // JSON, so it goes to the DLQ.
    let store = DynamoFeatureStore::new(aws_sdk_dynamodb::Client::new(&config), tables.features);
    for (email, events) in [("jane.doe@example.com", 1), ("noah.kim@example.com", 1)] {
        let features = store.load(email).await.unwrap();
        let features = features.unwrap_or_else(|| panic!("{email}: {}", show(&output)));
        assert_eq!(
            features.events_applied,
            events,
            "{email}: {}",
            show(&output)
        );
    }
    let poison = store.load("paula.reyes@example.org").await.unwrap();
    assert!(poison.is_none(), "{}", show(&output));
    let sqs = aws_sdk_sqs::Client::new(&config);
    let dead_letters = queue_depth(&sqs, &queues.dlq_url).await;
    assert_eq!(dead_letters, (1, 0), "{}", show(&output));
}

/// A request of the API Gateway fixture signed now with `secret`.
fn signed_request(secret: &str) -> Value {
    let mut request = unsigned_request();
    let body = request["body"].as_str().unwrap().to_owned();
    let signature = referral_ingest::sign(secret, chrono::Utc::now().timestamp(), body.as_bytes());
    request["headers"]["x-signature"] = Value::from(signature);
    request
}

/// `referral invoke ingest` with its secrets in the Secrets Manager secret `secret_id`, as
/// deployed: the development secrets are replaced by `WEBHOOK_SECRETS_ARN`.
fn invoke_ingest_with_secret_arn(url: &str, queue: &str, secret_id: &str, events: &str) -> Output {
    invoke_ingest_with_env(
        url,
        queue,
        &[format!("WEBHOOK_SECRETS_ARN={secret_id}")],
        events,
    )
}

/// `referral invoke ingest` with `settings` (`NAME=VALUE`) given with `--env`.
fn invoke_ingest_with_env(url: &str, queue: &str, settings: &[String], events: &str) -> Output {
    let ingest = lambda_binary("ingest");
    let mut args = vec!["--event", "-", "--endpoint-url", url, "--queue", queue];
    for setting in settings {
        args.extend(["--env", setting.as_str()]);
    }
    args.extend(["--binary", ingest.to_str().unwrap()]);
    tokio::task::block_in_place(|| invoke("ingest", &args, events.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_customer_ref_key_comes_from_its_secret_and_keys_the_logged_refs() {
    let url = endpoint();
    let config = sdk_config().await;
    let queues = fresh_queues(&config, 5).await;
    let queue = queue_name(&queues.url);
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    let arn_of = |name: String, value: &'static str| {
        let secrets = secrets.clone();
        async move {
            let created = secrets
                .create_secret()
                .name(name)
                .secret_string(value)
                .send()
                .await
                .unwrap();
            created.arn().expect("moto answers with the ARN").to_owned()
        }
    };
    let key = "ref-key-from-secrets-manager-0123456789";
    let webhooks = arn_of(format!("webhooks-{queue}"), SECRET).await;
    let key_arn = arn_of(format!("ref-key-{queue}"), key).await;
    let request = signed_request(SECRET);
    let body: Value = serde_json::from_str(request["body"].as_str().unwrap()).unwrap();
    let email =
        referral_domain::event::normalise_email(body["customer"]["email"].as_str().unwrap())
            .unwrap();

    let output = invoke_ingest_with_env(
        &url,
        queue,
        &[
            format!("WEBHOOK_SECRETS_ARN={webhooks}"),
            format!("CUSTOMER_REF_KEY_ARN={key_arn}"),
        ],
        &request.to_string(),
    );
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let logs = String::from_utf8_lossy(&output.stderr);
    let keyed = referral_domain::redact::customer_ref_with(Some(key.as_bytes()), &email);
    let unkeyed = referral_domain::redact::customer_ref_with(None, &email);
    assert!(
        logs.contains(&keyed),
        "the ref under the secret's key: {logs}"
    );
    assert!(!logs.contains(&unkeyed), "{logs}");
    assert!(!logs.contains(key), "the key reaches no log line: {logs}");

    // A key too short to be secret stops the function before its first request.
    let short = arn_of(format!("short-key-{queue}"), "short").await;
    let output = invoke_ingest_with_env(
        &url,
        queue,
        &[
            format!("WEBHOOK_SECRETS_ARN={webhooks}"),
            format!("CUSTOMER_REF_KEY_ARN={short}"),
        ],
        &request.to_string(),
    );
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("function not started") && stderr.contains("CUSTOMER_REF_KEY_ARN"),
        "{}",
        show(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_reads_two_secrets_from_secrets_manager_and_accepts_either() {
    let url = endpoint();
    let config = sdk_config().await;
    let queues = fresh_queues(&config, 5).await;
    let (current, previous) = (
        "whsec_current_secret_0123456789",
        "whsec_previous_secret_012345",
    );
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    let created = secrets
        .create_secret()
        .name(format!("webhooks-{}", queue_name(&queues.url)))
        .secret_string(format!("{current},{previous}"))
        .send()
        .await
        .unwrap();
    let arn = created.arn().expect("moto answers with the ARN");

    // One process per secret: a process answers a request it has already queued with 200,
    // and the same fixture is sent with each.
    let queue = queue_name(&queues.url);
    let mut logs = String::new();
    for (secrets, expected) in [
        (
            &[current, "whsec_neither_secret_0123456789"][..],
            &[202, 401][..],
        ),
        (&[previous][..], &[202][..]),
    ] {
        let events: Vec<String> = secrets
            .iter()
            .map(|secret| signed_request(secret).to_string())
            .collect();
        let output = invoke_ingest_with_secret_arn(&url, queue, arn, &events.join("\n"));
        assert_eq!(output.status.code(), Some(0), "{}", show(&output));
        let statuses: Vec<u64> = stdout_lines(&output)
            .iter()
            .map(|line| http_answer(line).0)
            .collect();
        assert_eq!(statuses, expected, "{}", show(&output));
        logs.push_str(&String::from_utf8_lossy(&output.stderr));
    }
    let sqs = aws_sdk_sqs::Client::new(&config);
    assert_eq!(queue_depth(&sqs, &queues.url).await, (2, 0));
    // Neither secret reaches the function's log.
    assert!(
        !logs.contains(current) && !logs.contains(previous),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_ingest_cannot_read_stops_it_at_start_up_naming_the_variable() {
    let url = endpoint();
    let config = sdk_config().await;
    let queues = fresh_queues(&config, 5).await;
    let missing = format!(
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:no-such-{}",
        queue_name(&queues.url)
    );
    let events = signed_request(SECRET).to_string();
    let output = invoke_ingest_with_secret_arn(&url, queue_name(&queues.url), &missing, &events);
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    assert!(output.stdout.is_empty(), "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("function not started")
            && stderr.contains("WEBHOOK_SECRETS_ARN")
            && stderr.contains("ResourceNotFoundException"),
        "{}",
        show(&output)
    );
    let sqs = aws_sdk_sqs::Client::new(&config);
    assert_eq!(queue_depth(&sqs, &queues.url).await, (0, 0));
}
