use chrono::{TimeZone, Utc};
use serde_json::json;

use super::*;
use crate::event::{Webhook, parse_webhook_value};
use crate::features::{ArchiveView, MemoryLimits, fold_events, fold_events_with};

const MICROS: u64 = 1_000_000;

/// An item of `services` services, each scored `score` (or none).
fn item(services: u64, score: Option<f64>) -> CustomerFeatures {
    let events: Vec<_> = (0..services)
        .map(|n| {
            let mut service = json!({ "id": format!("svc_{n}"), "type": "lawn_care" });
            if let Some(score) = score {
                service["satisfaction_score"] = json!(score);
            }
            let body = json!({
                "event_id": format!("evt_{n}"),
                "event_type": "service.completed",
                "occurred_at": Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single()
                    .map(|at| at + chrono::Duration::days(i64::try_from(n).unwrap_or(0)))
                    .map(|at| at.to_rfc3339()),
                "customer": { "email": "ann@example.com" },
                "service": service,
            });
            match parse_webhook_value(&body) {
                Ok(Webhook::ServiceCompleted(event)) => *event,
                other => panic!("fixture event does not parse: {other:?}"),
            }
        })
        .collect();
    let refs: Vec<_> = events.iter().collect();
    fold_events(None, &refs, MemoryLimits::default())
        .item
        .unwrap_or_else(|| panic!("a fold of {services} events has an item"))
}

#[test]
fn the_default_rule_is_designs_bands() {
    let rule = LifetimeValueRule::default();
    let band = |services, sum, count| rule.classify(services, sum, count);
    assert_eq!(band(6, 8 * MICROS, 2), LifetimeValue::High);
    assert_eq!(band(5, 10 * MICROS, 2), LifetimeValue::Medium);
    // 3.5 exactly is medium; no score counts as 3.5.
    assert_eq!(band(0, 7 * MICROS, 2), LifetimeValue::Medium);
    assert_eq!(band(0, 0, 0), LifetimeValue::Medium);
    assert_eq!(band(2, 6 * MICROS, 2), LifetimeValue::Low);
    assert_eq!(band(3, 0, 1), LifetimeValue::Medium);
    assert_eq!(band(6, 7 * MICROS, 2), LifetimeValue::Medium);
}

#[test]
fn the_fold_bands_by_the_rule_it_is_given() {
    let event = item(1, Some(5.0));
    assert_eq!(event.lifetime_value, LifetimeValue::Medium);
    let generous = LifetimeValueRule {
        high_min_services: 1,
        ..LifetimeValueRule::default()
    };
    // Fold the same single event under the generous rule.
    let body = json!({
        "event_id": "evt_x",
        "event_type": "service.completed",
        "occurred_at": "2026-01-01T00:00:00Z",
        "customer": { "email": "ann@example.com" },
        "service": { "id": "s", "type": "lawn_care", "satisfaction_score": 5.0 },
    });
    let Ok(Webhook::ServiceCompleted(parsed)) = parse_webhook_value(&body) else {
        panic!("fixture event does not parse");
    };
    let fold = fold_events_with(
        None,
        &[&*parsed],
        MemoryLimits::default(),
        ArchiveView::default(),
        &generous,
    );
    let banded = fold.item.map(|item| item.lifetime_value);
    assert_eq!(banded, Some(LifetimeValue::High));
}

#[test]
fn rederiving_moves_only_items_whose_band_changes() {
    let rule = LifetimeValueRule::default();
    let steady = item(6, Some(4.5));
    assert_eq!(steady.lifetime_value, LifetimeValue::High);
    assert!(!rule.band_of(&steady).moves());
    assert_eq!(steady.rederived(&rule), None);

    let stricter = LifetimeValueRule {
        high_min_services: 8,
        medium_min_services: 8,
        ..rule
    };
    let moved = stricter.band_of(&steady);
    assert_eq!(
        moved,
        BandMove {
            from: LifetimeValue::High,
            to: LifetimeValue::Medium
        }
    );
    let next = steady
        .rederived(&stricter)
        .unwrap_or_else(|| panic!("a band that moves gives a next version"));
    assert_eq!(next.lifetime_value, LifetimeValue::Medium);
    assert_eq!(next.version, steady.version + 1);
    // No event was applied: no trigger, so the orchestrator makes no message of it.
    assert_eq!(
        (next.trigger_event_id.as_deref(), next.trigger),
        (None, None)
    );
    assert_eq!(next.events_applied, steady.events_applied);
    assert_eq!(next.service_count, steady.service_count);
    assert_eq!(next.memory, steady.memory);
    // Re-derived once, it stands.
    assert_eq!(next.rederived(&stricter), None);
}

#[test]
fn a_rule_with_high_below_medium_or_scores_past_five_is_refused() {
    let rule = LifetimeValueRule::default();
    assert_eq!(rule.validated(), Ok(rule));
    let error = LifetimeValueRule {
        high_min_services: 2,
        ..rule
    }
    .validated()
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "--high-min-services must not be below --medium-min-services"
    );
    assert_eq!(
        LifetimeValueRule {
            medium_min_satisfaction_micros: 4_500_000,
            ..rule
        }
        .validated(),
        Err(RuleError::HighBelowMedium {
            high: Threshold::HighMinSatisfaction,
            medium: Threshold::MediumMinSatisfaction
        })
    );
    assert_eq!(
        LifetimeValueRule {
            high_min_satisfaction_micros: 5_000_001,
            ..rule
        }
        .validated(),
        Err(RuleError::SatisfactionOutOfRange(
            Threshold::HighMinSatisfaction
        ))
    );
}

#[test]
fn the_rule_reads_its_variables_and_names_the_one_at_fault() {
    let vars = Vars::fixed(&[
        ("LTV_HIGH_MIN_SERVICES", "10"),
        ("LTV_HIGH_MIN_SATISFACTION", "4.5"),
        ("LTV_MEDIUM_MIN_SERVICES", " "),
    ]);
    assert_eq!(
        LifetimeValueRule::from_vars(&vars),
        Ok(LifetimeValueRule {
            high_min_services: 10,
            high_min_satisfaction_micros: 4_500_000,
            ..LifetimeValueRule::default()
        })
    );
    let refused = |pairs: &[(&str, &str)]| match LifetimeValueRule::from_vars(&Vars::fixed(pairs)) {
        Err(EnvError::Invalid { name, value, .. }) => (name, value),
        other => panic!("{pairs:?} should be refused, got {other:?}"),
    };
    assert_eq!(
        refused(&[("LTV_HIGH_MIN_SATISFACTION", "6")]),
        ("LTV_HIGH_MIN_SATISFACTION", "6".to_owned())
    );
    assert_eq!(
        refused(&[("LTV_MEDIUM_MIN_SERVICES", "three")]),
        ("LTV_MEDIUM_MIN_SERVICES", "three".to_owned())
    );
    assert_eq!(
        refused(&[("LTV_HIGH_MIN_SERVICES", "-1")]),
        ("LTV_HIGH_MIN_SERVICES", "-1".to_owned())
    );
    // Medium raised past the default high: the variable set is the one named.
    assert_eq!(
        refused(&[("LTV_MEDIUM_MIN_SERVICES", "7")]),
        ("LTV_MEDIUM_MIN_SERVICES", "7".to_owned())
    );
}
