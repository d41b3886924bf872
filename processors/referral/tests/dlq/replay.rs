use crate::common::*;

#[tokio::test]
async fn transient_failures_replay_to_their_source_queue_and_apply_once() {
    let _shared = EMULATOR.read().await;
    let config = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let (tables, _) = fresh_tables(&config).await;
    let queues = fresh_queues(&config, 3).await;
    let bodies = valid_events("transient", 6);

    // The first event was applied before its delivery failed (a timeout after the write):
    // SQS redrove it anyway, like the five others that failed before the write.
    put(&sqs, &queues.url, &redriven(&bodies[..1])).await;
    let first = enrich(&config, &tables, &queues).await;
    assert_eq!(by_outcome(&first)["applied"], vec![event_id(&bodies[0])]);
    put(&sqs, &queues.dlq_url, &redriven(&bodies)).await;

    // No --to: the target is the queue whose redrive policy names the DLQ.
    let summary = dlq(&["replay", name_of(&queues.dlq_url), "--json"])
        .succeeded()
        .json();
    assert_eq!(summary["target"], name_of(&queues.url), "{summary}");
    assert_eq!(number(&summary, "moved"), 6, "{summary}");
    assert_eq!(number(&summary, "failed"), 0, "{summary}");
    assert_eq!(depth(&sqs, &queues.dlq_url).await, (0, 0));
    assert_eq!(depth(&sqs, &queues.url).await, (6, 0));

    let deliveries = enrich(&config, &tables, &queues).await;
    let outcomes = by_outcome(&deliveries);
    assert_eq!(
        outcomes["applied"],
        sorted(bodies[1..].iter().map(event_id)),
        "{deliveries:#?}"
    );
    assert_eq!(outcomes["duplicate"], vec![event_id(&bodies[0])]);
    assert_eq!(outcomes.len(), 2, "{deliveries:#?}");
    // Replayed as they were, counted once.
    for delivery in &deliveries {
        assert_eq!(delivery.attributes["source"], "webhook", "{delivery:?}");
        assert_eq!(delivery.attributes["replay_count"], "1", "{delivery:?}");
    }
    assert_features(&config, &tables.features, &bodies).await;
    assert_eq!(depth(&sqs, &queues.dlq_url).await, (0, 0));
    assert_eq!(depth(&sqs, &queues.url).await, (0, 0));
}

// ---------------------------------------------------------------------------------------
// 2. Crash safety

/// A replay killed right after its k-th send (before that message's delete), then run
/// again: nothing lost, the DLQ empty, and every event applied exactly once.
async fn killed_replay_loses_nothing(k: u64) {
    const N: usize = 15;
    let config = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let (tables, _) = fresh_tables(&config).await;
    let queues = fresh_queues(&config, 3).await;
    let bodies = valid_events(&format!("crash{k}"), N);
    put(&sqs, &queues.dlq_url, &redriven(&bodies)).await;
    let dlq_name = name_of(&queues.dlq_url);

    let killed = referral(
        &["dlq", "replay", dlq_name, "--lease", "1", "--json"],
        &[("REFERRAL_DLQ_ABORT_AFTER", &k.to_string())],
    );
    assert_eq!(killed.code, Some(ABORT_EXIT), "{killed:#?}");
    assert!(killed.stderr.contains("before its delete"), "{killed:#?}");
    // k copies sent, k - 1 originals deleted; the rest is held until the lease runs out.
    let left = N as u64 - (k - 1);
    let (visible, in_flight) = depth(&sqs, &queues.dlq_url).await;
    assert_eq!(visible + in_flight, left, "DLQ right after the kill");
    assert_eq!(
        depth(&sqs, &queues.url).await,
        (k, 0),
        "target after the kill"
    );

    settle(&sqs, &queues.dlq_url, left).await;
    let summary = dlq(&["replay", dlq_name, "--json"]).succeeded().json();
    assert_eq!(number(&summary, "moved"), left, "{summary}");
    assert_eq!(number(&summary, "failed"), 0, "{summary}");
    assert_eq!(
        depth(&sqs, &queues.dlq_url).await,
        (0, 0),
        "DLQ after the rerun"
    );
    // The k-th message was sent twice: once by each run.
    assert_eq!(depth(&sqs, &queues.url).await, (N as u64 + 1, 0));

    let deliveries = enrich(&config, &tables, &queues).await;
    let delivered: BTreeSet<String> = deliveries
        .iter()
        .filter_map(|delivery| delivery.event_id.clone())
        .collect();
    let original: BTreeSet<String> = bodies.iter().map(event_id).collect();
    assert!(
        delivered.is_superset(&original),
        "lost: {:?}",
        original.difference(&delivered).collect::<Vec<_>>()
    );
    let outcomes = by_outcome(&deliveries);
    assert_eq!(outcomes["applied"], sorted(original.iter().cloned()));
    assert_eq!(outcomes["duplicate"].len(), 1, "{deliveries:#?}");
    assert_eq!(outcomes.len(), 2, "{deliveries:#?}");
    assert_features(&config, &tables.features, &bodies).await;
    assert_eq!(depth(&sqs, &queues.dlq_url).await, (0, 0));
}

#[tokio::test]
async fn a_replay_killed_after_its_first_send_loses_nothing() {
    let _shared = EMULATOR.read().await;
    killed_replay_loses_nothing(1).await;
}

#[tokio::test]
async fn a_replay_killed_after_its_third_send_loses_nothing() {
    let _shared = EMULATOR.read().await;
    killed_replay_loses_nothing(3).await;
}

#[tokio::test]
async fn a_replay_killed_after_its_seventh_send_loses_nothing() {
    let _shared = EMULATOR.read().await;
    killed_replay_loses_nothing(7).await;
}

/// In the second batch of ten, received while the first was replayed.
#[tokio::test]
async fn a_replay_killed_after_its_twelfth_send_loses_nothing() {
    let _shared = EMULATOR.read().await;
    killed_replay_loses_nothing(12).await;
}

// ---------------------------------------------------------------------------------------
// 3. Dry run
