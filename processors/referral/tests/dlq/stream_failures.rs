use crate::common::*;

/// Folds `bodies` into the features table the way the enricher does, one write per batch
/// and customer, and runs no orchestrator: every change is still without its message.
async fn write_features(config: &SdkConfig, tables: &TableNames, bodies: &[Value]) {
    let dynamodb = aws_sdk_dynamodb::Client::new(config);
    let store = DynamoFeatureStore::new(dynamodb.clone(), tables.features.clone());
    let archive = DynamoEventArchive::new(dynamodb, tables.archive.clone());
    let enricher = Enricher::new(store, archive, EnricherConfig::default());
    for chunk in bodies.chunks(3) {
        let texts: Vec<(String, String)> = chunk
            .iter()
            .map(|body| (event_id(body), body.to_string()))
            .collect();
        assert_eq!(
            enricher
                .process(&raw_batch(&texts), Utc::now())
                .await
                .counters
                .failed,
            0
        );
    }
}

/// The shard and the sequence numbers of every record the stream holds now.
async fn stream_positions(config: &SdkConfig, stream_arn: &str) -> (String, Vec<String>) {
    let streams = aws_sdk_dynamodbstreams::Client::new(config);
    let shard = streams
        .describe_stream()
        .stream_arn(stream_arn)
        .send()
        .await
        .expect("describe the stream")
        .stream_description
        .and_then(|description| description.shards)
        .and_then(|shards| shards.into_iter().next())
        .and_then(|shard| shard.shard_id)
        .expect("a shard");
    let feed = DynamoStreamFeed::start(streams, stream_arn, StartingPosition::TrimHorizon)
        .await
        .expect("open the stream");
    let mut sequence_numbers = Vec::new();
    loop {
        let records = feed.poll_records(1000).await.expect("read the stream");
        if records.is_empty() {
            return (shard, sequence_numbers);
        }
        sequence_numbers.extend(
            records
                .iter()
                .filter_map(|record| record.dynamodb.as_ref()?.sequence_number.clone()),
        );
    }
}

/// What the stream event-source mapping sends its on-failure destination: where the batch
/// was, not its data.
fn stream_failure(stream_arn: &str, shard: &str, first: &str, last: &str) -> Letter {
    Letter::new(
        json!({
            "requestContext": {"requestId": unique("request"), "condition": "RetryAttemptsExhausted",
                               "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:orchestrator",
                               "approximateInvokeCount": 4},
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "version": "1.0",
            "timestamp": Utc::now().to_rfc3339(),
            "DDBStreamBatchInfo": {"shardId": shard, "startSequenceNumber": first,
                                   "endSequenceNumber": last, "streamArn": stream_arn}
        })
        .to_string(),
        &[],
    )
}

/// Writes `customer`'s item so that no release can decode it (a version that is no number).
async fn put_undecodable_item(
    dynamodb: &aws_sdk_dynamodb::Client,
    tables: &TableNames,
    customer: &str,
) {
    dynamodb
        .put_item()
        .table_name(&tables.features)
        .item(
            "customerEmail",
            aws_sdk_dynamodb::types::AttributeValue::S(customer.into()),
        )
        .item(
            "version",
            aws_sdk_dynamodb::types::AttributeValue::S("seven".into()),
        )
        .send()
        .await
        .expect("write an undecodable item");
}

/// A fresh queue for stream failures, as the template's StreamFailureQueue.
async fn failure_queue(sqs: &aws_sdk_sqs::Client) -> String {
    sqs.create_queue()
        .queue_name(unique("stream-failures"))
        .send()
        .await
        .expect("create the failure queue")
        .queue_url
        .expect("a queue URL")
}

/// `referral dlq replay` of the failure queue into `tables`, with `extra` flags, as JSON.
fn replay_failures(failures_url: &str, tables: &TableNames, extra: &[&str]) -> Ran {
    let mut args = vec![
        "replay",
        name_of(failures_url),
        "--features-table",
        &tables.features,
        "--messages-table",
        &tables.messages,
        "--json",
    ];
    args.extend_from_slice(extra);
    dlq(&args)
}

/// Messages per customer, by the features version each was written from.
async fn message_versions(
    config: &SdkConfig,
    messages_table: &str,
    customers: &[&str],
) -> BTreeMap<String, Vec<u64>> {
    let store = DynamoMessageStore::new(aws_sdk_dynamodb::Client::new(config), messages_table);
    let mut versions = BTreeMap::new();
    for customer in customers {
        let email = format!("{customer}@example.com");
        let written = store.list(&email).await.expect("list messages");
        versions.insert(
            email,
            written
                .iter()
                .map(|message| message.features_version)
                .collect(),
        );
    }
    versions
}

#[tokio::test]
async fn stream_failures_rerun_the_orchestrator_from_the_stream_or_else_from_the_table() {
    let _shared = EMULATOR.read().await;
    let config = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let (tables, stream_arn) = fresh_tables(&config).await;
    let failures_url = failure_queue(&sqs).await;
    let replay = |extra: &[&str]| {
        replay_failures(&failures_url, &tables, extra)
            .succeeded()
            .json()
    };

    // Six events of three customers, two writes each: six changes, none with its message.
    let first = valid_events("sf", 6);
    write_features(&config, &tables, &first).await;
    let (shard, positions) = stream_positions(&config, &stream_arn).await;
    assert!(positions.len() >= 6, "{positions:?}");
    put(
        &sqs,
        &failures_url,
        &[stream_failure(
            &stream_arn,
            &shard,
            &positions[0],
            &positions[positions.len() - 1],
        )],
    )
    .await;

    let dry = replay(&["--dry-run"]);
    assert_eq!(number(&dry, "would_rerun"), 1, "{dry}");
    settle(&sqs, &failures_url, 1).await;
    let customers = ["ann", "bob", "cyd"];
    assert!(
        message_versions(&config, &tables.messages, &customers)
            .await
            .values()
            .all(Vec::is_empty),
        "a dry run wrote messages"
    );

    // The records are retained: the orchestrator's handler gets them as Lambda would.
    let rerun = replay(&[]);
    assert_eq!(
        (number(&rerun, "stream_reruns"), number(&rerun, "failed")),
        (1, 0),
        "{rerun}"
    );
    assert_eq!(number(&rerun, "messages_created"), 6, "{rerun}");
    assert_eq!(depth(&sqs, &failures_url).await, (0, 0));
    let expected: BTreeMap<String, Vec<u64>> = customers
        .iter()
        .map(|customer| (format!("{customer}@example.com"), vec![1, 2]))
        .collect();
    assert_eq!(
        message_versions(&config, &tables.messages, &customers).await,
        expected
    );

    // Three more changes, then two failure records whose batches the stream no longer holds:
    // the first makes the replay check every customer's current features, the second is
    // covered by that check.
    let later = valid_events("sf-later", 3);
    write_features(&config, &tables, &later).await;
    // And an item no release can read, which the check of every customer must skip (and
    // name) rather than fail on.
    put_undecodable_item(
        &aws_sdk_dynamodb::Client::new(&config),
        &tables,
        "zed@example.com",
    )
    .await;
    let beyond = |offset: u64| {
        let last: u128 = positions[positions.len() - 1].parse().expect("a number");
        (last + 1_000_000 + u128::from(offset)).to_string()
    };
    put(
        &sqs,
        &failures_url,
        &[
            stream_failure(&stream_arn, &shard, &beyond(0), &beyond(5)),
            stream_failure(&stream_arn, &shard, &beyond(10), &beyond(15)),
        ],
    )
    .await;
    let reconciled = replay(&[]);
    assert_eq!(
        (
            number(&reconciled, "stream_reruns"),
            number(&reconciled, "failed"),
            number(&reconciled, "messages_created")
        ),
        (2, 0, 3),
        "one message for each customer's current version, once: {reconciled}"
    );
    assert_eq!(depth(&sqs, &failures_url).await, (0, 0));
    let expected: BTreeMap<String, Vec<u64>> = customers
        .iter()
        .map(|customer| (format!("{customer}@example.com"), vec![1, 2, 3]))
        .collect();
    assert_eq!(
        message_versions(&config, &tables.messages, &customers).await,
        expected
    );

    // A record of another table's stream is refused and left in place.
    put(
        &sqs,
        &failures_url,
        &[stream_failure(
            &stream_arn.replace(&tables.features, "SomeOtherTable"),
            &shard,
            &positions[0],
            &positions[0],
        )],
    )
    .await;
    let refused = replay_failures(&failures_url, &tables, &[]);
    assert_eq!(refused.code, Some(1), "{refused:#?}");
    assert_eq!(number(&refused.json(), "failed"), 1);
    settle(&sqs, &failures_url, 1).await;
}

/// A webhook whose body carries a top-level `DDBStreamBatchInfo` (pointing into this very
/// stream) is still a webhook: in the webhook DLQ it is replayed to its source queue and
/// applied, never reconciled and deleted. Whether it carries ingest's attributes or none at
/// all (an import by hand), the queue it sits in says where it came from.
#[tokio::test]
async fn a_webhook_carrying_ddb_stream_batch_info_is_replayed_not_reconciled() {
    let _shared = EMULATOR.read().await;
    let config = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let (tables, stream_arn) = fresh_tables(&config).await;
    let queues = fresh_queues(&config, 3).await;
    let mut bodies = valid_events("disguised", 2);
    for body in &mut bodies {
        body["DDBStreamBatchInfo"] = json!({
            "shardId": "shardId-00000001-aaaa", "startSequenceNumber": "100",
            "endSequenceNumber": "200", "streamArn": stream_arn
        });
    }
    let with_attributes = Letter::new(
        bodies[0].to_string(),
        &[
            ("event_id", &event_id(&bodies[0])),
            ("event_type", "service.completed"),
        ],
    );
    let bare = Letter::new(bodies[1].to_string(), &[]);
    put(&sqs, &queues.dlq_url, &[with_attributes, bare]).await;

    let stats = dlq(&["stats", name_of(&queues.dlq_url), "--json"])
        .succeeded()
        .json();
    assert_eq!(stats["by_kind"], json!({"redriven": 2}), "{stats}");

    let summary = dlq(&[
        "replay",
        name_of(&queues.dlq_url),
        "--features-table",
        &tables.features,
        "--messages-table",
        &tables.messages,
        "--json",
    ])
    .succeeded()
    .json();
    assert_eq!(
        (
            number(&summary, "moved"),
            number(&summary, "stream_reruns"),
            number(&summary, "failed")
        ),
        (2, 0, 0),
        "{summary}"
    );
    assert_eq!(depth(&sqs, &queues.dlq_url).await, (0, 0));
    let deliveries = enrich(&config, &tables, &queues).await;
    assert_eq!(
        by_outcome(&deliveries)["applied"],
        sorted(bodies.iter().map(event_id)),
        "{deliveries:#?}"
    );
}

/// A record the orchestrator quarantined (its image did not decode) names its customer.
/// While the item still does not decode, its replay fails and leaves it in place; once the
/// item is repaired, the replay writes the message of the customer's current version.
#[tokio::test]
async fn a_quarantined_record_waits_for_its_item_to_be_repaired_then_gets_its_message() {
    let _shared = EMULATOR.read().await;
    let config = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let (tables, stream_arn) = fresh_tables(&config).await;
    let failures_url = failure_queue(&sqs).await;
    let replay = || replay_failures(&failures_url, &tables, &[]);
    let customer = "ann@example.com";
    put_undecodable_item(&dynamodb, &tables, customer).await;
    let mut record = aws_lambda_events::event::dynamodb::EventRecord::default();
    record.event_source_arn = Some(stream_arn.clone());
    record.change.sequence_number = Some("4200".to_owned());
    record.change.keys.insert(
        "customerEmail".to_owned(),
        serde_dynamo::AttributeValue::S(customer.to_owned()),
    );
    let set_aside = referral_orchestrator::quarantine::failure_message(
        &record,
        "stream record's NewImage does not decode",
        Utc::now(),
    );
    put(
        &sqs,
        &failures_url,
        &[Letter::new(set_aside.body.clone(), &[])],
    )
    .await;

    let still_broken = replay();
    assert_eq!(still_broken.code, Some(1), "{still_broken:#?}");
    assert_eq!(number(&still_broken.json(), "failed"), 1);
    settle(&sqs, &failures_url, 1).await;

    // Repaired: the broken item replaced by the enricher's fold of the customer's events.
    dynamodb
        .delete_item()
        .table_name(&tables.features)
        .key(
            "customerEmail",
            aws_sdk_dynamodb::types::AttributeValue::S(customer.into()),
        )
        .send()
        .await
        .expect("delete the broken item");
    write_features(&config, &tables, &valid_events("repaired", 3)).await;
    let repaired = replay().succeeded().json();
    assert_eq!(
        (
            number(&repaired, "stream_reruns"),
            number(&repaired, "failed"),
            number(&repaired, "messages_created")
        ),
        (1, 0, 1),
        "one message, for the repaired customer's current version: {repaired}"
    );
    assert_eq!(depth(&sqs, &failures_url).await, (0, 0));
    let versions = message_versions(&config, &tables.messages, &["ann", "bob", "cyd"]).await;
    assert_eq!(versions[customer], vec![1], "{versions:?}");
    assert!(versions["bob@example.com"].is_empty(), "{versions:?}");
}
