//! Late events and replays after an outage: whatever their age, applied once. A customer
//! whose item keeps only two days of events gets a redelivery from a week before and an
//! event never seen before, dated even earlier; a dead-letter queue holding events from
//! before, including ones the previous release dead-lettered as `stale`, is replayed plainly
//! (twice, as an operator might); every event is applied exactly once.

use crate::common::*;

const DAY: i64 = 24 * 60;

#[tokio::test]
async fn late_events_and_a_replayed_outage_are_applied_exactly_once() {
    let _shared = EMULATOR.read().await;
    let config = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let (tables, _) = fresh_tables(&config).await;
    let queues = fresh_queues(&config, 3).await;
    let enricher = EnricherConfig {
        memory: MemoryLimits {
            span: chrono::Duration::days(2),
            keep_at_least: 1,
            keep_at_most: 4,
            archive_at: 1,
            pending_most: 2,
            ..MemoryLimits::default()
        },
        ..EnricherConfig::default()
    };
    let email = "late@example.com";
    let daily: Vec<Value> = (0..10)
        .map(|day| event_body(&format!("daily-{day}"), email, day * DAY, Some(4.0)))
        .collect();
    put(&sqs, &queues.url, &redriven(&daily)).await;
    let first = enrich_with(&config, &tables, &queues, enricher).await;
    assert_eq!(by_outcome(&first)["applied"].len(), 10);

    // A redelivery of day 3 and a never-seen event of day 2: both far behind day 9 and long
    // gone from the item. The archive tells them apart.
    let late = event_body("late-day-2", email, 2 * DAY + 30, Some(1.0));
    put(
        &sqs,
        &queues.url,
        &redriven(&[daily[3].clone(), late.clone()]),
    )
    .await;
    let second = enrich_with(&config, &tables, &queues, enricher).await;
    let outcomes = by_outcome(&second);
    assert_eq!(outcomes["duplicate"], ["daily-3"]);
    assert_eq!(outcomes["applied"], ["late-day-2"]);
    assert!(
        receive(&sqs, &queues.dlq_url).await.is_empty(),
        "nothing is refused"
    );

    // An outage: events from the first week sat in the DLQ (one the previous release
    // dead-lettered as stale, with its reason), along with one never applied.
    let forgotten = event_body("outage-day-1", email, DAY + 5, Some(2.0));
    let mut letters = vec![Letter::new(
        daily[1].to_string(),
        &[("error_kind", "stale"), ("error_field", "occurred_at")],
    )];
    letters.extend(redriven(&[forgotten.clone(), late.clone()]));
    put(&sqs, &queues.dlq_url, &letters).await;
    settle(&sqs, &queues.dlq_url, 3).await;
    // Replayed plainly, twice over: a copy left behind and replayed again is harmless.
    let copied = dlq(&["replay", &queues.dlq_url, "--copy", "--json"])
        .succeeded()
        .json();
    assert_eq!(number(&copied, "moved"), 3, "{copied}");
    let third = enrich_with(&config, &tables, &queues, enricher).await;
    settle(&sqs, &queues.dlq_url, 3).await;
    let moved = dlq(&["replay", &queues.dlq_url, "--json"])
        .succeeded()
        .json();
    assert_eq!(number(&moved, "moved"), 3, "{moved}");
    let fourth = enrich_with(&config, &tables, &queues, enricher).await;
    assert_eq!(by_outcome(&third)["applied"], ["outage-day-1"]);
    assert_eq!(
        by_outcome(&third)["duplicate"],
        sorted(["daily-1", "late-day-2"])
    );
    assert_eq!(
        by_outcome(&fourth)["duplicate"],
        sorted(["daily-1", "late-day-2", "outage-day-1"])
    );

    let mut everything = daily;
    everything.extend([late, forgotten]);
    assert_features(&config, &tables.features, &everything).await;
    settle(&sqs, &queues.dlq_url, 0).await;
}
