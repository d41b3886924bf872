//! Stale events: what a customer's dedupe memory cannot prove new is dead-lettered with its
//! reason, never dropped; a plain replay leaves it there; `--apply-stale` applies it once.

use crate::common::*;

const DAY: i64 = 24 * 60;

#[tokio::test]
async fn stale_events_are_dead_lettered_and_applied_only_on_purpose_and_only_once() {
    let _shared = EMULATOR.read().await;
    let config = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let (tables, _) = fresh_tables(&config).await;
    let queues = fresh_queues(&config, 3).await;
    let enricher = EnricherConfig {
        dedupe: DedupeWindow {
            span: chrono::Duration::days(2),
            keep_at_least: 1,
            keep_at_most: 100,
        },
        ..EnricherConfig::default()
    };
    let email = "stale@example.com";
    let daily: Vec<Value> = (0..10)
        .map(|day| event_body(&format!("daily-{day}"), email, day * DAY, Some(4.0)))
        .collect();
    put(&sqs, &queues.url, &redriven(&daily)).await;
    let first = enrich_with(&config, &tables.features, &queues, enricher).await;
    assert_eq!(by_outcome(&first)["applied"].len(), 10);

    // A redelivery of day 3 and a never-seen event of day 2: both far behind day 9, neither
    // remembered, so neither can be proven new.
    let late = event_body("late-day-2", email, 2 * DAY + 30, Some(1.0));
    put(
        &sqs,
        &queues.url,
        &redriven(&[daily[3].clone(), late.clone()]),
    )
    .await;
    let second = enrich_with(&config, &tables.features, &queues, enricher).await;
    assert_eq!(
        by_outcome(&second)["stale"],
        sorted(["daily-3", "late-day-2"])
    );
    let letters = receive(&sqs, &queues.dlq_url).await;
    assert_eq!(letters.len(), 2, "every stale event is in the DLQ");
    for letter in &letters {
        let attributes = attributes_of(letter);
        assert_eq!(attributes["error_kind"], "stale", "{attributes:?}");
        assert_eq!(attributes["error_field"], "occurred_at");
        assert!(attributes["error_message"].contains("--apply-stale"));
    }
    release(&sqs, &queues.dlq_url, &letters).await;
    settle(&sqs, &queues.dlq_url, 2).await;

    // A plain replay skips them: unmarked, they would only come back.
    let plain = dlq(&["replay", &queues.dlq_url, "--json"])
        .succeeded()
        .json();
    assert_eq!(
        (number(&plain, "moved"), number(&plain, "skipped_stale")),
        (0, 2),
        "{plain}"
    );
    settle(&sqs, &queues.dlq_url, 2).await;

    // The operator knows the late event was never applied: replayed on purpose, it is.
    let on_purpose = dlq(&[
        "replay",
        &queues.dlq_url,
        "--filter",
        "event=late-day-2",
        "--apply-stale",
        "--json",
    ])
    .succeeded()
    .json();
    assert_eq!(number(&on_purpose, "moved"), 1, "{on_purpose}");
    let third = enrich_with(&config, &tables.features, &queues, enricher).await;
    assert_eq!(by_outcome(&third)["applied"], ["late-day-2"]);
    let store = DynamoFeatureStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        tables.features.clone(),
    );
    let applied = |item: Option<referral_domain::features::CustomerFeatures>| {
        item.map(|item| item.events_applied)
    };
    assert_eq!(applied(store.load(email).await.unwrap()), Some(11));

    // The same event replayed on purpose again (say, a rerun after a crash) is caught.
    let again = Letter::new(late.to_string(), &[("apply_stale", "true")]);
    put(&sqs, &queues.url, &[again]).await;
    let fourth = enrich_with(&config, &tables.features, &queues, enricher).await;
    assert_eq!(by_outcome(&fourth)["duplicate"], ["late-day-2"]);
    assert_eq!(applied(store.load(email).await.unwrap()), Some(11));
    // The redelivered day 3 is still waiting in the DLQ, unapplied, for a person to decide.
    settle(&sqs, &queues.dlq_url, 1).await;
}

/// Makes received messages visible again at once.
async fn release(sqs: &aws_sdk_sqs::Client, url: &str, messages: &[Message]) {
    for message in messages {
        sqs.change_message_visibility()
            .queue_url(url)
            .receipt_handle(message.receipt_handle.clone().expect("receipt"))
            .visibility_timeout(0)
            .send()
            .await
            .expect("release");
    }
}
