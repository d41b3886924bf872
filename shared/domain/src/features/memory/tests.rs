use super::*;
use chrono::TimeZone;

fn at(day: i64, minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
        + chrono::Duration::days(day)
        + chrono::Duration::minutes(minute)
}

fn limits(days: i64, keep_at_least: usize) -> MemoryLimits {
    MemoryLimits {
        span: chrono::Duration::days(days),
        keep_at_least,
        keep_at_most: 4096,
        pending_most: 4096,
        ..MemoryLimits::default()
    }
}

fn tag(n: u16) -> ContentTag {
    ContentTag(n)
}

fn id(n: impl fmt::Display) -> IdHash {
    IdHash::of(&format!("evt_{n}"))
}

fn no_answers() -> ArchiveAnswers {
    ArchiveAnswers::default()
}

/// A memory whose pending entries were all archived under its layout.
fn archived(mut memory: AppliedMemory) -> AppliedMemory {
    let known = ArchivedKnowledge {
        layout: memory.layout(),
        events: memory.pending().iter().copied().collect(),
    };
    memory.settle(Some(&known), None);
    memory
}

#[test]
fn encoding_round_trips_and_stays_near_eleven_bytes_a_recent_event() {
    let mut memory = AppliedMemory::default();
    for i in 0..300 {
        memory.remember(id(i), tag(i as u16 + 1), at(0, i * 144), false);
    }
    memory.prune(at(0, 300 * 144), limits(20, 200));
    memory.seal_at(at(-40, 7));
    assert!(!memory.pending().is_empty());
    let bytes = memory.encode();
    assert_eq!(bytes.len(), memory.encoded_len());
    assert!(bytes.len() <= 300 * 11 + 24, "{} bytes", bytes.len());
    assert_eq!(AppliedMemory::decode(&bytes), Ok(memory));
}

#[test]
fn corrupt_bytes_are_refused_not_misread() {
    let mut memory = AppliedMemory::default();
    memory.remember(id("a"), tag(1), at(0, 0), false);
    memory.remember(id("b"), tag(2), at(0, 5), false);
    memory.remember(id("c"), tag(3), at(-9, 0), true);
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
fn below_the_floor_the_archive_decides_once_it_holds_anything() {
    let mut memory = AppliedMemory::default();
    for day in 0..10 {
        memory.remember(id(day), tag(7), at(day, 30), false);
    }
    memory.prune(at(9, 30), limits(3, 2));
    // Days 0 to 6 are three days or more behind the watermark (day 9).
    assert_eq!(memory.len(), 3);
    assert_eq!(memory.pending().len(), 7);
    assert_eq!(memory.floor(), Some(at(6, 30)));
    let answers = no_answers();
    // Recent and pending entries are duplicates without asking anyone.
    for day in [8, 2] {
        assert_eq!(
            memory.recall(id(day), tag(7), at(day, 30), &answers),
            Recall::Applied { same_content: true }
        );
    }
    assert_eq!(
        memory.recall(id(8), tag(8), at(8, 30), &answers),
        Recall::Applied {
            same_content: false
        }
    );
    // Nothing archived yet: an unknown event below the floor is new, late.
    assert_eq!(
        memory.recall(id("x"), tag(7), at(2, 0), &answers),
        Recall::New { late: true }
    );
    assert_eq!(
        memory.recall(id("x"), tag(7), at(6, 31), &answers),
        Recall::New { late: false }
    );

    let memory = archived(memory);
    assert_eq!((memory.pending().len(), memory.archived()), (0, 7));
    let bucket = memory.layout().bucket_of(id(2));
    assert_eq!(
        memory.recall(id(2), tag(7), at(2, 30), &answers),
        Recall::AskArchive { bucket }
    );
    // The floor's own minute asks too: the event let go may be in it.
    assert!(matches!(
        memory.recall(id("x"), tag(7), at(6, 30), &answers),
        Recall::AskArchive { .. }
    ));
    let mut answers = ArchiveAnswers::default();
    answers.record(
        &[ArchivedEvent {
            id: id(2),
            tag: tag(7),
        }],
        [id(2), id("x")],
    );
    assert_eq!(
        memory.recall(id(2), tag(9), at(2, 30), &answers),
        Recall::Applied {
            same_content: false
        }
    );
    assert_eq!(
        memory.recall(id("x"), tag(7), at(2, 30), &answers),
        Recall::New { late: true }
    );
}

#[test]
fn a_late_event_is_remembered_as_pending_and_never_below_the_floor_twice() {
    let mut memory = AppliedMemory::default();
    for day in 0..10 {
        memory.remember(id(day), tag(1), at(day, 0), false);
    }
    memory.prune(at(9, 0), limits(3, 2));
    let floor = memory.floor();
    memory.remember(id("late"), tag(1), at(-300, 0), true);
    assert_eq!(
        memory.floor(),
        floor,
        "a late event must not move the floor"
    );
    assert_eq!(
        memory.recall(id("late"), tag(1), at(-300, 0), &no_answers()),
        Recall::Applied { same_content: true }
    );
}

#[test]
fn the_latest_few_are_kept_however_old() {
    let mut memory = AppliedMemory::default();
    for year in 0..5 {
        memory.remember(id(year), tag(1), at(365 * year, 0), false);
    }
    memory.prune(at(365 * 4, 0), limits(28, 3));
    assert_eq!(memory.len(), 3);
    assert_eq!(memory.floor(), Some(at(365, 0)));
}

#[test]
fn a_burst_is_capped_by_keep_at_most_and_pending_by_its_bound() {
    let mut memory = AppliedMemory::default();
    for i in 0..50 {
        memory.remember(id(i), tag(1), at(0, i), false);
    }
    let bounded = MemoryLimits {
        span: chrono::Duration::days(28),
        keep_at_least: 5,
        keep_at_most: 20,
        pending_most: 40,
        ..MemoryLimits::default()
    };
    memory.prune(at(0, 50), bounded);
    // Over the cap always moves; older than the span moves only while pending has room.
    assert_eq!(memory.len(), 20);
    assert_eq!(memory.floor(), Some(at(0, 29)));
    for i in 50..80 {
        memory.remember(id(i), tag(1), at(0, i), false);
    }
    let roomy = MemoryLimits {
        keep_at_most: 100,
        span: chrono::Duration::minutes(10),
        ..bounded
    };
    memory.prune(at(0, 80), roomy);
    assert_eq!(memory.pending().len(), 40);
    assert_eq!(
        memory.len(),
        40,
        "by age, only as many moved as pending had room for"
    );
}

#[test]
fn seconds_round_up_so_the_floor_covers_the_event_let_go() {
    let mut memory = AppliedMemory::default();
    let odd = at(0, 0) + chrono::Duration::seconds(17);
    memory.remember(id("odd"), tag(1), odd, false);
    memory.prune(at(100, 0), limits(1, 0));
    assert_eq!(
        memory.recall(id("other"), tag(1), odd, &no_answers()),
        Recall::New { late: true }
    );
    assert!(memory.floor().is_some_and(|floor| floor >= odd));
}

#[test]
fn linear_hashing_sends_each_id_to_one_bucket_and_a_split_moves_only_its_half() {
    let ids: Vec<IdHash> = (0..2000).map(id).collect();
    let mut layout = ArchiveLayout::default();
    for _ in 0..37 {
        let plan = layout.next_split().expect("room to grow");
        let after = layout.advanced();
        for &each in &ids {
            let before = layout.bucket_of(each);
            let now = after.bucket_of(each);
            if before == plan.source {
                let expected = if plan.moves(each) {
                    plan.target
                } else {
                    plan.source
                };
                assert_eq!(now, expected);
            } else {
                assert_eq!(now, before, "a split moved an id of another bucket");
            }
            assert!(u64::from(now) < after.buckets());
        }
        layout = after;
    }
    assert_eq!(layout.buckets(), 38);
}

#[test]
fn settling_drops_only_what_was_archived_under_the_same_layout() {
    let mut memory = AppliedMemory::default();
    for day in 0..6 {
        memory.remember(id(day), tag(1), at(day, 0), true);
    }
    let half: HashSet<ArchivedEvent> = memory.pending()[..3].iter().copied().collect();
    let mut other_layout = ArchivedKnowledge {
        layout: ArchiveLayout::default().advanced(),
        events: half.clone(),
    };
    memory.settle(Some(&other_layout), None);
    assert_eq!(
        memory.pending().len(),
        6,
        "knowledge of another layout was trusted"
    );
    other_layout.layout = memory.layout();
    memory.settle(Some(&other_layout), None);
    assert_eq!((memory.pending().len(), memory.archived()), (3, 3));
    let plan = memory.split_due(
        MemoryLimits {
            bucket_target: 1,
            ..MemoryLimits::default()
        },
        0,
    );
    let plan = plan.expect("three archived in one bucket is over a target of one");
    memory.settle(None, Some(plan));
    assert_eq!(memory.layout().buckets(), 2);
}

#[test]
fn an_item_of_the_release_that_forgot_is_sealed_at_its_floor() {
    // Version 1: a floor, then entries with one tag byte.
    let minute = minute_rounded_up(at(10, 0));
    let mut bytes = vec![FORGETFUL_FORMAT_VERSION, 1];
    push_varint(&mut bytes, zigzag(minute));
    push_varint(&mut bytes, 1);
    push_varint(&mut bytes, zigzag(minute_rounded_up(at(20, 0))));
    bytes.extend_from_slice(&id("kept").bytes());
    bytes.push(0xab);
    let memory = AppliedMemory::decode(&bytes).expect("the old format reads");
    assert_eq!(memory.seal(), Some(at(10, 0)));
    let answers = no_answers();
    assert_eq!(
        memory.recall(id("old"), tag(1), at(5, 0), &answers),
        Recall::Unprovable
    );
    assert_eq!(
        memory.recall(id("newer"), tag(1), at(15, 0), &answers),
        Recall::New { late: false }
    );
    // The kept entry's 8-bit tag still tells a redelivery from a conflicting one.
    let redelivered = ContentTag(0xab00 | 0x42);
    assert_eq!(
        memory.recall(id("kept"), redelivered, at(20, 0), &answers),
        Recall::Applied { same_content: true }
    );
    assert_eq!(
        memory.recall(id("kept"), ContentTag(0xac42), at(20, 0), &answers),
        Recall::Applied {
            same_content: false
        }
    );
    // Written back in today's format, the seal stays.
    let again = AppliedMemory::decode(&memory.encode()).expect("round trip");
    assert_eq!(again, memory);
}
