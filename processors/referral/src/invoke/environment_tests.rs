use super::*;
use referral_lambda_emulator::template;

const TEMPLATE: &str = r#"
Parameters:
  Secrets: { Type: String, NoEcho: true }
  Model: { Type: String, Default: model-1 }
Globals:
  Function:
    LoggingConfig: { LogFormat: JSON, ApplicationLogLevel: WARN }
Resources:
  WebhookQueue: { Type: AWS::SQS::Queue }
  WebhookSecret: { Type: AWS::SecretsManager::Secret }
  Topic: { Type: AWS::SNS::Topic }
  CustomerFeaturesTable: { Type: AWS::DynamoDB::Table }
  Fn:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: fn } }
    Properties:
      Environment:
        Variables:
          TABLE: !Ref CustomerFeaturesTable
          QUEUE_URL: !Ref WebhookQueue
          MODEL: !Ref Model
          WEBHOOK_SECRETS_ARN: !Ref WebhookSecret
          COUNT: "8"
"#;

fn local(endpoint: Option<&str>) -> Local {
    Local {
        endpoint_url: endpoint.map(str::to_owned),
        features_table: "Features".into(),
        archive_table: "Archive".into(),
        messages_table: "Messages".into(),
        queue: "webhooks".into(),
        dlq: "webhooks-dlq".into(),
        stream_failures: "stream-failures".into(),
        webhook_secrets: "whsec_test_secret_0123456789".into(),
    }
}

fn function(extra: &str) -> FunctionTemplate {
    template::parse(&format!("{TEMPLATE}{extra}"), "fn").unwrap()
}

fn no_parent(_: &str) -> Option<String> {
    None
}

#[test]
fn fills_literals_defaults_tables_queues_and_secrets() {
    let env = fill(
        &function(""),
        &local(Some("http://127.0.0.1:5000/")),
        &[],
        no_parent,
    )
    .unwrap();
    assert_eq!(env["TABLE"], "Features");
    assert_eq!(
        env["QUEUE_URL"],
        "http://127.0.0.1:5000/123456789012/webhooks"
    );
    assert_eq!(env["MODEL"], "model-1");
    assert_eq!(env["WEBHOOK_SECRETS"], "whsec_test_secret_0123456789");
    assert!(!env.contains_key("WEBHOOK_SECRETS_ARN"));
    assert_eq!(env["COUNT"], "8");
    assert_eq!(env["AWS_LAMBDA_LOG_LEVEL"], "WARN");
    assert_eq!(env["AWS_LAMBDA_LOG_FORMAT"], "JSON");
    assert_eq!(env["AWS_ENDPOINT_URL"], "http://127.0.0.1:5000/");
    assert_eq!(env["AWS_ACCESS_KEY_ID"], "test");
    assert_eq!(env["AWS_SECRET_ACCESS_KEY"], "test");
    assert_eq!(env["AWS_REGION"], "us-east-1");
    assert_eq!(env["AWS_EC2_METADATA_DISABLED"], "true");
}

#[test]
fn a_secret_arn_given_with_env_replaces_the_development_secrets() {
    let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:webhooks-AbCdEf";
    let env = fill(
        &function(""),
        &local(Some("http://127.0.0.1:5000/")),
        &[("WEBHOOK_SECRETS_ARN".to_owned(), arn.to_owned())],
        no_parent,
    )
    .unwrap();
    assert_eq!(env["WEBHOOK_SECRETS_ARN"], arn);
    assert!(!env.contains_key("WEBHOOK_SECRETS"), "{env:?}");
}

#[test]
fn credentials_and_region_that_are_set_are_left_alone() {
    let parent = |name: &str| match name {
        "AWS_ACCESS_KEY_ID" | "AWS_DEFAULT_REGION" => Some("set".to_owned()),
        _ => None,
    };
    let env = fill(
        &function(""),
        &local(Some("http://localhost:5000")),
        &[],
        parent,
    )
    .unwrap();
    assert!(!env.contains_key("AWS_ACCESS_KEY_ID"));
    assert!(!env.contains_key("AWS_REGION"));

    let env = fill(
        &function(""),
        &local(Some("https://example.com")),
        &[("QUEUE_URL".into(), "q".into())],
        no_parent,
    )
    .unwrap();
    assert!(
        !env.contains_key("AWS_ACCESS_KEY_ID"),
        "not for a remote endpoint"
    );
    assert_eq!(env["AWS_EC2_METADATA_DISABLED"], "true");
}

#[test]
fn a_queue_url_needs_an_emulator_endpoint_a_url_or_an_override() {
    for endpoint in [None, Some("https://sqs.us-east-1.amazonaws.com")] {
        let error = fill(&function(""), &local(endpoint), &[], no_parent).unwrap_err();
        assert_eq!(error.variable, "QUEUE_URL");
        let message = error.to_string();
        assert!(message.starts_with("QUEUE_URL: "), "{message}");
        assert!(
            message.contains("--endpoint-url") && message.contains("--env QUEUE_URL=VALUE"),
            "{message}"
        );
        assert!(!message.contains('\n'), "one line: {message}");
    }
    let mut given = local(None);
    given.queue = "https://sqs.eu-west-1.amazonaws.com/111122223333/q".into();
    let env = fill(&function(""), &given, &[], no_parent).unwrap();
    assert_eq!(env["QUEUE_URL"], given.queue);

    let overrides = [("QUEUE_URL".to_owned(), "https://q".to_owned())];
    let env = fill(&function(""), &local(None), &overrides, no_parent).unwrap();
    assert_eq!(env["QUEUE_URL"], "https://q");
}

#[test]
fn what_cannot_be_filled_is_named_with_the_flag() {
    let cases = [
        (
            "          SECRET: !Ref Secrets\n",
            "SECRET",
            "parameter Secrets, which has no default",
        ),
        (
            "          TOPIC: !Ref Topic\n",
            "TOPIC",
            "!Ref Topic (a AWS::SNS::Topic)",
        ),
        (
            "          NAME: !Sub x-${Model}\n",
            "NAME",
            "`!Sub x-${Model}`",
        ),
    ];
    for (line, variable, reason) in cases {
        let error = fill(
            &function(line),
            &local(Some("http://127.0.0.1:1")),
            &[],
            no_parent,
        )
        .unwrap_err();
        assert_eq!(error.variable, variable);
        let message = error.to_string();
        assert!(message.contains(reason), "{message}");
        assert!(
            message.ends_with(&format!("pass --env {variable}=VALUE")),
            "{message}"
        );
        let overrides = [(variable.to_owned(), "given".to_owned())];
        let env = fill(
            &function(line),
            &local(Some("http://127.0.0.1:1")),
            &overrides,
            no_parent,
        )
        .unwrap();
        assert_eq!(env[variable], "given");
    }
}

#[test]
fn overrides_win_over_everything() {
    let overrides = [
        ("AWS_LAMBDA_LOG_LEVEL".to_owned(), "DEBUG".to_owned()),
        ("EXTRA".to_owned(), "1".to_owned()),
        ("TABLE".to_owned(), "Other".to_owned()),
    ];
    let env = fill(
        &function(""),
        &local(Some("http://127.0.0.1:1")),
        &overrides,
        no_parent,
    )
    .unwrap();
    assert_eq!(env["AWS_LAMBDA_LOG_LEVEL"], "DEBUG");
    assert_eq!(env["EXTRA"], "1");
    assert_eq!(env["TABLE"], "Other");
}
