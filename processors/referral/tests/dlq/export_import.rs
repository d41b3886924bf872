use crate::common::*;

// ---------------------------------------------------------------------------------------
// 1a. Poison events: export, fix by hand, import, applied once

#[tokio::test]
async fn poison_events_exported_fixed_and_imported_are_applied_exactly_once() {
    let _shared = EMULATOR.read().await;
    let config = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let names = [
        unique("features"),
        unique("messages"),
        unique("queue"),
        unique("dlq"),
        unique("archive"),
    ];
    let tables = TableNames {
        features: names[0].clone(),
        archive: names[4].clone(),
        messages: names[1].clone(),
    };
    let dir = temp_dir();

    // Four good events and one of each kind of refusal.
    let good = vec![
        event_body("good-1", "ann@example.com", 1, Some(4.0)),
        event_body("good-2", "bob@example.com", 2, None),
        event_body("good-3", "ann@example.com", 3, Some(2.5)),
        event_body("good-4", "dee@example.com", 4, Some(5.0)),
    ];
    let intended = vec![
        event_body("fix-score", "ann@example.com", 5, Some(4.5)),
        event_body("fix-json", "bob@example.com", 6, Some(3.0)),
        event_body("fix-email", "cyd@example.com", 7, None),
        event_body("fix-missing", "dee@example.com", 8, Some(1.5)),
    ];
    let mut bad_score = intended[0].clone();
    bad_score["service"]["satisfaction_score"] = json!("four and a half");
    let truncated = intended[1].to_string()[..60].to_owned();
    let mut bad_email = intended[2].clone();
    bad_email["customer"]["email"] = json!("cyd.example.com");
    let mut missing = intended[3].clone();
    missing.as_object_mut().unwrap().remove("occurred_at");
    let mut lines: Vec<String> = good.iter().map(Value::to_string).collect();
    lines.extend([
        bad_score.to_string(),
        truncated,
        bad_email.to_string(),
        missing.to_string(),
    ]);
    let input = dir.join("webhooks.jsonl");
    std::fs::write(&input, lines.join("\n")).expect("write the webhooks");

    // The pipeline refuses the four: they are in the DLQ with their reasons.
    let run = referral(
        &[
            "run",
            "--features-table",
            &names[0],
            "--archive-table",
            &names[4],
            "--messages-table",
            &names[1],
            "--queue",
            &names[2],
            "--dlq",
            &names[3],
            input.to_str().unwrap(),
        ],
        &[],
    );
    run.succeeded();
    // The queues `referral run` created, with the redrive policy of the deployed stack.
    let (url, dlq_url) = (
        queue_url(&sqs, &names[2]).await.unwrap(),
        queue_url(&sqs, &names[3]).await.unwrap(),
    );
    let queues = QueuePair {
        arn: queue_arn(&sqs, &url).await.unwrap(),
        dlq_arn: queue_arn(&sqs, &dlq_url).await.unwrap(),
        url,
        dlq_url,
    };
    assert_eq!(
        depth(&sqs, &queues.url).await,
        (0, 0),
        "the run leaves nothing in its queue"
    );
    let stats = dlq(&["stats", &names[3], "--json"]).succeeded().json();
    assert_eq!(number(&stats, "depth"), 4, "{stats}");
    assert_eq!(
        stats["by_kind"],
        json!({"invalid_value": 1, "malformed_json": 1, "missing_field": 1, "wrong_type": 1}),
        "{stats}"
    );
    assert_features(&config, &names[0], &good).await;

    // Export and delete; the file holds them all and the DLQ is empty.
    let file = dir.join("dead-letters.jsonl");
    let exported = dlq(&[
        "export",
        &names[3],
        "--out",
        file.to_str().unwrap(),
        "--delete",
    ]);
    exported.succeeded();
    assert!(
        exported.stdout.contains("exported 4 message(s)"),
        "{exported:#?}"
    );
    assert_eq!(depth(&sqs, &queues.dlq_url).await, (0, 0));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the export holds customer data: {mode:o}");
    }

    // A person fixes each line, keeping the rest of it as exported.
    let text = std::fs::read_to_string(&file).expect("read the export");
    let mut fixed = Vec::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let mut line: Value = serde_json::from_str(line).expect("a JSON line");
        let kind = line["attributes"]["error_kind"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut body: Option<Value> = serde_json::from_str(line["body"].as_str().unwrap()).ok();
        match kind.as_str() {
            "wrong_type" => {
                let body = body.as_mut().unwrap();
                assert_eq!(line["attributes"]["event_id"], "fix-score");
                body["service"]["satisfaction_score"] = json!(4.5);
            }
            "malformed_json" => body = Some(intended[1].clone()),
            "invalid_value" => {
                let body = body.as_mut().unwrap();
                assert_eq!(line["attributes"]["error_field"], "customer.email");
                body["customer"]["email"] = json!("cyd@example.com");
            }
            "missing_field" => {
                let body = body.as_mut().unwrap();
                body["occurred_at"] = intended[3]["occurred_at"].clone();
            }
            other => panic!("unexpected kind {other} in {line}"),
        }
        line["body"] = json!(body.unwrap().to_string());
        fixed.push(line);
    }
    assert_eq!(fixed.len(), 4);
    write_lines(&file, &fixed);

    let imported = dlq(&["import", file.to_str().unwrap(), "--to", &names[2]]);
    imported.succeeded();
    assert!(
        imported.stdout.contains("imported 4 message(s)"),
        "{imported:#?}"
    );
    assert_eq!(depth(&sqs, &queues.url).await, (4, 0));

    let deliveries = enrich(&config, &tables, &queues).await;
    assert_eq!(
        by_outcome(&deliveries),
        BTreeMap::from([(
            "applied",
            sorted(["fix-email", "fix-json", "fix-missing", "fix-score"])
        )]),
        "{deliveries:#?}"
    );
    let everything: Vec<Value> = good.iter().chain(&intended).cloned().collect();
    assert_features(&config, &names[0], &everything).await;
    assert_eq!(depth(&sqs, &queues.dlq_url).await, (0, 0));
    assert_eq!(depth(&sqs, &queues.url).await, (0, 0));

    // Importing the same file again is harmless: every event is acknowledged as applied.
    dlq(&["import", file.to_str().unwrap(), "--to", &names[2]]).succeeded();
    let again = enrich(&config, &tables, &queues).await;
    assert_eq!(
        by_outcome(&again),
        BTreeMap::from([(
            "duplicate",
            sorted(["fix-email", "fix-json", "fix-missing", "fix-score"])
        )]),
        "{again:#?}"
    );
    assert_features(&config, &names[0], &everything).await;
    assert_eq!(depth(&sqs, &queues.dlq_url).await, (0, 0));

    // An export never overwrites a file unless asked.
    let refused = dlq(&["export", &names[3], "--out", file.to_str().unwrap()]);
    assert_ne!(refused.code, Some(0), "{refused:#?}");
    assert!(refused.stderr.contains("--force"), "{refused:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------
// 1b. Transient failures: replayed to the source queue, applied once
