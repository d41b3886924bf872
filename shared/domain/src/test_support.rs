//! Fixtures for tests of this crate and of its adapters (feature `test-support`; never in a
//! deployed build): the DESIGN.md webhook, the events/ files, a new customer's features.
// A broken fixture aborts the test that asked for it, which is the point.
#![allow(clippy::panic, clippy::expect_used)]

use crate::event::{ServiceEvent, Webhook, parse_webhook_value};
use crate::features::{CustomerFeatures, MemoryLimits, fold_events};
use serde_json::{Value, json};

/// The features of a new customer after `bodies` (valid `service.completed` webhooks).
pub fn features_of(bodies: &[Value]) -> CustomerFeatures {
    let events: Vec<ServiceEvent> = bodies
        .iter()
        .map(|body| match parse_webhook_value(body) {
            Ok(Webhook::ServiceCompleted(event)) => *event,
            other => panic!("fixture event refused: {other:?}"),
        })
        .collect();
    let refs: Vec<&ServiceEvent> = events.iter().collect();
    fold_events(None, &refs, MemoryLimits::default())
        .into_next()
        .expect("applied")
}

/// The webhook shown in DESIGN.md.
pub fn design_example() -> Value {
    json!({
      "event_id": "evt_01JD7X3K9Q",
      "event_type": "service.completed",
      "occurred_at": "2026-11-20T15:04:05Z",
      "customer": {
        "email": "Jane.Doe@Example.com",
        "name": "Jane Doe",
        "address": { "street": "1 Elm St", "city": "Austin", "state": "TX", "zip": "78701" }
      },
      "service": { "id": "svc_123", "type": "pest_control", "satisfaction_score": 4.5 },
      "property_info": { "type": "single_family", "square_feet": 2500, "year_built": 1998,
                         "pest_issues": ["ants"] },
      "services_count": 8
    })
}

/// A JSON file of the workspace's `events/` folder.
pub fn fixture(path: &str) -> Value {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events")
        .join(path);
    let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}
