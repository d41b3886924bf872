//! Whatever the validator accepts must survive storage: parse → fold into an item → the
//! item's stored form → decode → the same item. A value that parses but cannot be written
//! back (a `:60` second was one) would make the customer's item unreadable for good.
//!
//! The stored form is the item's serde form, which the DynamoDB adapter writes through
//! `serde_dynamo`; JSON stands in for it here so that the domain is tested alone.
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use proptest::prelude::*;
use referral_domain::event::{EventError, Webhook, parse_webhook_value};
use referral_domain::features::{CustomerFeatures, MemoryLimits, fold_events};
use serde_json::{Value, json};

/// RFC 3339 timestamps from their parts, well beyond the valid range on purpose: seconds up
/// to 60, any fraction, offsets up to ±23:59, years up to 9999.
fn timestamp() -> impl Strategy<Value = String> {
    (
        1990u32..=9999,
        1u32..=12,
        1u32..=31,
        0u32..=23,
        0u32..=59,
        0u32..=60,
        prop::option::of("[0-9]{1,9}"),
        prop_oneof![
            Just("Z".to_owned()),
            (any::<bool>(), 0u32..=23, 0u32..=59)
                .prop_map(|(west, h, m)| format!("{}{h:02}:{m:02}", if west { '-' } else { '+' })),
        ],
    )
        .prop_map(|(y, mo, d, h, mi, s, fraction, offset)| {
            let fraction = fraction.map(|f| format!(".{f}")).unwrap_or_default();
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{fraction}{offset}")
        })
}

/// Free text as senders send it: any printable Unicode, with edges the validator may trim.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z' .-]{1,40}",
        "\\PC{1,60}",
        Just("José Zoë O'Fallon".to_owned()),
    ]
}

fn email() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9._%+-]{1,20}@[A-Za-z0-9-]{1,12}\\.[A-Za-z]{2,6}",
        Just("zoë@bücher.de".to_owned()),
        Just("José@Example.COM".to_owned()),
        Just("用户@例子.广告".to_owned()),
    ]
}

fn body() -> impl Strategy<Value = Value> {
    (
        timestamp(),
        email(),
        text(),
        text(),
        prop::option::of(0.0f64..=5.0),
        prop::option::of((100u64..=100_000, 1600u16..=2030)),
        prop::collection::vec(text(), 0..4),
    )
        .prop_map(|(occurred_at, email, name, city, score, property, pests)| {
            let mut body = json!({
                "event_id": "evt-round-trip",
                "event_type": "service.completed",
                "occurred_at": occurred_at,
                "customer": {"email": email, "name": name,
                             "address": {"city": city, "state": "TX", "zip": "78701"}},
                "services_count": 3,
            });
            if let Some(score) = score {
                body["service"] = json!({"type": "pest_control", "satisfaction_score": score});
            }
            if let Some((square_feet, year_built)) = property {
                body["property_info"] = json!({"type": "single_family",
                        "square_feet": square_feet, "year_built": year_built,
                        "pest_issues": pests});
            }
            body
        })
}

fn stored_round_trip(item: &CustomerFeatures) -> Result<CustomerFeatures, String> {
    let stored = serde_json::to_value(item).map_err(|e| format!("does not encode: {e}"))?;
    serde_json::from_value(stored.clone())
        .map_err(|e| format!("written as {stored} but does not decode: {e}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn every_accepted_event_is_stored_and_read_back_unchanged(body in body()) {
        let Ok(Webhook::ServiceCompleted(event)) = parse_webhook_value(&body) else {
            return Ok(());
        };
        let fold = fold_events(None, &[&event], MemoryLimits::default());
        let item = fold.item.expect("a new customer's first event makes an item");
        let read_back = stored_round_trip(&item);
        prop_assert_eq!(read_back.as_ref(), Ok(&item), "body {}", body);
    }

    #[test]
    fn a_sixtieth_second_is_refused_naming_the_field(body in body()) {
        let mut body = body;
        let at = body["occurred_at"].as_str().unwrap_or_default().to_owned();
        body["occurred_at"] = json!(format!("{}60{}", &at[..17], &at[19..]));
        let refused = parse_webhook_value(&body).map(|_| ()).map_err(|r| r.error.field());
        prop_assert_eq!(refused, Err("occurred_at"));
    }
}

#[test]
fn leap_seconds_and_years_beyond_rfc_3339_are_refused() {
    for at in [
        "2026-03-01T12:34:60Z",
        "2016-12-31T23:59:60Z",
        "2016-12-31T23:59:60.5Z",
        "2016-12-31T18:59:60-05:00",
        // Year 10000 once in UTC.
        "9999-12-31T23:59:59-01:00",
    ] {
        let body = json!({
            "event_id": "evt-1", "event_type": "service.completed", "occurred_at": at,
            "customer": {"email": "a@example.com"},
        });
        match parse_webhook_value(&body) {
            Err(rejection) => assert!(
                matches!(
                    rejection.error,
                    EventError::Invalid {
                        field: "occurred_at",
                        ..
                    }
                ),
                "{at}: {:?}",
                rejection.error
            ),
            Ok(accepted) => panic!("{at} accepted: {accepted:?}"),
        }
    }
    // The last second RFC 3339 can write still stands.
    let body = json!({
        "event_id": "evt-1", "event_type": "service.completed",
        "occurred_at": "9999-12-31T23:59:59.999999999Z", "customer": {"email": "a@example.com"},
    });
    assert!(parse_webhook_value(&body).is_ok());
}
