use crate::common::*;

#[tokio::test]
async fn peek_shows_the_same_messages_twice_consumes_nothing_and_masks_emails() {
    let _shared = EMULATOR.read().await;
    let config = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queues = fresh_queues(&config, 3).await;
    let emails = ["jane.doe@example.com", "ann@example.com", "bob@example.org"];
    let mut letters: Vec<Letter> = emails
        .iter()
        .enumerate()
        .map(|(i, email)| {
            Letter::new(
                event_body(&format!("peek-{i}"), email, i as i64, Some(3.0)).to_string(),
                &[("source", "webhook")],
            )
        })
        .collect();
    let mut bad = Letter::rejected(
        "{\"customer\": {\"email\": \"zed@example.net\"",
        "malformed_json",
        None,
    );
    bad.attributes.push((
        "error_message".to_owned(),
        "cannot parse the event of zed@example.net".to_owned(),
    ));
    letters.push(bad);
    put(&sqs, &queues.dlq_url, &letters).await;
    let dlq_name = name_of(&queues.dlq_url);
    settle(&sqs, &queues.dlq_url, 4).await;

    let first = dlq(&["peek", dlq_name, "--json"]);
    let second = dlq(&["peek", dlq_name, "--json"]);
    let ids = |ran: &Ran| -> BTreeSet<String> {
        ran.succeeded()
            .json_lines()
            .iter()
            .map(|line| line["message_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let first_ids = ids(&first);
    assert_eq!(first_ids.len(), 4, "{first:#?}");
    assert_eq!(first_ids, ids(&second));
    settle(&sqs, &queues.dlq_url, 4).await;

    let all_addresses = ["jane.doe@", "ann@", "bob@", "zed@"];
    let text = dlq(&["peek", dlq_name]);
    for ran in [&first, &second, &text] {
        ran.succeeded();
        for address in all_addresses {
            assert!(
                !ran.stdout.contains(address),
                "{address} shown in clear: {ran:#?}"
            );
        }
        for masked in ["j***@example.com", "a***@example.com", "z***@example.net"] {
            assert!(ran.stdout.contains(masked), "{masked} missing: {ran:#?}");
        }
    }
    assert!(text.stdout.contains("--reveal"), "{text:#?}");
    let kinds: BTreeMap<String, u64> =
        first
            .json_lines()
            .iter()
            .fold(BTreeMap::new(), |mut kinds, line| {
                *kinds
                    .entry(line["error_kind"].as_str().unwrap().to_owned())
                    .or_default() += 1;
                kinds
            });
    assert_eq!(
        kinds,
        BTreeMap::from([("malformed_json".to_owned(), 1), ("redriven".to_owned(), 3)])
    );

    let revealed = dlq(&["peek", dlq_name, "--json", "--reveal"]);
    revealed.succeeded();
    for address in emails.iter().chain(&["zed@example.net"]) {
        assert!(
            revealed.stdout.contains(address),
            "{address} not revealed: {revealed:#?}"
        );
    }
    settle(&sqs, &queues.dlq_url, 4).await;
    assert_eq!(depth(&sqs, &queues.url).await, (0, 0));
}

// ---------------------------------------------------------------------------------------
// 7. Stats

#[tokio::test]
async fn stats_reports_the_depth_and_counts_by_error_kind() {
    let _shared = EMULATOR.read().await;
    let config = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queues = fresh_queues(&config, 3).await;
    let bodies = valid_events("stats", 6);
    let mut letters = vec![
        Letter::rejected("{", "malformed_json", None),
        Letter::rejected("nope", "malformed_json", None),
    ];
    for body in &bodies[..3] {
        letters.push(Letter::rejected(
            body.to_string(),
            "wrong_type",
            Some(&event_id(body)),
        ));
    }
    letters.push(Letter::rejected(
        bodies[3].to_string(),
        "missing_field",
        Some(&event_id(&bodies[3])),
    ));
    letters.extend(redriven(&bodies[4..]));
    put(&sqs, &queues.dlq_url, &letters).await;
    let dlq_name = name_of(&queues.dlq_url);
    settle(&sqs, &queues.dlq_url, 8).await;

    let stats = dlq(&["stats", dlq_name, "--json"]).succeeded().json();
    assert_eq!(stats["queue"], dlq_name, "{stats}");
    assert_eq!(number(&stats, "depth"), 8, "{stats}");
    assert_eq!(number(&stats, "visible"), 8, "{stats}");
    assert_eq!(number(&stats, "in_flight"), 0, "{stats}");
    assert_eq!(number(&stats, "scanned"), 8, "{stats}");
    assert_eq!(
        stats["by_kind"],
        json!({"malformed_json": 2, "missing_field": 1, "redriven": 2, "wrong_type": 3}),
        "{stats}"
    );
    assert_eq!(
        stats["by_event_type"],
        json!({"service.completed": 6, "unknown": 2}),
        "{stats}"
    );
    assert!(stats["oldest_age_seconds"].as_u64().is_some(), "{stats}");
    settle(&sqs, &queues.dlq_url, 8).await;

    let text = dlq(&["stats", dlq_name]);
    text.succeeded();
    assert!(
        text.stdout.contains("depth:          8 (8 visible"),
        "{text:#?}"
    );
    assert!(text.stdout.contains("wrong_type"), "{text:#?}");
    settle(&sqs, &queues.dlq_url, 8).await;

    // A queue that is not there: a clear error, not an empty report.
    let missing = dlq(&["stats", &unique("no-such-queue"), "--json"]);
    assert_ne!(missing.code, Some(0), "{missing:#?}");
    assert!(
        missing.stderr.contains("Check the queue name"),
        "{missing:#?}"
    );
}

// ---------------------------------------------------------------------------------------
// 8. Copy, and a replay onto itself
