//! Signed requests already queued by this process: one captured request sent again within
//! the signature window is answered `200 already_accepted` and not queued a second time.
//! Defence in depth, per instance and bounded: another instance may still queue it, and the
//! enricher applies an event once whatever the copies.

use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, PoisonError};

use sha2::{Digest, Sha256};

/// Requests remembered at most; past it the oldest are forgotten first. 32 bytes and a
/// timestamp each: well under a megabyte.
pub const REPLAY_CACHE_ENTRIES: usize = 10_000;

/// A signed request's identity: its signature's timestamp and its body (the digest is a
/// function of both; a sender retrying with a new signature makes a new request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    timestamp: i64,
    digest: [u8; 32],
}

#[derive(Debug, Default)]
pub struct ReplayCache {
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    fingerprints: HashSet<Fingerprint>,
    /// In the order queued, with the signature's timestamp, to forget the expired.
    order: VecDeque<Fingerprint>,
}

impl Fingerprint {
    pub fn of(timestamp: i64, body: &[u8]) -> Self {
        Fingerprint {
            timestamp,
            digest: Sha256::digest(body).into(),
        }
    }
}

impl ReplayCache {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        // Each critical section leaves the sets consistent: a panic cannot tear them.
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether this signed request was queued already.
    pub fn was_queued(&self, request: &Fingerprint) -> bool {
        self.seen().fingerprints.contains(request)
    }

    /// Remembers a request just queued (only then: one that failed to queue must be
    /// accepted when the sender tries again). Forgets what fell out of the window, whose
    /// signatures are refused as stale anyway, and the oldest past the cap.
    pub fn queued(&self, request: Fingerprint, now: i64, tolerance_seconds: i64) {
        let mut seen = self.seen();
        if !seen.fingerprints.insert(request) {
            return;
        }
        seen.order.push_back(request);
        let horizon = now.saturating_sub(tolerance_seconds);
        while let Some(&oldest) = seen.order.front() {
            if oldest.timestamp >= horizon && seen.order.len() <= REPLAY_CACHE_ENTRIES {
                break;
            }
            seen.order.pop_front();
            seen.fingerprints.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_request_is_known_until_it_leaves_the_window() {
        let cache = ReplayCache::default();
        let first = Fingerprint::of(100, b"body");
        assert!(!cache.was_queued(&first));
        cache.queued(first, 100, 300);
        assert!(cache.was_queued(&first));
        // Another signature (a sender's retry) or another body is another request.
        assert!(!cache.was_queued(&Fingerprint::of(101, b"body")));
        assert!(!cache.was_queued(&Fingerprint::of(100, b"other")));
        // Queuing later requests forgets those older than the window.
        cache.queued(Fingerprint::of(500, b"later"), 500, 300);
        assert!(!cache.was_queued(&first));
        assert!(cache.was_queued(&Fingerprint::of(500, b"later")));
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = ReplayCache::default();
        let request = |i: usize| Fingerprint::of(1_000, i.to_string().as_bytes());
        for i in 0..(REPLAY_CACHE_ENTRIES + 10) {
            cache.queued(request(i), 1_000, 300);
        }
        let seen = cache.seen();
        assert_eq!(seen.order.len(), REPLAY_CACHE_ENTRIES);
        assert_eq!(seen.fingerprints.len(), REPLAY_CACHE_ENTRIES);
        drop(seen);
        assert!(!cache.was_queued(&request(0)));
        assert!(cache.was_queued(&request(REPLAY_CACHE_ENTRIES + 9)));
    }
}
