#![allow(clippy::unwrap_used)]

use referral_domain::enricher::{EnrichCounters, MessageReport, Outcome};

use super::*;

fn report(outcomes: &[(&str, &str, Outcome)]) -> BatchReport {
    BatchReport {
        messages: outcomes
            .iter()
            .map(|(event_id, email, outcome)| MessageReport {
                message_id: format!("msg-{event_id}"),
                event_id: Some((*event_id).to_owned()),
                customer_email: Some((*email).to_owned()),
                trace: None,
                outcome: outcome.clone(),
            })
            .collect(),
        counters: EnrichCounters {
            messages: outcomes.len() as u64,
            ..EnrichCounters::default()
        },
    }
}

#[test]
fn each_webhook_gets_its_own_outcome_and_no_address_in_clear() {
    let activity = Activity::default();
    activity.webhook(202, Some(&json!({"event_id": "evt-1"})));
    activity.webhook(
        400,
        Some(&json!({"error": "invalid_event", "errors": [{"field": "customer.email", "message": "x"}]})),
    );
    activity.webhook(202, Some(&json!({"event_id": "evt-1"})));
    activity.webhook(
        200,
        Some(&json!({"event_id": "ann@example.com", "status": "already_accepted"})),
    );
    activity.webhook(502, None);
    activity.enriched(&report(&[("evt-1", "ann@example.com", Outcome::Applied)]));
    activity.enriched(&report(&[(
        "evt-1",
        "ann@example.com",
        Outcome::Duplicate { conflicting: true },
    )]));

    let rows = activity.webhooks();
    let column = |name: &str| -> Vec<Value> {
        rows.as_array()
            .unwrap()
            .iter()
            .map(|row| row[name].clone())
            .collect()
    };
    // Newest first.
    assert_eq!(
        column("status"),
        [json!(502), json!(200), json!(202), json!(400), json!(202)]
    );
    assert_eq!(
        column("ingest"),
        [
            json!("refused"),
            json!("already_accepted"),
            json!("accepted"),
            json!("invalid_event: customer.email"),
            json!("accepted")
        ]
    );
    assert_eq!(
        column("enricher"),
        [
            Value::Null,
            Value::Null,
            json!("conflicting_duplicate"),
            Value::Null,
            json!("applied")
        ]
    );
    assert_eq!(column("customer")[4], json!("a***@example.com"));
    assert!(!rows.to_string().contains("ann@"), "{rows}");

    let counters = activity.counters();
    assert_eq!(counters["ingest"], json!({"2xx": 3, "4xx": 1, "5xx": 1}));
    assert_eq!(counters["enricher"]["messages"], json!(2));
    activity.orchestrated(StreamCounters {
        created: 1,
        ..StreamCounters::default()
    });
    assert_eq!(activity.counters()["orchestrator"]["created"], json!(1));
}

#[test]
fn customers_are_the_most_recently_met_first_and_bounded() {
    let activity = Activity::default();
    for n in 0..CUSTOMERS_SHOWN + 5 {
        let email = format!("c{n}@example.com");
        activity.enriched(&report(&[("evt", &email, Outcome::Applied)]));
    }
    activity.enriched(&report(&[("evt", "c7@example.com", Outcome::Applied)]));
    let customers = activity.customers();
    assert_eq!(customers.len(), CUSTOMERS_SHOWN);
    assert_eq!(customers[0], "c7@example.com");
    assert_eq!(
        customers
            .iter()
            .filter(|email| *email == "c7@example.com")
            .count(),
        1
    );
    assert!(!customers.contains(&"c0@example.com".to_owned()));
}

#[test]
fn the_webhook_list_is_bounded() {
    let activity = Activity::default();
    for _ in 0..WEBHOOKS_SHOWN + 3 {
        activity.webhook(202, Some(&json!({"event_id": "evt"})));
    }
    assert_eq!(
        activity.webhooks().as_array().unwrap().len(),
        WEBHOOKS_SHOWN
    );
    assert_eq!(
        activity.counters()["ingest"]["2xx"],
        json!(WEBHOOKS_SHOWN + 3)
    );
}
