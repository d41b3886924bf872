//! `MessageStore`: one decision per change, reached through claims that expire, that their
//! holder takes back at once, and that carry a kept draft to whoever claims next.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use referral_domain::ports::{
    Claim, Decision, Holder, MessageKey, MessageSlot, MessageStore, Recorded, ReferralMessage,
    SlotTaken, Suppression,
};

const LEASE: Duration = Duration::from_secs(60);

/// Whole seconds: stores may keep claim expiries to the second.
fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0)
        .single()
        .unwrap_or_default()
}

fn at(seconds: i64) -> DateTime<Utc> {
    start() + chrono::Duration::seconds(seconds)
}

fn key(prefix: &str, case: &str, version: u64) -> MessageKey {
    MessageKey {
        customer_email: format!("{prefix}{case}@example.com"),
        message_id: format!("v{version:012}"),
    }
}

fn message(key: &MessageKey, body: &str) -> ReferralMessage {
    ReferralMessage {
        customer_email: key.customer_email.clone(),
        message_id: key.message_id.clone(),
        trigger_event_id: Some("evt_1".to_owned()),
        features_version: 1,
        recommended_service: "lawn_care".to_owned(),
        body: body.to_owned(),
        prompt_version: 1,
        prompt_hash: "abcd".to_owned(),
        generator: "template".to_owned(),
        model_id: None,
        usage: None,
        fallback_reason: None,
        // Kept by every store as written: the trace a message is found by.
        trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".to_owned()),
        created_at: start(),
    }
}

fn suppression(key: &MessageKey, reason: &str) -> Suppression {
    Suppression {
        customer_email: key.customer_email.clone(),
        message_id: key.message_id.clone(),
        features_version: 1,
        trigger_event_id: None,
        reason: reason.to_owned(),
        trace_id: Some("0af7651916cd43dd8448eb211c80319c".to_owned()),
        decided_at: start(),
    }
}

async fn claim<M: MessageStore>(store: &M, key: &MessageKey, holder: &Holder, now: i64) -> Claim {
    store
        .claim(key, holder, at(now), LEASE)
        .await
        .unwrap_or_else(|error| panic!("claim {key:?}: {error}"))
}

async fn record<M: MessageStore>(
    store: &M,
    decision: Decision,
    holder: &Holder,
    now: i64,
) -> Recorded {
    store
        .record(decision, holder, at(now))
        .await
        .unwrap_or_else(|error| panic!("record: {error}"))
}

async fn decisions<M: MessageStore>(store: &M, key: &MessageKey) -> Vec<Decision> {
    store
        .decisions(&key.customer_email)
        .await
        .unwrap_or_else(|error| panic!("decisions: {error}"))
}

/// Runs every case against `store`. `prefix` keeps this run's customers apart.
pub async fn message_store_contract<M: MessageStore>(store: &M, prefix: &str) {
    a_live_claim_holds_off_others_but_not_its_holder(store, prefix).await;
    an_expired_claim_is_taken_over_with_its_draft(store, prefix).await;
    a_decision_is_recorded_once_and_ends_every_claim(store, prefix).await;
    a_decision_over_nothing_and_over_a_live_claim(store, prefix).await;
    a_released_claim_is_free_at_once_but_only_its_holder_releases(store, prefix).await;
    decisions_come_oldest_first(store, prefix).await;
    a_message_slot_yields_a_cooldown_later_and_to_its_own_retry(store, prefix).await;
    a_day_budget_counts_calls_up_to_its_limit(store, prefix).await;
}

async fn a_live_claim_holds_off_others_but_not_its_holder<M: MessageStore>(
    store: &M,
    prefix: &str,
) {
    let key = key(prefix, "live", 1);
    let (first, second) = (Holder::new("first"), Holder::new("second"));
    assert_eq!(
        claim(store, &key, &first, 0).await,
        Claim::Acquired { draft: None }
    );
    assert_eq!(
        claim(store, &key, &second, 30).await,
        Claim::Held { expires_at: at(60) },
        "a live claim must hold off another holder"
    );
    assert_eq!(
        claim(store, &key, &first, 30).await,
        Claim::Acquired { draft: None },
        "a holder takes its own claim back at once"
    );
    // Taking it back renewed the lease.
    assert_eq!(
        claim(store, &key, &second, 61).await,
        Claim::Held { expires_at: at(90) }
    );
}

async fn an_expired_claim_is_taken_over_with_its_draft<M: MessageStore>(store: &M, prefix: &str) {
    let key = key(prefix, "takeover", 1);
    let (crashed, next) = (Holder::new("crashed"), Holder::new("next"));
    let draft = message(&key, "written before the crash");
    claim(store, &key, &crashed, 0).await;
    assert!(
        store
            .keep_draft(&crashed, &draft)
            .await
            .expect("keep draft"),
        "the holder keeps a draft in its claim"
    );
    assert_eq!(
        claim(store, &key, &next, 60).await,
        Claim::Acquired {
            draft: Some(Box::new(draft.clone()))
        },
        "an expired claim is taken over, draft and all"
    );
    assert!(
        !store
            .keep_draft(&crashed, &draft)
            .await
            .expect("keep draft"),
        "a draft is kept only in one's own claim"
    );
}

async fn a_decision_is_recorded_once_and_ends_every_claim<M: MessageStore>(
    store: &M,
    prefix: &str,
) {
    let key = key(prefix, "decided", 1);
    let (holder, other) = (Holder::new("holder"), Holder::new("other"));
    let first = message(&key, "the message");
    claim(store, &key, &holder, 0).await;
    assert_eq!(
        record(store, Decision::Message(first.clone()), &holder, 1).await,
        Recorded::Recorded
    );
    for claimant in [&holder, &other] {
        assert_eq!(
            claim(store, &key, claimant, 1_000).await,
            Claim::Decided,
            "a redelivery finds the decision"
        );
    }
    let second = message(&key, "a second message for the same change");
    assert_eq!(
        record(store, Decision::Message(second), &holder, 2).await,
        Recorded::AlreadyDecided
    );
    assert_eq!(
        record(
            store,
            Decision::Suppressed(suppression(&key, "cooldown")),
            &other,
            3
        )
        .await,
        Recorded::AlreadyDecided,
        "a decision is never overwritten"
    );
    assert_eq!(decisions(store, &key).await, [Decision::Message(first)]);
}

async fn a_decision_over_nothing_and_over_a_live_claim<M: MessageStore>(store: &M, prefix: &str) {
    let suppressed = key(prefix, "suppressed", 1);
    let decider = Holder::new("decider");
    let reason = suppression(&suppressed, "cooldown");
    assert_eq!(
        record(store, Decision::Suppressed(reason.clone()), &decider, 0).await,
        Recorded::Recorded,
        "a decision needs no claim where there is nothing"
    );
    assert_eq!(
        decisions(store, &suppressed).await,
        [Decision::Suppressed(reason)]
    );

    let contested = key(prefix, "contested", 1);
    let (holder, late) = (Holder::new("holder"), Holder::new("late"));
    claim(store, &contested, &holder, 0).await;
    let late_message = message(&contested, "too early");
    assert_eq!(
        record(store, Decision::Message(late_message.clone()), &late, 30).await,
        Recorded::ClaimHeldElsewhere,
        "another's live claim stands"
    );
    assert_eq!(
        record(store, Decision::Message(late_message), &late, 60).await,
        Recorded::Recorded,
        "an expired claim does not"
    );
}

async fn a_released_claim_is_free_at_once_but_only_its_holder_releases<M: MessageStore>(
    store: &M,
    prefix: &str,
) {
    let key = key(prefix, "released", 1);
    let (holder, stranger, next) = (
        Holder::new("holder"),
        Holder::new("stranger"),
        Holder::new("next"),
    );
    claim(store, &key, &holder, 0).await;
    store
        .release(&key, &stranger, at(1))
        .await
        .expect("release");
    assert!(
        matches!(claim(store, &key, &next, 2).await, Claim::Held { .. }),
        "only the holder releases its claim"
    );
    store.release(&key, &holder, at(3)).await.expect("release");
    assert_eq!(
        claim(store, &key, &next, 3).await,
        Claim::Acquired { draft: None },
        "a released claim is free at once"
    );
}

async fn decisions_come_oldest_first<M: MessageStore>(store: &M, prefix: &str) {
    let holder = Holder::new("holder");
    let mut expected = Vec::new();
    for version in [10, 2, 1] {
        let key = key(prefix, "ordered", version);
        let decision = Decision::Message(message(&key, &format!("version {version}")));
        assert_eq!(
            record(store, decision.clone(), &holder, 0).await,
            Recorded::Recorded
        );
        expected.push(decision);
    }
    expected.reverse();
    assert_eq!(decisions(store, &key(prefix, "ordered", 1)).await, expected);
}

async fn a_message_slot_yields_a_cooldown_later_and_to_its_own_retry<M: MessageStore>(
    store: &M,
    prefix: &str,
) {
    let customer = format!("{prefix}slot@example.com");
    let customer = customer.as_str();
    let week = Duration::from_secs(7 * 86_400);
    let slot = |version, at| MessageSlot { version, at };
    let day = |n: i64| start() + chrono::Duration::days(n);
    let take = |wanted: MessageSlot| async move {
        store
            .take_message_slot(customer, wanted, week)
            .await
            .unwrap_or_else(|error| panic!("take the slot: {error}"))
    };
    let read = || async move {
        store
            .message_slot(customer)
            .await
            .unwrap_or_else(|error| panic!("read the slot: {error}"))
    };
    assert_eq!(read().await, None);
    assert_eq!(
        take(slot(1, day(0))).await,
        SlotTaken::Taken,
        "no holder yet"
    );
    let first = slot(1, day(0));
    assert_eq!(
        take(slot(2, day(6))).await,
        SlotTaken::Cooling { holder: first },
        "within the cooldown"
    );
    assert_eq!(take(first).await, SlotTaken::Taken, "a retry of the holder");
    assert_eq!(
        take(slot(3, day(7))).await,
        SlotTaken::Taken,
        "a cooldown later"
    );
    let third = slot(3, day(7));
    assert_eq!(read().await, Some(third));
    assert_eq!(
        take(slot(4, day(1))).await,
        SlotTaken::Cooling { holder: third },
        "an event older than the holder"
    );
    // Kept to the nanosecond: a cooldown short by one is a cooldown.
    let almost = day(14) - chrono::Duration::nanoseconds(1);
    assert!(matches!(
        take(slot(5, almost)).await,
        SlotTaken::Cooling { .. }
    ));
    assert_eq!(take(slot(5, day(14))).await, SlotTaken::Taken);
    assert_eq!(
        store.decisions(customer).await.expect("decisions"),
        [],
        "the slot is no decision"
    );
}

async fn a_day_budget_counts_calls_up_to_its_limit<M: MessageStore>(store: &M, prefix: &str) {
    // A day of its own per prefix: suites may share a table.
    let offset: u32 = prefix.bytes().map(u32::from).sum();
    let day = NaiveDate::from_ymd_opt(2001, 1, 1)
        .and_then(|day| day.checked_add_days(chrono::Days::new(u64::from(offset))))
        .expect("a day");
    let next = day.succ_opt().expect("the next day");
    let spend = |day, limit| async move {
        store
            .spend_model_call(day, limit)
            .await
            .unwrap_or_else(|error| panic!("spend: {error}"))
    };
    assert_eq!(store.model_calls(day).await.expect("calls"), 0);
    assert!(
        !spend(day, 0).await,
        "a zero budget allows not even the first call"
    );
    assert!(spend(day, 2).await);
    assert!(spend(day, 2).await);
    assert!(!spend(day, 2).await, "the limit holds");
    assert_eq!(store.model_calls(day).await.expect("calls"), 2);
    assert!(spend(next, 2).await, "each day has its own budget");
    assert!(spend(day, 3).await, "a raised limit counts on");
    assert_eq!(store.model_calls(day).await.expect("calls"), 3);
    assert_eq!(store.model_calls(next).await.expect("calls"), 1);
}

/// Retention, for stores that keep decisions one day (`expiring`) and for good (`kept`):
/// the table's TTL deletes a decision a day after it was recorded, and only then; the
/// message slot is not a decision and stays, so a cooldown longer than the retention still
/// holds. `sweep(now)` plays the TTL process on both stores: what DynamoDB does some time
/// after each item's expiry, done at `now` exactly.
pub async fn message_retention_contract<M: MessageStore>(
    expiring: &M,
    kept: &M,
    sweep: impl AsyncFn(DateTime<Utc>),
    prefix: &str,
) {
    let day = chrono::Duration::days(1);
    let holder = Holder::new("retention");
    // The stores may share a table: each has customers of its own.
    let (message_key, kept_key) = (key(prefix, "expiring", 1), key(prefix, "kept", 1));
    let customer = message_key.customer_email.as_str();
    for (store, message_key) in [(expiring, &message_key), (kept, &kept_key)] {
        claim(store, message_key, &holder, 0).await;
        let message = Decision::Message(message(message_key, "kept a day"));
        assert_eq!(record(store, message, &holder, 0).await, Recorded::Recorded);
        let suppressed_key = MessageKey {
            message_id: "v000000000002".to_owned(),
            ..message_key.clone()
        };
        let suppression = Decision::Suppressed(suppression(&suppressed_key, "cooldown"));
        assert_eq!(
            record(store, suppression, &holder, 0).await,
            Recorded::Recorded
        );
    }
    let week = Duration::from_secs(7 * 86_400);
    let slot = MessageSlot {
        version: 1,
        at: start(),
    };
    assert_eq!(
        expiring
            .take_message_slot(customer, slot, week)
            .await
            .expect("take the slot"),
        SlotTaken::Taken
    );

    sweep(start() + day - chrono::Duration::seconds(1)).await;
    assert_eq!(
        decisions(expiring, &message_key).await.len(),
        2,
        "a decision stays until its retention ends"
    );
    sweep(start() + day).await;
    assert_eq!(
        decisions(expiring, &message_key).await,
        Vec::new(),
        "messages and suppressions expire with their retention"
    );
    assert_eq!(
        decisions(kept, &kept_key).await.len(),
        2,
        "a store that keeps decisions for good keeps them"
    );
    assert_eq!(
        expiring
            .message_slot(customer)
            .await
            .expect("read the slot"),
        Some(slot),
        "the message slot outlives the message it was taken for"
    );
    let three_days_later = MessageSlot {
        version: 3,
        at: start() + chrono::Duration::days(3),
    };
    assert_eq!(
        expiring
            .take_message_slot(customer, three_days_later, week)
            .await
            .expect("take the slot"),
        SlotTaken::Cooling { holder: slot },
        "the cooldown holds after the message expired"
    );
    let eight_days_later = MessageSlot {
        version: 4,
        at: start() + chrono::Duration::days(8),
    };
    assert_eq!(
        expiring
            .take_message_slot(customer, eight_days_later, week)
            .await
            .expect("take the slot"),
        SlotTaken::Taken
    );
}
