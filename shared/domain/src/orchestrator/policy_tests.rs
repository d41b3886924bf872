use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

use super::*;
use crate::env::{EnvError, Vars};
use crate::event::{ServiceEvent, Webhook, parse_webhook_value};
use crate::features::{MemoryLimits, fold_events};

fn day(n: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
        .single()
        .unwrap_or_default()
        + chrono::Duration::days(n)
}

fn event(id: &str, at: DateTime<Utc>, score: Option<f64>) -> ServiceEvent {
    let mut service = json!({ "id": format!("svc_{id}"), "type": "lawn_care" });
    if let Some(score) = score {
        service["satisfaction_score"] = json!(score);
    }
    let body = json!({
        "event_id": id,
        "event_type": "service.completed",
        "occurred_at": at.to_rfc3339(),
        "customer": { "email": "ann@example.com" },
        "service": service,
    });
    match parse_webhook_value(&body) {
        Ok(Webhook::ServiceCompleted(event)) => *event,
        other => panic!("fixture refused: {other:?}"),
    }
}

/// The item after each event in turn, one write each.
fn changes(events: &[ServiceEvent]) -> Vec<CustomerFeatures> {
    let mut item = None;
    let mut items = Vec::new();
    for event in events {
        let fold = fold_events(item.take(), &[event], MemoryLimits::default());
        let next = fold.into_next().unwrap_or_else(|| panic!("applied"));
        items.push(next.clone());
        item = Some(next);
    }
    items
}

fn score(text: &str) -> u32 {
    parse_score(text).unwrap_or_else(|error| panic!("{error}"))
}

#[test]
fn the_defaults_let_every_change_through_to_the_model() {
    let policy = MessagePolicy::default();
    let unhappy = changes(&[event("e1", day(0), Some(0.0))]);
    assert_eq!(policy.floor(&unhappy[0]), None);
    assert!(!policy.keeps_customer_state());
    assert_eq!(
        policy.preview(&unhappy[0], None, u64::MAX),
        (Verdict::Message, ModelCall::Allowed)
    );
    let unset = Vars::new(|_: &str| None);
    assert_eq!(
        MessagePolicy::from_vars(&unset),
        Ok(MessagePolicy::default())
    );
    let blank = Vars::new(|_: &str| Some("  ".to_owned()));
    assert_eq!(
        MessagePolicy::from_vars(&blank),
        Ok(MessagePolicy::default())
    );
}

#[test]
fn the_average_floor_holds_until_the_average_recovers_and_is_exact_at_the_threshold() {
    let policy = MessagePolicy {
        min_satisfaction_avg: Some(score("3.5")),
        ..MessagePolicy::default()
    };
    let scores = [5.0, 1.0, 1.0, 5.0, 5.0, 4.0];
    let events: Vec<ServiceEvent> = scores
        .iter()
        .enumerate()
        .map(|(i, s)| event(&format!("e{i}"), day(i as i64), Some(*s)))
        .collect();
    let verdicts: Vec<Option<SuppressionReason>> =
        changes(&events).iter().map(|c| policy.floor(c)).collect();
    // Averages: 5, 3, 2.33, 3, 3.4, 3.5 (exactly the floor: allowed).
    let low = Some(SuppressionReason::Satisfaction);
    assert_eq!(verdicts, [None, low, low, low, low, None]);
    // No score yet: the assumed 3.5.
    let unscored = changes(&[event("e1", day(0), None)]);
    assert_eq!(policy.floor(&unscored[0]), None);
}

#[test]
fn the_trigger_floor_suppresses_at_or_below_and_ignores_unscored_triggers() {
    let policy = MessagePolicy {
        min_trigger_score: Some(score("2")),
        ..MessagePolicy::default()
    };
    let items = changes(&[
        event("e1", day(0), Some(2.0)),
        event("e2", day(1), Some(2.5)),
        event("e3", day(2), None),
        event("e4", day(3), Some(0.0)),
    ]);
    let verdicts: Vec<_> = items.iter().map(|item| policy.floor(item)).collect();
    let low = Some(SuppressionReason::TriggerScore);
    assert_eq!(verdicts, [low, None, None, low]);
}

#[test]
fn a_change_takes_the_slot_a_cooldown_after_the_holder_or_as_the_holder() {
    let week = Duration::from_secs(7 * 86_400);
    let holder = MessageSlot {
        version: 4,
        at: day(10),
    };
    let at = |version, n| MessageSlot {
        version,
        at: day(n),
    };
    assert!(!holder.yields_to(&at(5, 16), week));
    assert!(
        holder.yields_to(&at(5, 17), week),
        "exactly a cooldown later"
    );
    assert!(holder.yields_to(&at(4, 10), week), "its own retry");
    assert!(!holder.yields_to(&at(6, 1), week), "a late event");

    let policy = MessagePolicy {
        cooldown: Some(week),
        ..MessagePolicy::default()
    };
    let items = changes(&[event("e1", day(10), Some(5.0)), event("e2", day(16), None)]);
    let slot = Some(MessagePolicy::slot_of(&items[0]));
    assert_eq!(
        slot.map(|slot| slot.at),
        Some(day(10)),
        "the trigger's time"
    );
    assert_eq!(
        policy.preview(&items[1], slot, 0).0,
        Verdict::Suppressed(SuppressionReason::Cooldown)
    );
    assert_eq!(policy.preview(&items[1], None, 0).0, Verdict::Message);
}

#[test]
fn the_budget_preview_turns_to_the_template_at_the_limit() {
    let policy = MessagePolicy {
        daily_model_budget: Some(10),
        ..MessagePolicy::default()
    };
    let item = &changes(&[event("e1", day(0), Some(5.0))])[0];
    assert_eq!(policy.preview(item, None, 9).1, ModelCall::Allowed);
    assert_eq!(policy.preview(item, None, 10).1, ModelCall::OverBudget);
}

fn vars(pairs: &[(&str, &str)]) -> Vars<impl Fn(&str) -> Option<String>> {
    Vars::fixed(pairs)
}

#[test]
fn settings_read_from_the_environment_and_refuse_nonsense_by_name() {
    let policy = MessagePolicy::from_vars(&vars(&[
        (ENV_COOLDOWN, "7d"),
        (ENV_MIN_SATISFACTION_AVG, "3.5"),
        (ENV_MIN_TRIGGER_SCORE, " 2 "),
        (ENV_DAILY_CALL_BUDGET, "5000"),
    ]));
    assert_eq!(
        policy,
        Ok(MessagePolicy {
            cooldown: Some(Duration::from_secs(604_800)),
            min_satisfaction_avg: Some(3_500_000),
            min_trigger_score: Some(2_000_000),
            daily_model_budget: Some(5000),
        })
    );
    for (name, value) in [
        (ENV_COOLDOWN, "7"),
        (ENV_COOLDOWN, "0d"),
        (ENV_MIN_SATISFACTION_AVG, "6"),
        (ENV_MIN_TRIGGER_SCORE, "high"),
        (ENV_DAILY_CALL_BUDGET, "-1"),
    ] {
        match MessagePolicy::from_vars(&vars(&[(name, value)])) {
            Err(EnvError::Invalid { name: named, .. }) => assert_eq!(named, name),
            other => panic!("{name}={value}: {other:?}"),
        }
    }
    assert_eq!(format_score(3_500_000), "3.5");
}
