use crate::common::*;

#[tokio::test]
async fn a_dry_run_changes_nothing() {
    let _shared = EMULATOR.read().await;
    let config = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queues = fresh_queues(&config, 3).await;
    let bodies = valid_events("dry", 5);
    put(&sqs, &queues.dlq_url, &redriven(&bodies)).await;
    let dlq_name = name_of(&queues.dlq_url);
    let ids = |lines: Vec<Value>| -> BTreeSet<String> {
        lines
            .iter()
            .map(|line| line["message_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let before_ids = ids(dlq(&["peek", dlq_name, "--json"]).succeeded().json_lines());
    settle(&sqs, &queues.dlq_url, 5).await;
    let before = (
        depth(&sqs, &queues.dlq_url).await,
        depth(&sqs, &queues.url).await,
    );
    assert_eq!(before, ((5, 0), (0, 0)));

    let dry = dlq(&["replay", dlq_name, "--dry-run", "--json"]);
    let summary = dry.succeeded().json();
    assert_eq!(summary["dry_run"], true, "{summary}");
    assert_eq!(number(&summary, "would_move"), 5, "{summary}");
    assert_eq!(number(&summary, "moved"), 0, "{summary}");
    assert_eq!(dry.stderr.matches("would move").count(), 5, "{dry:#?}");

    settle(&sqs, &queues.dlq_url, 5).await;
    let after = (
        depth(&sqs, &queues.dlq_url).await,
        depth(&sqs, &queues.url).await,
    );
    assert_eq!(after, before);
    let after_lines = dlq(&["peek", dlq_name, "--json"]).succeeded().json_lines();
    for line in &after_lines {
        assert!(
            line["attributes"].get("replay_count").is_none(),
            "a dry run added a replay count: {line}"
        );
    }
    assert_eq!(ids(after_lines), before_ids);
}

// ---------------------------------------------------------------------------------------
// 4. Filter

#[tokio::test]
async fn a_filter_moves_only_the_matching_messages() {
    let _shared = EMULATOR.read().await;
    let config = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queues = fresh_queues(&config, 3).await;
    let bodies = valid_events("filter", 4);
    let mut letters = vec![
        Letter::rejected("{\"event_id\": \"filter-j1\", ", "malformed_json", None),
        Letter::rejected("not json at all", "malformed_json", None),
        Letter::rejected("[1, 2", "malformed_json", None),
    ];
    for body in &bodies[..2] {
        letters.push(Letter::rejected(
            body.to_string(),
            "wrong_type",
            Some(&event_id(body)),
        ));
    }
    letters.extend(redriven(&bodies[2..]));
    put(&sqs, &queues.dlq_url, &letters).await;
    let dlq_name = name_of(&queues.dlq_url);
    let target = name_of(&queues.url);

    let summary = dlq(&[
        "replay",
        dlq_name,
        "--to",
        target,
        "--filter",
        "kind=malformed_json",
        "--json",
    ])
    .succeeded()
    .json();
    assert_eq!(number(&summary, "moved"), 3, "{summary}");
    assert_eq!(number(&summary, "skipped"), 4, "{summary}");
    assert_eq!(summary["filter"], "kind=malformed_json", "{summary}");
    settle(&sqs, &queues.dlq_url, 4).await;
    let moved: BTreeSet<String> = take_all(&sqs, &queues.url)
        .await
        .iter()
        .map(body_of)
        .collect();
    let expected: BTreeSet<String> = letters[..3].iter().map(|l| l.body.clone()).collect();
    assert_eq!(moved, expected);
    let stats = dlq(&["stats", dlq_name, "--json"]).succeeded().json();
    assert_eq!(
        stats["by_kind"],
        json!({"redriven": 2, "wrong_type": 2}),
        "{stats}"
    );

    // By event id: the attribute of a rejected letter, else the body's field.
    let wanted = format!("event={}|{}", event_id(&bodies[0]), event_id(&bodies[3]));
    let summary = dlq(&[
        "replay", dlq_name, "--to", target, "--filter", &wanted, "--json",
    ])
    .succeeded()
    .json();
    assert_eq!(number(&summary, "moved"), 2, "{summary}");
    assert_eq!(number(&summary, "skipped"), 2, "{summary}");
    settle(&sqs, &queues.dlq_url, 2).await;
    let moved: BTreeSet<String> = take_all(&sqs, &queues.url)
        .await
        .iter()
        .map(body_of)
        .collect();
    assert_eq!(
        moved,
        BTreeSet::from([bodies[0].to_string(), bodies[3].to_string()])
    );
    let left: BTreeSet<String> = take_all(&sqs, &queues.dlq_url)
        .await
        .iter()
        .map(body_of)
        .collect();
    assert_eq!(
        left,
        BTreeSet::from([bodies[1].to_string(), bodies[2].to_string()])
    );

    // A bad expression is refused before anything is received.
    let bad = dlq(&["replay", dlq_name, "--to", target, "--filter", "colour=red"]);
    assert_ne!(bad.code, Some(0), "{bad:#?}");
    assert!(bad.stderr.contains("unknown"), "{bad:#?}");
}

// ---------------------------------------------------------------------------------------
// 5. Rate

#[tokio::test]
// 25/s rather than more: each paced message costs a send and a delete through the debug
// build of the binary against moto, about 20 ms on this machine, and a rate near that cost
// would measure the machine's load rather than the pacing.
async fn a_replay_at_25_per_second_holds_that_rate() {
    let _alone = EMULATOR.write().await;
    let config = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queues = fresh_queues(&config, 3).await;
    let letters: Vec<Letter> = (0..200)
        .map(|i| Letter::new(format!("not json {i}"), &[]))
        .collect();
    put(&sqs, &queues.dlq_url, &letters).await;
    settle(&sqs, &queues.dlq_url, 200).await;

    let started = Instant::now();
    let summary = dlq(&[
        "replay",
        name_of(&queues.dlq_url),
        "--rate",
        "25/s",
        "--json",
    ])
    .succeeded()
    .json();
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(number(&summary, "moved"), 200, "{summary}");
    let rate = summary["rate_per_second"].as_f64().expect("a rate");
    let window = summary["send_window_seconds"].as_f64().expect("a window");
    println!(
        "replay of 200 at --rate 25/s: {rate:.2}/s over a {window:.2} s send window, {wall:.2} s \
         wall time"
    );
    assert!((22.5..=27.5).contains(&rate), "rate {rate:.2}/s: {summary}");
    // From this side, not the tool's own account: the 200 sends cannot have taken less
    // than 199 intervals at 27.5/s, and the window lies inside the run.
    assert!(
        wall >= 199.0 / 27.5 && wall >= window,
        "200 moves in {wall:.2} s (send window {window:.2} s) is faster than the rate"
    );
    assert_eq!(depth(&sqs, &queues.dlq_url).await, (0, 0));
    assert_eq!(depth(&sqs, &queues.url).await, (200, 0));
}

// ---------------------------------------------------------------------------------------
// 6. Peek

/// With a customer-ref key, the refs on dead letters are keyed; `customer=` computes the
/// ref with the operator's `CUSTOMER_REF_KEY`, so it matches with the functions' key only
/// (the bodies here carry no address to fall back on).
#[tokio::test]
async fn a_customer_filter_matches_refs_keyed_with_the_functions_key() {
    const KEY: &str = "dlq-test-customer-ref-key-0123";
    let _shared = EMULATOR.read().await;
    let config = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queues = fresh_queues(&config, 3).await;
    let keyed = |email: &str| customer_ref_with(Some(KEY.as_bytes()), email);
    let letters: Vec<Letter> = ["ann@example.com", "bob@example.com"]
        .iter()
        .map(|email| {
            Letter::new(
                "{not json",
                &[
                    ("error_kind", "malformed_json"),
                    ("customer_ref", &keyed(email)),
                ],
            )
        })
        .collect();
    put(&sqs, &queues.dlq_url, &letters).await;
    let dlq_name = name_of(&queues.dlq_url);
    let replay = |env: &[(&str, &str)]| {
        referral(
            &[
                "dlq",
                "replay",
                dlq_name,
                "--filter",
                "customer=Ann@Example.com",
                "--dry-run",
                "--json",
            ],
            env,
        )
        .succeeded()
        .json()
    };

    let unkeyed = replay(&[]);
    assert_eq!(number(&unkeyed, "would_move"), 0, "{unkeyed}");
    settle(&sqs, &queues.dlq_url, 2).await;
    let with_key = replay(&[("CUSTOMER_REF_KEY", KEY)]);
    assert_eq!(number(&with_key, "would_move"), 1, "{with_key}");
    assert_eq!(number(&with_key, "skipped"), 1, "{with_key}");
    settle(&sqs, &queues.dlq_url, 2).await;

    let short = referral(
        &["dlq", "stats", dlq_name],
        &[("CUSTOMER_REF_KEY", "short")],
    );
    assert_eq!(short.code, Some(2), "{short:#?}");
    assert!(
        short.stderr.contains("CUSTOMER_REF_KEY") && !short.stderr.contains("short\""),
        "{short:#?}"
    );
}
