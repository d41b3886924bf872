//! The fold of a customer's service events into their item.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::memory::{ArchiveAnswers, ArchivedKnowledge, ContentTag, IdHash, Recall, SplitPlan};
use super::{CustomerFeatures, EventKey, LifetimeValueRule, MemoryLimits, Trigger};
use crate::event::ServiceEvent;

/// What the fold did with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Applied,
    /// Already applied. `conflicting` when its content differs from the applied original
    /// (same id, other payload: a sender bug, refused and counted).
    Duplicate {
        conflicting: bool,
    },
    /// Dated at or before the seal of an item the previous release let forget: it may have
    /// been applied, so it is not (see [`super::AppliedMemory`]).
    Unprovable,
    /// Its archive bucket was not read, so it can be neither applied nor refused: the
    /// caller must read it and fold again.
    Unresolved,
}

/// The result of folding events into an item.
#[derive(Debug, Clone, PartialEq)]
pub struct Fold {
    /// The item after the fold: the input item when nothing was applied, else the item to
    /// write, its version bumped. `None` only for a new customer whose events all failed.
    pub item: Option<CustomerFeatures>,
    /// One disposition per input event, in input order.
    pub dispositions: Vec<Disposition>,
    /// Ids applied by this fold, to guard the write against a concurrent writer.
    pub applied_ids: Vec<Arc<str>>,
    /// How many of them were applied below the floor (found absent from the archive).
    pub applied_late: usize,
}

impl Fold {
    /// Whether the fold applied anything, i.e. whether there is something to write.
    pub fn changed(&self) -> bool {
        !self.applied_ids.is_empty()
    }

    /// The item to write, if the fold applied anything.
    pub fn into_next(self) -> Option<CustomerFeatures> {
        if self.changed() { self.item } else { None }
    }
}

/// What a writer learnt of the archive for this fold: answers for events below the floor,
/// pending entries it archived, and the split it prepared.
#[derive(Debug, Clone, Copy, Default)]
pub struct ArchiveView<'a> {
    pub answers: Option<&'a ArchiveAnswers>,
    pub archived: Option<&'a ArchivedKnowledge>,
    pub split: Option<SplitPlan>,
}

/// Folds one customer's events into its current item (`None` for a new customer), with no
/// archive: for items that never archived anything (a reference fold, fixtures), where
/// everything applied stays in the item; bands by the default lifetime-value rule.
pub fn fold_events(
    current: Option<CustomerFeatures>,
    events: &[&ServiceEvent],
    limits: MemoryLimits,
) -> Fold {
    fold_events_with(
        current,
        events,
        limits,
        ArchiveView::default(),
        &LifetimeValueRule::default(),
    )
}

/// The archive buckets to read before folding `events` into `current`, each with the ids it
/// must answer for.
pub fn archive_questions(
    current: Option<&CustomerFeatures>,
    events: &[&ServiceEvent],
    answers: &ArchiveAnswers,
) -> BTreeMap<u32, Vec<IdHash>> {
    let mut questions: BTreeMap<u32, Vec<IdHash>> = BTreeMap::new();
    let Some(item) = current else {
        return questions;
    };
    for event in events {
        let id = IdHash::of(&event.event_id);
        let tag = ContentTag::of(event.content_hash);
        if let Recall::AskArchive { bucket } =
            item.memory.recall(id, tag, event.occurred_at, answers)
        {
            questions.entry(bucket).or_default().push(id);
        }
    }
    questions
}

/// Whether folding `events` into `current` would apply any of them (given `answers` for
/// those below the floor), so that a writer does archive work only for a write it makes.
pub fn has_new(
    current: Option<&CustomerFeatures>,
    events: &[&ServiceEvent],
    answers: &ArchiveAnswers,
) -> bool {
    let Some(item) = current else {
        return !events.is_empty();
    };
    events.iter().any(|event| {
        let recall = item.memory.recall(
            IdHash::of(&event.event_id),
            ContentTag::of(event.content_hash),
            event.occurred_at,
            answers,
        );
        matches!(recall, Recall::New { .. })
    })
}

/// [`fold_events`] with what the writer learnt of the archive (see [`ArchiveView`]), banding
/// by `rule`. The item is taken by value: the enricher folds the item it holds and writes
/// it, with no copy. All events must carry that customer's normalised e-mail.
pub fn fold_events_with(
    current: Option<CustomerFeatures>,
    events: &[&ServiceEvent],
    limits: MemoryLimits,
    archive: ArchiveView<'_>,
    rule: &LifetimeValueRule,
) -> Fold {
    let base_version = current.as_ref().map_or(0, |item| item.version);
    let no_answers = ArchiveAnswers::default();
    let answers = archive.answers.unwrap_or(&no_answers);
    let mut item = current;
    let mut dispositions = Vec::with_capacity(events.len());
    let mut applied_ids = Vec::new();
    let mut applied_late = 0;
    let mut trigger: Option<(EventKey, Option<u32>)> = None;

    for event in events {
        let id = IdHash::of(&event.event_id);
        let tag = ContentTag::of(event.content_hash);
        let recall = item.as_ref().map_or(Recall::New { late: false }, |known| {
            known.memory.recall(id, tag, event.occurred_at, answers)
        });
        let late = match recall {
            Recall::Applied { same_content } => {
                dispositions.push(Disposition::Duplicate {
                    conflicting: !same_content,
                });
                continue;
            }
            Recall::Unprovable => {
                dispositions.push(Disposition::Unprovable);
                continue;
            }
            Recall::AskArchive { .. } => {
                dispositions.push(Disposition::Unresolved);
                continue;
            }
            Recall::New { late } => late,
        };
        let key = EventKey::of(event);
        let applied = item.get_or_insert_with(|| CustomerFeatures::first(event));
        applied.absorb(event, &key);
        applied.memory.remember(id, tag, event.occurred_at, late);
        applied_ids.push(Arc::clone(&event.event_id));
        applied_late += usize::from(late);
        dispositions.push(Disposition::Applied);
        if trigger.as_ref().is_none_or(|(latest, _)| *latest < key) {
            let score = event.service.as_ref().and_then(|s| s.satisfaction_micros);
            trigger = Some((key, score));
        }
    }

    if let Some(item) = item.as_mut().filter(|_| !applied_ids.is_empty()) {
        item.version = base_version + 1;
        item.trigger = trigger.as_ref().map(|(key, score)| Trigger {
            occurred_at: key.occurred_at,
            score_micros: *score,
        });
        item.trigger_event_id = trigger.map(|(key, _)| key.event_id.to_string());
        item.refresh_derived(rule);
        item.memory.settle(archive.archived, archive.split);
        let watermark = item.last_updated;
        item.memory.prune(watermark, limits);
    }
    Fold {
        item,
        dispositions,
        applied_ids,
        applied_late,
    }
}
