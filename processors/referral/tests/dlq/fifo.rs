use crate::common::*;

#[tokio::test]
async fn copies_leave_the_originals_and_a_replay_onto_itself_is_refused() {
    let _shared = EMULATOR.read().await;
    let config = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queues = fresh_queues(&config, 3).await;
    let bodies = valid_events("copy", 3);
    put(&sqs, &queues.dlq_url, &redriven(&bodies)).await;
    let dlq_name = name_of(&queues.dlq_url);

    let summary = dlq(&["replay", dlq_name, "--copy", "--json"])
        .succeeded()
        .json();
    assert_eq!(summary["copy"], true, "{summary}");
    assert_eq!(number(&summary, "moved"), 3, "{summary}");
    settle(&sqs, &queues.dlq_url, 3).await;
    let copies = take_all(&sqs, &queues.url).await;
    let copied: BTreeSet<String> = copies.iter().map(body_of).collect();
    let originals: BTreeSet<String> = bodies.iter().map(Value::to_string).collect();
    assert_eq!(copied, originals);
    for copy in &copies {
        assert_eq!(attributes_of(copy)["replay_count"], "1");
    }
    // The originals are untouched: no replay count.
    for line in dlq(&["peek", dlq_name, "--json"]).succeeded().json_lines() {
        assert!(line["attributes"].get("replay_count").is_none(), "{line}");
    }
    settle(&sqs, &queues.dlq_url, 3).await;

    for to in [dlq_name, queues.dlq_url.as_str()] {
        let refused = dlq(&["replay", dlq_name, "--to", to]);
        assert_ne!(refused.code, Some(0), "{refused:#?}");
        assert!(
            refused.stderr.contains("refusing to replay") && refused.stderr.contains("onto itself"),
            "{refused:#?}"
        );
    }
    assert_eq!(depth(&sqs, &queues.dlq_url).await, (3, 0));
    assert_eq!(depth(&sqs, &queues.url).await, (0, 0));

    // A DLQ nobody names: no default target, and the message says what to do.
    let orphan = sqs
        .create_queue()
        .queue_name(unique("orphan-dlq"))
        .send()
        .await
        .expect("create")
        .queue_url
        .expect("url");
    put(&sqs, &orphan, &redriven(&bodies[..1])).await;
    let nowhere = dlq(&["replay", name_of(&orphan)]);
    assert_ne!(nowhere.code, Some(0), "{nowhere:#?}");
    assert!(nowhere.stderr.contains("--to QUEUE"), "{nowhere:#?}");
    settle(&sqs, &orphan, 1).await;
}

// ---------------------------------------------------------------------------------------
// FIFO (moto implements groups and five-minute deduplication)

async fn put_fifo(sqs: &aws_sdk_sqs::Client, url: &str, letters: &[(&Value, &str)], tag: &str) {
    for (index, (body, group)) in letters.iter().enumerate() {
        sqs.send_message()
            .queue_url(url)
            .message_body(body.to_string())
            .message_group_id(*group)
            .message_deduplication_id(format!("original-{tag}-{index}"))
            .message_attributes("source", string_attribute("webhook"))
            .send()
            .await
            .expect("send to the FIFO DLQ");
    }
}

/// Body → (group, deduplication id) of every message of a FIFO queue, taken out of it, in
/// the order received.
async fn take_fifo(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<(String, String, String)> {
    take_all(sqs, url)
        .await
        .iter()
        .map(|message| {
            let system = message.attributes.clone().unwrap_or_default();
            (
                body_of(message),
                system[&MessageSystemAttributeName::MessageGroupId].clone(),
                system[&MessageSystemAttributeName::MessageDeduplicationId].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn fifo_replays_keep_the_group_and_take_a_fresh_deduplication_id() {
    let _shared = EMULATOR.read().await;
    let config = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let base = unique("fifo");
    let dlq_url = sqs
        .create_queue()
        .queue_name(format!("{base}-dlq.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .expect("create the DLQ")
        .queue_url
        .expect("url");
    let dlq_arn = queue_arn(&sqs, &dlq_url).await.expect("arn");
    let url = sqs
        .create_queue()
        .queue_name(format!("{base}.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(
            QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"}).to_string(),
        )
        .send()
        .await
        .expect("create the queue")
        .queue_url
        .expect("url");
    let dlq_name = name_of(&dlq_url);
    let bodies = valid_events("fifo", 6);

    // Two groups of two: each message keeps its group, the order within a group is kept,
    // and none reuses the deduplication id of its first send (SQS would drop it).
    put_fifo(
        &sqs,
        &dlq_url,
        &[
            (&bodies[0], "ann@example.com"),
            (&bodies[1], "g-bob"),
            (&bodies[2], "ann@example.com"),
            (&bodies[3], "g-bob"),
        ],
        "a",
    )
    .await;
    // A group id may be an address: masked like the rest unless --reveal.
    let groups = |reveal: bool| -> BTreeSet<String> {
        let mut args = vec!["peek", dlq_name, "--json"];
        if reveal {
            args.push("--reveal");
        }
        dlq(&args)
            .succeeded()
            .json_lines()
            .iter()
            .map(|line| line["group_id"].as_str().expect("a group").to_owned())
            .collect()
    };
    assert_eq!(
        groups(false),
        BTreeSet::from(["a***@example.com".to_owned(), "g-bob".to_owned()])
    );
    settle(&sqs, &dlq_url, 4).await;
    assert_eq!(
        groups(true),
        BTreeSet::from(["ann@example.com".to_owned(), "g-bob".to_owned()])
    );
    settle(&sqs, &dlq_url, 4).await;
    let summary = dlq(&["replay", dlq_name, "--json"]).succeeded().json();
    assert_eq!(summary["target"], name_of(&url), "{summary}");
    assert_eq!(number(&summary, "moved"), 4, "{summary}");
    assert_eq!(depth(&sqs, &dlq_url).await, (0, 0));
    let mut by_group: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (body, group, deduplication_id) in take_fifo(&sqs, &url).await {
        assert!(
            !deduplication_id.starts_with("original-"),
            "the first send's deduplication id was reused: {deduplication_id}"
        );
        by_group.entry(group).or_default().push(body);
    }
    assert_eq!(
        by_group,
        BTreeMap::from([
            (
                "ann@example.com".to_owned(),
                vec![bodies[0].to_string(), bodies[2].to_string()]
            ),
            (
                "g-bob".to_owned(),
                vec![bodies[1].to_string(), bodies[3].to_string()]
            ),
        ])
    );

    // Killed after a send and before its delete: the rerun sends that message again with the
    // same deduplication id, and SQS drops the copy, so the target holds each message once.
    put_fifo(
        &sqs,
        &dlq_url,
        &[(&bodies[4], "g-cyd"), (&bodies[5], "g-dee")],
        "b",
    )
    .await;
    let killed = referral(
        &["dlq", "replay", dlq_name, "--lease", "1", "--json"],
        &[("REFERRAL_DLQ_ABORT_AFTER", "1")],
    );
    assert_eq!(killed.code, Some(ABORT_EXIT), "{killed:#?}");
    settle(&sqs, &dlq_url, 2).await;
    let summary = dlq(&["replay", dlq_name, "--json"]).succeeded().json();
    assert_eq!(number(&summary, "moved"), 2, "{summary}");
    assert_eq!(depth(&sqs, &dlq_url).await, (0, 0));
    let moved = take_fifo(&sqs, &url).await;
    let mut groups: Vec<(String, String)> = moved
        .iter()
        .map(|(body, group, _)| (body.clone(), group.clone()))
        .collect();
    groups.sort();
    let mut expected = vec![
        (bodies[4].to_string(), "g-cyd".to_owned()),
        (bodies[5].to_string(), "g-dee".to_owned()),
    ];
    expected.sort();
    assert_eq!(
        groups, expected,
        "each message once, in its group: {moved:#?}"
    );
}

// ---------------------------------------------------------------------------------------
// 11. The orchestrator's stream failures
