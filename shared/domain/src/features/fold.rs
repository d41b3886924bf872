//! The fold of a customer's service events into their item.

use std::sync::Arc;

use super::memory::{IdHash, Recall, content_tag};
use super::{CustomerFeatures, DedupeWindow, EventKey, Trigger};
use crate::event::ServiceEvent;

/// What the fold did with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Applied,
    /// Already applied. `conflicting` when its content differs from the applied original
    /// (same id, other payload: a sender bug worth counting).
    Duplicate {
        conflicting: bool,
    },
    /// Not remembered, and older than what the memory can vouch for: it may have been
    /// applied and forgotten, so it is not applied (see [`super::AppliedMemory`]).
    Stale,
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

/// Folds one customer's events into its current item (`None` for a new customer). The item
/// is taken by value: the enricher folds the item it holds and writes it, with no copy.
/// All events must carry that customer's normalised e-mail.
pub fn fold_events(
    current: Option<CustomerFeatures>,
    events: &[&ServiceEvent],
    window: DedupeWindow,
) -> Fold {
    fold_events_with(current, events, window, |_| false)
}

/// [`fold_events`], where `apply_unproven(i)` says whether the `i`-th event is applied even
/// when the memory cannot prove it new: an operator's deliberate replay of a stale event.
/// It is still refused when the memory remembers it.
pub fn fold_events_with(
    current: Option<CustomerFeatures>,
    events: &[&ServiceEvent],
    window: DedupeWindow,
    apply_unproven: impl Fn(usize) -> bool,
) -> Fold {
    let base_version = current.as_ref().map_or(0, |item| item.version);
    let mut item = current;
    let mut dispositions = Vec::with_capacity(events.len());
    let mut applied_ids = Vec::new();
    let mut trigger: Option<(EventKey, Option<u32>)> = None;

    for (index, event) in events.iter().enumerate() {
        let id = IdHash::of(&event.event_id);
        let tag = content_tag(event.content_hash);
        let recall = item.as_ref().map_or(Recall::New, |known| {
            known.memory.recall(id, tag, event.occurred_at)
        });
        match recall {
            Recall::Applied { same_content } => {
                dispositions.push(Disposition::Duplicate {
                    conflicting: !same_content,
                });
                continue;
            }
            Recall::Unproven if !apply_unproven(index) => {
                dispositions.push(Disposition::Stale);
                continue;
            }
            Recall::New | Recall::Unproven => {}
        }
        let key = EventKey::of(event);
        let applied = item.get_or_insert_with(|| CustomerFeatures::first(event));
        applied.absorb(event, &key);
        // An event applied below the floor is remembered as of the watermark, so the memory
        // keeps it a whole span and a second replay of it is still caught.
        let remembered_at = match recall {
            Recall::Unproven => applied.last_updated,
            _ => event.occurred_at,
        };
        applied.memory.remember(id, tag, remembered_at);
        applied_ids.push(Arc::clone(&event.event_id));
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
        item.refresh_derived();
        let watermark = item.last_updated;
        item.memory.prune(watermark, window);
    }
    Fold {
        item,
        dispositions,
        applied_ids,
    }
}
