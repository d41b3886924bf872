//! What a feature item remembers to tell a redelivered event from a new one, in a few bytes
//! per event and bounded by time rather than by history.
//!
//! ## The guarantee
//! The memory holds every applied event whose `occurred_at` lies within [`DedupeWindow::span`]
//! of the customer's latest applied event (the watermark), and at least the
//! [`DedupeWindow::keep_at_least`] latest ones whatever their age. What it lets go raises the
//! **floor**: the latest `occurred_at` it no longer remembers. An incoming event is then
//! - a duplicate when its id is remembered;
//! - new when it is not remembered and occurred after the floor: had it been applied, it would
//!   still be remembered;
//! - *unproven* (`stale`) when it is not remembered and occurred at or before the floor: it
//!   may have been applied and forgotten. It is never applied silently; the enricher
//!   dead-letters it, and only an operator's deliberate replay applies it.
//!
//! A redelivery is detected as long as `watermark - occurred_at` stays under the span at the
//! time it arrives: the span must cover how late events arrive plus how long a message can
//! be delivered again (queue and DLQ retention, sender retries). The default (28 days) covers
//! SQS's longest retention (14 days) plus two weeks of lateness.
//!
//! ## Encoding
//! Each entry is a 56-bit hash of the event id, an 8-bit tag of its content (tells a plain
//! redelivery from a conflicting one, same id with other content, 255 times in 256), and its
//! `occurred_at` in whole minutes, rounded *up* so that a forgotten entry never lowers the
//! floor below the real event. Entries are sorted by time and stored delta-encoded: about
//! ten bytes an event. Two ids colliding in 56 bits would make a new event look like a
//! duplicate; with the few hundred ids a window holds that is a chance of about 10⁻¹⁴ per
//! event.

use std::fmt;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

const FORMAT_VERSION: u8 = 1;
const SECONDS_PER_MINUTE: i64 = 60;
const ID_HASH_BYTES: usize = 7;
const ENTRY_FIXED_BYTES: usize = ID_HASH_BYTES + 1;

/// How long, and how much, the memory keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupeWindow {
    /// Applied events within this span of the watermark are always remembered.
    pub span: chrono::Duration,
    /// The latest this many are remembered whatever their age, so a customer with a short
    /// history never meets the floor.
    pub keep_at_least: usize,
    /// A hard bound on the entries (beyond it the oldest are let go even inside the span),
    /// so that no burst can push an item towards DynamoDB's 400 KB limit.
    pub keep_at_most: usize,
}

impl DedupeWindow {
    pub const DEFAULT_SPAN_DAYS: i64 = 28;
}

impl Default for DedupeWindow {
    fn default() -> Self {
        DedupeWindow {
            span: chrono::Duration::days(Self::DEFAULT_SPAN_DAYS),
            keep_at_least: 16,
            keep_at_most: 4096,
        }
    }
}

/// An event id as the memory knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IdHash(u64);

impl IdHash {
    pub fn of(event_id: &str) -> Self {
        let digest = Sha256::digest(event_id.as_bytes());
        let mut bytes = [0u8; 8];
        bytes[8 - ID_HASH_BYTES..].copy_from_slice(&digest[..ID_HASH_BYTES]);
        IdHash(u64::from_be_bytes(bytes))
    }
}

/// One remembered event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    /// Minutes since the Unix epoch, rounded up.
    minute: i64,
    id: IdHash,
    content_tag: u8,
}

/// What the memory says of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recall {
    /// Applied before; `same_content` unless the tags differ.
    Applied { same_content: bool },
    /// Never applied: it occurred after the floor and is not remembered.
    New,
    /// At or before the floor and not remembered: it may have been applied and forgotten.
    Unproven,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedMemory {
    /// The latest minute let go, if any (see the module documentation).
    floor: Option<i64>,
    /// Sorted by (minute, id, tag), so equal sets encode to equal bytes.
    entries: Vec<Entry>,
}

/// The memory's bytes are not ones it wrote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the applied-event memory is corrupt: {0}")]
pub struct MemoryError(&'static str);

/// The tag kept of an event's content hash.
pub fn content_tag(content_hash: u64) -> u8 {
    content_hash.to_be_bytes()[0]
}

fn minute_rounded_up(at: DateTime<Utc>) -> i64 {
    let seconds = at.timestamp();
    let whole = seconds.div_euclid(SECONDS_PER_MINUTE);
    let partial = seconds.rem_euclid(SECONDS_PER_MINUTE) != 0 || at.timestamp_subsec_nanos() != 0;
    whole + i64::from(partial)
}

impl AppliedMemory {
    pub fn recall(&self, id: IdHash, content_tag: u8, occurred_at: DateTime<Utc>) -> Recall {
        if let Some(entry) = self.entries.iter().find(|entry| entry.id == id) {
            return Recall::Applied {
                same_content: entry.content_tag == content_tag,
            };
        }
        match self.floor {
            // The floor was rounded up from a real event's time: an event in that very
            // minute may be the forgotten one.
            Some(floor) if occurred_at.timestamp() <= floor * SECONDS_PER_MINUTE => {
                Recall::Unproven
            }
            _ => Recall::New,
        }
    }

    /// Whether an event id is remembered (a concurrent writer may have applied it).
    pub fn remembers(&self, event_id: &str) -> bool {
        let id = IdHash::of(event_id);
        self.entries.iter().any(|entry| entry.id == id)
    }

    /// Remembers an applied event as of `at`: its `occurred_at`, or for an event applied
    /// below the floor on an operator's say-so, the watermark, so that it is kept a whole
    /// span from now and a second replay of it is caught.
    pub fn remember(&mut self, id: IdHash, content_tag: u8, at: DateTime<Utc>) {
        let entry = Entry {
            minute: minute_rounded_up(at),
            id,
            content_tag,
        };
        let position = self.entries.partition_point(|existing| *existing < entry);
        self.entries.insert(position, entry);
    }

    /// Lets go of what the window no longer needs, raising the floor past it.
    pub fn prune(&mut self, watermark: DateTime<Utc>, window: DedupeWindow) {
        let horizon = watermark
            .checked_sub_signed(window.span)
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
            .timestamp();
        let prunable_by_age = self
            .entries
            .len()
            .saturating_sub(window.keep_at_least.min(window.keep_at_most));
        let mut cut = self.entries[..prunable_by_age]
            .partition_point(|entry| entry.minute * SECONDS_PER_MINUTE <= horizon);
        cut = cut.max(self.entries.len().saturating_sub(window.keep_at_most));
        if cut == 0 {
            return;
        }
        let last_forgotten = self.entries[cut - 1].minute;
        self.floor = Some(
            self.floor
                .map_or(last_forgotten, |floor| floor.max(last_forgotten)),
        );
        self.entries.drain(..cut);
    }

    /// Raises the floor to `at` (for an item migrated from a format that kept a floor).
    pub fn raise_floor(&mut self, at: DateTime<Utc>) {
        let minute = minute_rounded_up(at);
        self.floor = Some(self.floor.map_or(minute, |floor| floor.max(minute)));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The latest instant the memory may have forgotten an event of, if it forgot any.
    pub fn floor(&self) -> Option<DateTime<Utc>> {
        self.floor
            .and_then(|minute| DateTime::from_timestamp(minute * SECONDS_PER_MINUTE, 0))
    }

    /// Bytes of [`Self::encode`]'s output, without encoding.
    pub fn encoded_len(&self) -> usize {
        let mut length = 1 + 1 + self.floor.map_or(0, |floor| varint_len(zigzag(floor)));
        length += varint_len(self.entries.len() as u64);
        let mut previous = 0;
        for (index, entry) in self.entries.iter().enumerate() {
            length += ENTRY_FIXED_BYTES
                + match index {
                    0 => varint_len(zigzag(entry.minute)),
                    _ => varint_len(entry.minute.abs_diff(previous)),
                };
            previous = entry.minute;
        }
        length
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.push(FORMAT_VERSION);
        match self.floor {
            Some(floor) => {
                out.push(1);
                push_varint(&mut out, zigzag(floor));
            }
            None => out.push(0),
        }
        push_varint(&mut out, self.entries.len() as u64);
        let mut previous = 0;
        for (index, entry) in self.entries.iter().enumerate() {
            match index {
                0 => push_varint(&mut out, zigzag(entry.minute)),
                // Sorted, so never negative.
                _ => push_varint(&mut out, entry.minute.abs_diff(previous)),
            }
            previous = entry.minute;
            out.extend_from_slice(&entry.id.0.to_be_bytes()[8 - ID_HASH_BYTES..]);
            out.push(entry.content_tag);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, MemoryError> {
        let mut reader = Reader(bytes);
        if reader.byte()? != FORMAT_VERSION {
            return Err(MemoryError("unknown format version"));
        }
        let floor = match reader.byte()? {
            0 => None,
            1 => Some(unzigzag(reader.varint()?)),
            _ => return Err(MemoryError("bad floor marker")),
        };
        let count = usize::try_from(reader.varint()?).map_err(|_| MemoryError("bad count"))?;
        // Each entry takes at least nine bytes: a count beyond that is a lie.
        if count > bytes.len() / (ENTRY_FIXED_BYTES + 1) {
            return Err(MemoryError("count larger than the data"));
        }
        let mut entries = Vec::with_capacity(count);
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
            let mut id = [0u8; 8];
            id[8 - ID_HASH_BYTES..].copy_from_slice(reader.take(ID_HASH_BYTES)?);
            let content_tag = reader.byte()?;
            entries.push(Entry {
                minute,
                id: IdHash(u64::from_be_bytes(id)),
                content_tag,
            });
        }
        if !reader.0.is_empty() {
            return Err(MemoryError("trailing bytes"));
        }
        if !entries.is_sorted() {
            return Err(MemoryError("entries out of order"));
        }
        Ok(AppliedMemory { floor, entries })
    }
}

impl fmt::Display for AppliedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} remembered", self.entries.len())?;
        if let Some(floor) = self.floor() {
            write!(f, ", floor {}", super::rfc3339::format(&floor))?;
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
}

#[cfg(test)]
mod tests;
