//! What a customer's item remembers of the events applied to it, and where it sends what it
//! cannot keep: exactly once for events of any age, at a few bytes an event in the item.
//!
//! ## Where an applied event is remembered
//! Every applied event is in exactly one of three places, and an event in none of them was
//! never applied:
//! - **recent**: the item keeps every applied event whose `occurred_at` lies within
//!   [`MemoryLimits::span`] of the customer's latest (the watermark), and at least the
//!   [`MemoryLimits::keep_at_least`] latest, at most [`MemoryLimits::keep_at_most`]. A
//!   redelivery of one of these costs nothing to recognise.
//! - **pending**: what left *recent* is kept in the item, in a short list, until it is known
//!   to be in the archive. Its latest `occurred_at` is the **floor**.
//! - **archive**: small per-customer buckets in a table of their own (see [`ArchiveLayout`]),
//!   written only when pending entries leave the item.
//!
//! An incoming event not in the item is new when it occurred after the floor (had it been
//! applied, it would be recent). At or before the floor, its bucket is read (one strongly
//! consistent read) unless nothing was ever archived.
//!
//! ## The write order that keeps it exact
//! An entry enters the archive only once a committed version of the item holds it (as
//! pending), and leaves the item only in a write made after it was added to the archive,
//! under the layout that write commits. A crash between any two writes therefore leaves the
//! entry in the item, the archive, or both; never in neither, and an event is never archived
//! before it is applied. Adding to a bucket is a set union, so doing it twice is harmless.
//!
//! ## Items from the release that forgot
//! The previous release let entries go for good below its floor. An item it wrote keeps that
//! floor as a **seal**: an event at or before the seal that is in none of the three places may
//! have been applied and forgotten, and nothing can tell, so it is refused as
//! [`Recall::Unprovable`] (never applied twice). Nothing this release writes is sealed.
//!
//! ## Encoding
//! An entry is a 56-bit hash of the event id and a 16-bit tag of its content (tells a plain
//! redelivery from a conflicting one, same id with other content, 65,535 times in 65,536).
//! Recent entries also keep `occurred_at` in whole minutes, rounded *up* so that the floor
//! never falls below a real event, delta-encoded in time order: about 11 bytes an event.
//! Pending and archived entries are 9 bytes. Two ids colliding in 56 bits would make a new
//! event look like a duplicate: about 10⁻¹¹ per event for a customer with 20,000 events.

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

const FORMAT_VERSION: u8 = 2;
/// The previous release's format: 8-bit tags, no archive, a floor below which ids were lost.
const FORGETFUL_FORMAT_VERSION: u8 = 1;
const SECONDS_PER_MINUTE: i64 = 60;
const ID_HASH_BYTES: usize = 7;
const TAG_BYTES: usize = 2;
/// Bytes of one pending or archived entry.
pub const ARCHIVED_EVENT_BYTES: usize = ID_HASH_BYTES + TAG_BYTES;
/// Beyond this level the layout stops splitting (16 million buckets a customer).
const MAX_LEVEL: u8 = 24;

/// How much the item keeps, and when its overflow goes to the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLimits {
    /// Applied events within this span of the watermark stay in the item, so redeliveries
    /// of them cost no read (a cost setting: older ones are found in the archive).
    pub span: chrono::Duration,
    /// The latest this many stay in the item whatever their age, so a customer with a short
    /// history never needs the archive.
    pub keep_at_least: usize,
    /// A hard bound on recent entries, so that no burst pushes the item past a few KB.
    pub keep_at_most: usize,
    /// Pending entries are archived before the next write once there are this many.
    pub archive_at: usize,
    /// Recent entries older than the span move to pending only while pending stays under
    /// this (entries over `keep_at_most` always move): it bounds the pending list's bytes.
    pub pending_most: usize,
    /// The layout splits a bucket once the archive holds more than this many entries per
    /// bucket on average, which keeps every bucket under about 1 KB (one read unit, one
    /// write unit).
    pub bucket_target: u64,
}

impl MemoryLimits {
    pub const DEFAULT_SPAN_DAYS: i64 = 28;
}

impl Default for MemoryLimits {
    fn default() -> Self {
        MemoryLimits {
            span: chrono::Duration::days(Self::DEFAULT_SPAN_DAYS),
            keep_at_least: 16,
            keep_at_most: 160,
            archive_at: 24,
            pending_most: 48,
            bucket_target: 40,
        }
    }
}

/// An event id as the memory knows it: 56 bits of its SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IdHash(u64);

impl IdHash {
    pub fn of(event_id: &str) -> Self {
        let digest = Sha256::digest(event_id.as_bytes());
        let mut bytes = [0u8; 8];
        bytes[8 - ID_HASH_BYTES..].copy_from_slice(&digest[..ID_HASH_BYTES]);
        IdHash(u64::from_be_bytes(bytes))
    }

    fn bytes(self) -> [u8; ID_HASH_BYTES] {
        let mut out = [0u8; ID_HASH_BYTES];
        out.copy_from_slice(&self.0.to_be_bytes()[8 - ID_HASH_BYTES..]);
        out
    }

    fn from_bytes(bytes: &[u8]) -> Self {
        let mut full = [0u8; 8];
        full[8 - ID_HASH_BYTES..].copy_from_slice(bytes);
        IdHash(u64::from_be_bytes(full))
    }
}

/// 16 bits of an event's content hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContentTag(u16);

impl ContentTag {
    pub fn of(content_hash: u64) -> Self {
        ContentTag((content_hash >> 48) as u16)
    }

    /// Whether an event carrying `incoming` has the content this tag was kept of. The
    /// previous release kept 8 bits, upgraded as the high byte with a zero low byte; such a
    /// tag compares its high byte only, so an upgraded entry never makes a plain redelivery
    /// look conflicting (and one new tag in 256 is compared on 8 bits, not 16).
    pub fn matches(self, incoming: ContentTag) -> bool {
        if self.0 & 0xff == 0 {
            self.0 >> 8 == incoming.0 >> 8
        } else {
            self.0 == incoming.0
        }
    }
}

/// One applied event as pending entries and archive buckets hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ArchivedEvent {
    pub id: IdHash,
    pub tag: ContentTag,
}

impl ArchivedEvent {
    pub fn to_bytes(self) -> [u8; ARCHIVED_EVENT_BYTES] {
        let mut out = [0u8; ARCHIVED_EVENT_BYTES];
        out[..ID_HASH_BYTES].copy_from_slice(&self.id.bytes());
        out[ID_HASH_BYTES..].copy_from_slice(&self.tag.0.to_be_bytes());
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MemoryError> {
        if bytes.len() != ARCHIVED_EVENT_BYTES {
            return Err(MemoryError("an archived entry is not 9 bytes"));
        }
        Ok(ArchivedEvent {
            id: IdHash::from_bytes(&bytes[..ID_HASH_BYTES]),
            tag: ContentTag(u16::from_be_bytes([
                bytes[ID_HASH_BYTES],
                bytes[ID_HASH_BYTES + 1],
            ])),
        })
    }
}

/// Where each archived event of a customer lives: linear hashing over the id hash, so that
/// the bucket of an id is a function of two small numbers in the item, a bucket is found
/// with no directory, and the archive grows one bucket at a time.
///
/// With `level` L and `split` s, an id's bucket is `h mod 2^L`, or `h mod 2^(L+1)` when that
/// is below s. Splitting bucket s moves the ids whose bit L is set to bucket `s + 2^L`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ArchiveLayout {
    level: u8,
    split: u32,
}

/// One bucket split: the ids of `source` that [`SplitPlan::moves`] go to `target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitPlan {
    pub source: u32,
    pub target: u32,
    /// The layout the split starts from.
    pub from: ArchiveLayout,
}

impl SplitPlan {
    pub fn moves(&self, id: IdHash) -> bool {
        (id.0 >> self.from.level) & 1 == 1
    }
}

impl ArchiveLayout {
    pub fn bucket_of(&self, id: IdHash) -> u32 {
        let low = |bits: u8| (id.0 & ((1u64 << bits) - 1)) as u32;
        match low(self.level) {
            bucket if bucket < self.split => low(self.level + 1),
            bucket => bucket,
        }
    }

    pub fn buckets(&self) -> u64 {
        (1u64 << self.level) + u64::from(self.split)
    }

    /// The next split, if the layout may still grow.
    pub fn next_split(&self) -> Option<SplitPlan> {
        (self.level < MAX_LEVEL).then(|| SplitPlan {
            source: self.split,
            target: self.split + (1u32 << self.level),
            from: *self,
        })
    }

    fn advanced(self) -> Self {
        match self.split + 1 {
            split if split == 1u32 << self.level => ArchiveLayout {
                level: self.level + 1,
                split: 0,
            },
            split => ArchiveLayout { split, ..self },
        }
    }
}

impl fmt::Display for ArchiveLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} buckets", self.buckets())
    }
}

/// One remembered recent event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    /// Minutes since the Unix epoch, rounded up.
    minute: i64,
    id: IdHash,
    tag: ContentTag,
}

impl Entry {
    fn archived(self) -> ArchivedEvent {
        ArchivedEvent {
            id: self.id,
            tag: self.tag,
        }
    }
}

/// What the memory says of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recall {
    /// Applied before; `same_content` unless the tags differ.
    Applied { same_content: bool },
    /// Never applied. `late` when it occurred at or before the floor (the archive was asked,
    /// or holds nothing): it is remembered as pending, not as recent.
    New { late: bool },
    /// At or before the floor, not in the item, and the archive holds events: its bucket
    /// must be read before the event can be told new or duplicate.
    AskArchive { bucket: u32 },
    /// At or before the seal of an item the previous release had let forget: it may have
    /// been applied, and nothing can tell.
    Unprovable,
}

/// What archive reads said, for one version of one item: a bucket read answers for every
/// id asked of it. Answers are valid only for the item version they were read against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveAnswers {
    /// Every id asked; `Some` with the tag the archive holds, `None` when it holds none.
    answers: HashMap<IdHash, Option<ContentTag>>,
}

impl ArchiveAnswers {
    /// Records one bucket's content as the answer for `asked` (ids whose bucket it is).
    pub fn record(&mut self, bucket: &[ArchivedEvent], asked: impl IntoIterator<Item = IdHash>) {
        for id in asked {
            let held = bucket
                .iter()
                .find(|event| event.id == id)
                .map(|event| event.tag);
            self.answers.insert(id, held);
        }
    }

    fn get(&self, id: IdHash) -> Option<Option<ContentTag>> {
        self.answers.get(&id).copied()
    }

    pub fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }
}

/// Pending entries a writer has added to the archive under one layout. Unlike answers this
/// stays true for any later version with the same layout: a bucket loses entries only after
/// a split is committed, and a split changes the layout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchivedKnowledge {
    pub layout: ArchiveLayout,
    pub events: HashSet<ArchivedEvent>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedMemory {
    /// The latest minute that left the recent entries, if any.
    floor: Option<i64>,
    /// The previous release's floor (see the module documentation).
    seal: Option<i64>,
    /// Sorted by (minute, id, tag), so equal sets encode to equal bytes.
    recent: Vec<Entry>,
    /// Left `recent`, not yet known to be archived. Sorted.
    pending: Vec<ArchivedEvent>,
    /// Entries the archive holds (each counted once, when it left `pending`).
    archived: u64,
    layout: ArchiveLayout,
}

/// The memory's bytes are not ones it wrote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the applied-event memory is corrupt: {0}")]
pub struct MemoryError(&'static str);

fn minute_rounded_up(at: DateTime<Utc>) -> i64 {
    let seconds = at.timestamp();
    let whole = seconds.div_euclid(SECONDS_PER_MINUTE);
    let partial = seconds.rem_euclid(SECONDS_PER_MINUTE) != 0 || at.timestamp_subsec_nanos() != 0;
    whole + i64::from(partial)
}

/// Whether `at` may be the event a (rounded-up) `minute` mark stands for: the event in that
/// very minute may be the one let go.
fn at_or_before(at: DateTime<Utc>, minute: Option<i64>) -> bool {
    minute.is_some_and(|minute| at.timestamp() <= minute * SECONDS_PER_MINUTE)
}

impl AppliedMemory {
    fn find(&self, id: IdHash) -> Option<ContentTag> {
        self.recent
            .iter()
            .find(|entry| entry.id == id)
            .map(|entry| entry.tag)
            .or_else(|| {
                self.pending
                    .iter()
                    .find(|event| event.id == id)
                    .map(|event| event.tag)
            })
    }

    pub fn recall(
        &self,
        id: IdHash,
        tag: ContentTag,
        occurred_at: DateTime<Utc>,
        answers: &ArchiveAnswers,
    ) -> Recall {
        if let Some(kept) = self.find(id) {
            return Recall::Applied {
                same_content: kept.matches(tag),
            };
        }
        if !at_or_before(occurred_at, self.floor) {
            return Recall::New { late: false };
        }
        if self.archived > 0 {
            match answers.get(id) {
                None => {
                    return Recall::AskArchive {
                        bucket: self.layout.bucket_of(id),
                    };
                }
                Some(Some(kept)) => {
                    return Recall::Applied {
                        same_content: kept.matches(tag),
                    };
                }
                Some(None) => {}
            }
        }
        if at_or_before(occurred_at, self.seal) {
            return Recall::Unprovable;
        }
        Recall::New { late: true }
    }

    /// Whether an event id is in the item (a concurrent writer may have applied it).
    pub fn remembers(&self, event_id: &str) -> bool {
        self.find(IdHash::of(event_id)).is_some()
    }

    /// Remembers an event just applied: as recent, or as pending when it is `late` (at or
    /// before the floor, where recent entries no longer reach).
    pub fn remember(
        &mut self,
        id: IdHash,
        tag: ContentTag,
        occurred_at: DateTime<Utc>,
        late: bool,
    ) {
        if late {
            self.add_pending(ArchivedEvent { id, tag });
            return;
        }
        let entry = Entry {
            minute: minute_rounded_up(occurred_at),
            id,
            tag,
        };
        let position = self.recent.partition_point(|existing| *existing < entry);
        self.recent.insert(position, entry);
    }

    fn add_pending(&mut self, event: ArchivedEvent) {
        if let Err(position) = self.pending.binary_search(&event) {
            self.pending.insert(position, event);
        }
    }

    /// Moves what the recent entries need not keep to pending, raising the floor past it.
    pub fn prune(&mut self, watermark: DateTime<Utc>, limits: MemoryLimits) {
        let horizon = watermark
            .checked_sub_signed(limits.span)
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
            .timestamp();
        let keep_at_least = limits.keep_at_least.min(limits.keep_at_most);
        let prunable_by_age = self.recent.len().saturating_sub(keep_at_least);
        let by_age = self.recent[..prunable_by_age]
            .partition_point(|entry| entry.minute * SECONDS_PER_MINUTE <= horizon);
        let over_cap = self.recent.len().saturating_sub(limits.keep_at_most);
        let room = limits.pending_most.saturating_sub(self.pending.len());
        let cut = over_cap.max(by_age.min(room));
        if cut == 0 {
            return;
        }
        let last_moved = self.recent[cut - 1].minute;
        self.floor = Some(self.floor.map_or(last_moved, |floor| floor.max(last_moved)));
        let moved: Vec<Entry> = self.recent.drain(..cut).collect();
        for entry in moved {
            self.add_pending(entry.archived());
        }
    }

    /// Whether the pending entries are to be archived before the next write, which brings
    /// `incoming` more events.
    pub fn archive_due(&self, limits: MemoryLimits, incoming: usize) -> bool {
        !self.pending.is_empty()
            && (self.pending.len() >= limits.archive_at
                || self.pending.len() + incoming > limits.pending_most)
    }

    /// The split to make before the next write, when the archive will hold more than the
    /// target per bucket once `arriving` more entries are counted in.
    pub fn split_due(&self, limits: MemoryLimits, arriving: usize) -> Option<SplitPlan> {
        let total = self.archived + arriving as u64;
        if total > limits.bucket_target.max(1) * self.layout.buckets() {
            self.layout.next_split()
        } else {
            None
        }
    }

    /// Drops the pending entries `known` says are archived under this memory's layout, and
    /// takes the layout past `split` when the writer made it. Call on the item about to be
    /// written: both become true only when that write commits.
    pub fn settle(&mut self, known: Option<&ArchivedKnowledge>, split: Option<SplitPlan>) {
        if let Some(known) = known.filter(|known| known.layout == self.layout) {
            let before = self.pending.len();
            self.pending.retain(|event| !known.events.contains(event));
            self.archived += (before - self.pending.len()) as u64;
        }
        if split.is_some_and(|split| split.from == self.layout) {
            self.layout = self.layout.advanced();
        }
    }

    pub fn pending(&self) -> &[ArchivedEvent] {
        &self.pending
    }

    pub fn layout(&self) -> ArchiveLayout {
        self.layout
    }

    /// Entries the archive holds.
    pub fn archived(&self) -> u64 {
        self.archived
    }

    /// Recent entries.
    pub fn len(&self) -> usize {
        self.recent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.recent.is_empty() && self.pending.is_empty() && self.archived == 0
    }

    /// The latest instant an event left the recent entries at, if any did.
    pub fn floor(&self) -> Option<DateTime<Utc>> {
        self.floor.and_then(minute_instant)
    }

    /// The previous release's floor, for an item it wrote that had let ids go.
    pub fn seal(&self) -> Option<DateTime<Utc>> {
        self.seal.and_then(minute_instant)
    }

    /// Bytes of [`Self::encode`]'s output, without encoding.
    pub fn encoded_len(&self) -> usize {
        let optional = |minute: Option<i64>| minute.map_or(0, |m| varint_len(zigzag(m)));
        let mut length = 2 + optional(self.floor) + optional(self.seal);
        length += 1 + varint_len(u64::from(self.layout.split)) + varint_len(self.archived);
        length += varint_len(self.recent.len() as u64);
        let mut previous = 0;
        for (index, entry) in self.recent.iter().enumerate() {
            length += ARCHIVED_EVENT_BYTES
                + match index {
                    0 => varint_len(zigzag(entry.minute)),
                    _ => varint_len(entry.minute.abs_diff(previous)),
                };
            previous = entry.minute;
        }
        length + varint_len(self.pending.len() as u64) + self.pending.len() * ARCHIVED_EVENT_BYTES
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.push(FORMAT_VERSION);
        out.push(u8::from(self.floor.is_some()) | u8::from(self.seal.is_some()) << 1);
        for minute in [self.floor, self.seal].into_iter().flatten() {
            push_varint(&mut out, zigzag(minute));
        }
        out.push(self.layout.level);
        push_varint(&mut out, u64::from(self.layout.split));
        push_varint(&mut out, self.archived);
        push_varint(&mut out, self.recent.len() as u64);
        let mut previous = 0;
        for (index, entry) in self.recent.iter().enumerate() {
            match index {
                0 => push_varint(&mut out, zigzag(entry.minute)),
                // Sorted, so never negative.
                _ => push_varint(&mut out, entry.minute.abs_diff(previous)),
            }
            previous = entry.minute;
            out.extend_from_slice(&entry.archived().to_bytes());
        }
        push_varint(&mut out, self.pending.len() as u64);
        for event in &self.pending {
            out.extend_from_slice(&event.to_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, MemoryError> {
        let mut reader = Reader(bytes);
        match reader.byte()? {
            FORMAT_VERSION => {}
            FORGETFUL_FORMAT_VERSION => return decode_forgetful(reader, bytes.len()),
            _ => return Err(MemoryError("unknown format version")),
        }
        let flags = reader.byte()?;
        if flags & !0b11 != 0 {
            return Err(MemoryError("unknown flags"));
        }
        let floor = (flags & 1 != 0)
            .then(|| reader.varint().map(unzigzag))
            .transpose()?;
        let seal = (flags & 2 != 0)
            .then(|| reader.varint().map(unzigzag))
            .transpose()?;
        let level = reader.byte()?;
        let split = u32::try_from(reader.varint()?).map_err(|_| MemoryError("bad split"))?;
        if level > MAX_LEVEL || u64::from(split) >= 1u64 << level {
            return Err(MemoryError("layout out of range"));
        }
        let archived = reader.varint()?;
        let recent = decode_recent(&mut reader, bytes.len(), TAG_BYTES)?;
        let count = reader.count(bytes.len(), ARCHIVED_EVENT_BYTES)?;
        let mut pending = Vec::with_capacity(count);
        for _ in 0..count {
            pending.push(ArchivedEvent::from_bytes(
                reader.take(ARCHIVED_EVENT_BYTES)?,
            )?);
        }
        if !pending.is_sorted() {
            return Err(MemoryError("pending entries out of order"));
        }
        reader.finish()?;
        Ok(AppliedMemory {
            floor,
            seal,
            recent,
            pending,
            archived,
            layout: ArchiveLayout { level, split },
        })
    }

    /// Seals the memory at `at`: the previous release forgot ids at or before it.
    pub(super) fn seal_at(&mut self, at: DateTime<Utc>) {
        let minute = minute_rounded_up(at);
        self.seal = Some(self.seal.map_or(minute, |seal| seal.max(minute)));
        self.floor = Some(self.floor.map_or(minute, |floor| floor.max(minute)));
    }
}

fn minute_instant(minute: i64) -> Option<DateTime<Utc>> {
    minute
        .checked_mul(SECONDS_PER_MINUTE)
        .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
}

fn decode_recent(
    reader: &mut Reader<'_>,
    total: usize,
    tag_bytes: usize,
) -> Result<Vec<Entry>, MemoryError> {
    let count = reader.count(total, ID_HASH_BYTES + tag_bytes + 1)?;
    let mut recent = Vec::with_capacity(count);
    let mut minute = 0i64;
    for index in 0..count {
        let step = reader.varint()?;
        minute = match index {
            0 => unzigzag(step),
            _ => i64::try_from(step)
                .ok()
                .and_then(|step| minute.checked_add(step))
                .ok_or(MemoryError("time step out of range"))?,
        };
        let id = IdHash::from_bytes(reader.take(ID_HASH_BYTES)?);
        let tag = match tag_bytes {
            1 => ContentTag(u16::from(reader.byte()?) << 8),
            _ => {
                let bytes = reader.take(TAG_BYTES)?;
                ContentTag(u16::from_be_bytes([bytes[0], bytes[1]]))
            }
        };
        recent.push(Entry { minute, id, tag });
    }
    if !recent.is_sorted() {
        return Err(MemoryError("entries out of order"));
    }
    Ok(recent)
}

/// The previous release's bytes: a floor flag and floor, then entries with 8-bit tags. Its
/// floor becomes the seal (what it let go is lost), and the entries it kept carry over.
fn decode_forgetful(mut reader: Reader<'_>, total: usize) -> Result<AppliedMemory, MemoryError> {
    let floor = match reader.byte()? {
        0 => None,
        1 => Some(unzigzag(reader.varint()?)),
        _ => return Err(MemoryError("bad floor marker")),
    };
    let recent = decode_recent(&mut reader, total, 1)?;
    reader.finish()?;
    Ok(AppliedMemory {
        floor,
        seal: floor,
        recent,
        ..AppliedMemory::default()
    })
}

impl fmt::Display for AppliedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} recent", self.recent.len())?;
        if !self.pending.is_empty() {
            write!(f, ", {} pending", self.pending.len())?;
        }
        if self.archived > 0 {
            write!(f, ", {} archived in {}", self.archived, self.layout)?;
        }
        if let Some(floor) = self.floor() {
            write!(f, ", floor {}", super::rfc3339::format(&floor))?;
        }
        if let Some(seal) = self.seal() {
            write!(f, ", sealed at {}", super::rfc3339::format(&seal))?;
        }
        Ok(())
    }
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

fn varint_len(mut value: u64) -> usize {
    let mut length = 1;
    while value >= 0x80 {
        value >>= 7;
        length += 1;
    }
    length
}

fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, MemoryError> {
        let (&first, rest) = self.0.split_first().ok_or(MemoryError("truncated"))?;
        self.0 = rest;
        Ok(first)
    }

    fn take(&mut self, count: usize) -> Result<&'a [u8], MemoryError> {
        if self.0.len() < count {
            return Err(MemoryError("truncated"));
        }
        let (taken, rest) = self.0.split_at(count);
        self.0 = rest;
        Ok(taken)
    }

    fn varint(&mut self) -> Result<u64, MemoryError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(MemoryError("varint too long"))
    }

    /// A count of items of at least `item_bytes` each: one the data cannot hold is a lie.
    fn count(&mut self, total: usize, item_bytes: usize) -> Result<usize, MemoryError> {
        let count = usize::try_from(self.varint()?).map_err(|_| MemoryError("bad count"))?;
        if count > total / item_bytes {
            return Err(MemoryError("count larger than the data"));
        }
        Ok(count)
    }

    fn finish(&self) -> Result<(), MemoryError> {
        match self.0.is_empty() {
            true => Ok(()),
            false => Err(MemoryError("trailing bytes")),
        }
    }
}
