use super::*;
use serde_json::Value;
use serde_json::json;

fn valid() -> Value {
    json!({
        "event_id": "evt_1",
        "event_type": "service.completed",
        "occurred_at": "2026-11-20T15:04:05-05:00",
        "customer": {"email": "  Jane.Doe@Example.com ", "name": "Jane Doe",
                      "address": {"city": "Austin", "state": "TX", "zip": "78701"}},
        "service": {"id": "svc_1", "type": "pest_control", "satisfaction_score": 4.5},
        "property_info": {"type": "single_family", "square_feet": 2500, "year_built": 1998,
                          "pest_issues": ["ants"]},
        "services_count": 8,
        "unknown": {"ignored": true}
    })
}

fn reject(value: Value) -> EventError {
    match parse_webhook_value(&value) {
        Err(rejection) => rejection.error,
        Ok(webhook) => panic!("expected a rejection, got {webhook:?}"),
    }
}

#[test]
fn parses_the_design_example() {
    let Ok(Webhook::ServiceCompleted(event)) = parse_webhook_value(&valid()) else {
        panic!("valid event refused");
    };
    assert_eq!(event.customer.email, "jane.doe@example.com");
    assert_eq!(event.occurred_at.to_rfc3339(), "2026-11-20T20:04:05+00:00");
    assert_eq!(
        event.service.as_ref().and_then(|s| s.satisfaction_micros),
        Some(4_500_000)
    );
    assert_eq!(event.services_count, Some(8));
    assert_ne!(event.content_hash, 0);
}

#[test]
fn the_hash_ignores_key_order_spacing_and_email_case() {
    let a = parse_webhook(&valid().to_string()).map(|w| match w {
        Webhook::ServiceCompleted(e) => e.content_hash,
        Webhook::Other { .. } => 0,
    });
    let mut other = valid();
    other["customer"]["email"] = json!("jane.doe@example.com");
    let pretty = serde_json::to_string_pretty(&other).unwrap_or_default();
    let b = parse_webhook(&pretty).map(|w| match w {
        Webhook::ServiceCompleted(e) => e.content_hash,
        Webhook::Other { .. } => 0,
    });
    assert_eq!(a, b);
    other["service"]["satisfaction_score"] = json!(4.0);
    let c = parse_webhook_value(&other).map(|w| match w {
        Webhook::ServiceCompleted(e) => e.content_hash,
        Webhook::Other { .. } => 0,
    });
    assert_ne!(a, c);
}

#[test]
fn the_stored_hash_format_is_stable() {
    // Items keep these hashes: a change of the fed bytes or the digest would make every
    // redelivery look like a conflicting duplicate.
    let Ok(Webhook::ServiceCompleted(event)) = parse_webhook_value(&valid()) else {
        panic!("valid event refused");
    };
    assert_eq!(format!("{:016x}", event.content_hash), "6038a8590fbbbbba");
}

#[test]
fn other_event_types_are_not_validated_further() {
    let parsed = parse_webhook_value(&json!({"event_id": "e", "event_type": "customer.updated"}));
    assert_eq!(
        parsed,
        Ok(Webhook::Other {
            event_id: "e".into(),
            event_type: "customer.updated".into()
        })
    );
}

#[test]
fn null_optionals_are_absent_but_null_required_fields_are_missing() {
    let mut event = valid();
    event["service"] = Value::Null;
    event["services_count"] = Value::Null;
    assert!(parse_webhook_value(&event).is_ok());
    event["occurred_at"] = Value::Null;
    assert_eq!(
        reject(event),
        EventError::Missing {
            field: "occurred_at"
        }
    );
}

#[test]
fn each_rejection_names_its_field() {
    let cases: Vec<(&str, Value, &str)> = vec![
        ("event_id", json!(""), "event_id"),
        ("event_id", json!(7), "event_id"),
        ("occurred_at", json!("2026-11-20T15:04:05"), "occurred_at"),
        ("occurred_at", json!("yesterday"), "occurred_at"),
        ("services_count", json!(-1), "services_count"),
        ("services_count", json!(2.5), "services_count"),
        ("services_count", json!("3"), "services_count"),
        ("customer", json!("jane"), "customer"),
        ("service", json!([]), "service"),
    ];
    for (key, bad, field) in cases {
        let mut event = valid();
        event[key] = bad;
        assert_eq!(reject(event).field(), field, "{key}");
    }
    let nested: Vec<(&str, &str, Value, &str)> = vec![
        (
            "customer",
            "email",
            json!("jane.example.com"),
            "customer.email",
        ),
        (
            "customer",
            "email",
            json!("a@b@example.com"),
            "customer.email",
        ),
        (
            "customer",
            "email",
            json!("jane@localhost"),
            "customer.email",
        ),
        (
            "customer",
            "email",
            json!("jane doe@example.com"),
            "customer.email",
        ),
        ("customer", "address", json!("1 Elm St"), "customer.address"),
        (
            "service",
            "satisfaction_score",
            json!("4.5"),
            "service.satisfaction_score",
        ),
        (
            "service",
            "satisfaction_score",
            json!(5.01),
            "service.satisfaction_score",
        ),
        (
            "service",
            "satisfaction_score",
            json!(-0.5),
            "service.satisfaction_score",
        ),
        (
            "property_info",
            "square_feet",
            json!("2500"),
            "property_info.square_feet",
        ),
        (
            "property_info",
            "year_built",
            json!(98),
            "property_info.year_built",
        ),
        (
            "property_info",
            "pest_issues",
            json!("ants"),
            "property_info.pest_issues",
        ),
        (
            "property_info",
            "pest_issues",
            json!([1]),
            "property_info.pest_issues",
        ),
    ];
    for (parent, key, bad, field) in nested {
        let mut event = valid();
        event[parent][key] = bad;
        assert_eq!(reject(event).field(), field, "{parent}.{key}");
    }
}

#[test]
fn rejections_keep_the_event_id_when_known_and_never_echo_values() {
    let mut event = valid();
    event["customer"]["email"] = json!("secret person@example.com");
    let Err(rejection) = parse_webhook_value(&event) else {
        panic!("accepted an e-mail with a space");
    };
    assert_eq!(rejection.event_id.as_deref(), Some("evt_1"));
    assert!(!rejection.to_string().contains("secret"));
    let not_json = parse_webhook("{\"event_id\": \"jane@example.com\",");
    let Err(rejection) = not_json else {
        panic!("accepted truncated JSON");
    };
    assert_eq!(rejection.error.field(), "body");
    assert!(!rejection.to_string().contains("jane"));
}

#[test]
fn boundaries_of_the_score_are_inclusive() {
    for score in [0.0, 5.0] {
        let mut event = valid();
        event["service"]["satisfaction_score"] = json!(score);
        assert!(parse_webhook_value(&event).is_ok(), "{score}");
    }
}

/// Values that would stick for good (the largest count, the earliest date, the latest
/// property facts) are bounded, each refusal naming its field.
#[test]
fn values_that_would_stick_for_ever_are_bounded() {
    let cases: [(&str, Value, &str); 10] = [
        ("/services_count", json!(100_001), "services_count"),
        (
            "/services_count",
            json!(1_000_000_000_000_000u64),
            "services_count",
        ),
        ("/services_count", json!(1e15), "services_count"),
        (
            "/property_info/square_feet",
            json!(1_000_000_000_000u64),
            "property_info.square_feet",
        ),
        (
            "/property_info/square_feet",
            json!(99),
            "property_info.square_feet",
        ),
        (
            "/property_info/year_built",
            json!(1599),
            "property_info.year_built",
        ),
        // The event is of 2026: a house finished in 2027 is plausible, 2028 is not.
        (
            "/property_info/year_built",
            json!(2028),
            "property_info.year_built",
        ),
        (
            "/property_info/year_built",
            json!(70_000),
            "property_info.year_built",
        ),
        ("/occurred_at", json!("1999-12-31T23:59:59Z"), "occurred_at"),
        ("/occurred_at", json!("0026-11-20T15:04:05Z"), "occurred_at"),
    ];
    for (pointer, bad, field) in cases {
        let mut event = valid();
        *event
            .pointer_mut(pointer)
            .unwrap_or_else(|| panic!("{pointer}")) = bad.clone();
        assert_eq!(reject(event).field(), field, "{pointer} = {bad}");
    }
    let limits: [(&str, Value); 7] = [
        ("/services_count", json!(100_000)),
        ("/property_info/square_feet", json!(100)),
        ("/property_info/square_feet", json!(100_000)),
        ("/property_info/year_built", json!(1600)),
        ("/property_info/year_built", json!(2027)),
        ("/occurred_at", json!("2000-01-01T00:00:00Z")),
        // Far future dates pass validation: the enricher refuses them against its clock.
        ("/occurred_at", json!("9999-12-31T00:00:00Z")),
    ];
    for (pointer, good) in limits {
        let mut event = valid();
        *event
            .pointer_mut(pointer)
            .unwrap_or_else(|| panic!("{pointer}")) = good.clone();
        assert!(parse_webhook_value(&event).is_ok(), "{pointer} = {good}");
    }
}

#[test]
fn near_misses_of_the_known_type_are_refused_naming_event_type() {
    for near_miss in [
        "Service.Completed",
        "SERVICE.COMPLETED",
        "service.completed ",
        " service.completed",
        "service_completed",
        "service-completed",
        "service.completed\u{200b}",
    ] {
        let mut event = valid();
        event["event_type"] = json!(near_miss);
        assert_eq!(reject(event).field(), "event_type", "{near_miss:?}");
    }
    // Other types stay acknowledged, and so ignored.
    for other in ["service.scheduled", "invoice.paid", "service.completed.v2"] {
        let mut event = valid();
        event["event_type"] = json!(other);
        assert!(
            matches!(parse_webhook_value(&event), Ok(Webhook::Other { .. })),
            "{other}"
        );
    }
}

#[test]
fn an_event_id_with_white_space_or_invisible_characters_is_refused() {
    for id in [
        "evt_1 ",
        " evt_1",
        "evt_1\t",
        "evt_1\u{200b}",
        "evt\u{2060}_1",
        "\u{feff}evt_1",
        "evt_1\u{202e}",
        "evt_1\u{a0}",
    ] {
        let mut event = valid();
        event["event_id"] = json!(id);
        assert_eq!(reject(event).field(), "event_id", "{id:?}");
    }
}
