use super::*;
use chrono::TimeZone;

fn at(day: i64, minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
        + chrono::Duration::days(day)
        + chrono::Duration::minutes(minute)
}

fn window(days: i64, keep_at_least: usize) -> DedupeWindow {
    DedupeWindow {
        span: chrono::Duration::days(days),
        keep_at_least,
        keep_at_most: 4096,
    }
}

#[test]
fn encoding_round_trips_and_stays_near_ten_bytes_an_event() {
    let mut memory = AppliedMemory::default();
    for i in 0..300 {
        memory.remember(IdHash::of(&format!("evt_{i}")), i as u8, at(0, i * 144));
    }
    memory.raise_floor(at(-40, 7));
    let bytes = memory.encode();
    assert_eq!(bytes.len(), memory.encoded_len());
    assert!(bytes.len() <= 300 * 10 + 16, "{} bytes", bytes.len());
    assert_eq!(AppliedMemory::decode(&bytes), Ok(memory));
}

#[test]
fn corrupt_bytes_are_refused_not_misread() {
    let mut memory = AppliedMemory::default();
    memory.remember(IdHash::of("a"), 1, at(0, 0));
    memory.remember(IdHash::of("b"), 2, at(0, 5));
    let bytes = memory.encode();
    for cut in 0..bytes.len() {
        assert!(
            AppliedMemory::decode(&bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    let mut wrong_version = bytes.clone();
    wrong_version[0] = 9;
    assert!(AppliedMemory::decode(&wrong_version).is_err());
    let mut trailing = bytes;
    trailing.push(0);
    assert!(AppliedMemory::decode(&trailing).is_err());
}

#[test]
fn recall_tells_duplicates_new_and_unproven_events_apart() {
    let mut memory = AppliedMemory::default();
    for day in 0..10 {
        memory.remember(IdHash::of(&format!("evt_{day}")), 7, at(day, 30));
    }
    memory.prune(at(9, 30), window(3, 2));
    // Days 0 to 6 are three days or more behind the watermark (day 9).
    assert_eq!(memory.len(), 3);
    assert_eq!(memory.floor(), Some(at(6, 30)));
    assert_eq!(
        memory.recall(IdHash::of("evt_8"), 7, at(8, 30)),
        Recall::Applied { same_content: true }
    );
    assert_eq!(
        memory.recall(IdHash::of("evt_8"), 8, at(8, 30)),
        Recall::Applied {
            same_content: false
        }
    );
    assert_eq!(
        memory.recall(IdHash::of("evt_2"), 7, at(2, 30)),
        Recall::Unproven
    );
    // The floor's own minute is unproven too: the forgotten event may be in it.
    assert_eq!(
        memory.recall(IdHash::of("x"), 7, at(6, 30)),
        Recall::Unproven
    );
    assert_eq!(memory.recall(IdHash::of("x"), 7, at(6, 31)), Recall::New);
}

#[test]
fn the_latest_few_are_kept_however_old() {
    let mut memory = AppliedMemory::default();
    for year in 0..5 {
        memory.remember(IdHash::of(&format!("evt_{year}")), 0, at(365 * year, 0));
    }
    memory.prune(at(365 * 4, 0), window(28, 3));
    assert_eq!(memory.len(), 3);
    assert_eq!(memory.floor(), Some(at(365, 0)));
}

#[test]
fn a_burst_is_capped_by_keep_at_most() {
    let mut memory = AppliedMemory::default();
    for i in 0..50 {
        memory.remember(IdHash::of(&format!("evt_{i}")), 0, at(0, i));
    }
    memory.prune(
        at(0, 50),
        DedupeWindow {
            span: chrono::Duration::days(28),
            keep_at_least: 5,
            keep_at_most: 20,
        },
    );
    assert_eq!(memory.len(), 20);
    assert_eq!(memory.floor(), Some(at(0, 29)));
}

#[test]
fn seconds_round_up_so_the_floor_covers_the_forgotten_event() {
    let mut memory = AppliedMemory::default();
    let odd = at(0, 0) + chrono::Duration::seconds(17);
    memory.remember(IdHash::of("odd"), 0, odd);
    memory.prune(at(100, 0), window(1, 0));
    assert_eq!(memory.recall(IdHash::of("other"), 0, odd), Recall::Unproven);
    assert!(memory.floor().is_some_and(|floor| floor >= odd));
}
