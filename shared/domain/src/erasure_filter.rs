//! Which customers were ever erased, in about 10 bits each: a Bloom filter of every erasure
//! marker's hash.
//!
//! The enricher must not recreate an erased customer, so a customer it holds no item of
//! needs a look at the erasure log before a create. One marker read per such customer would
//! cost a read unit per new customer on live traffic. Instead the enricher reads this
//! filter's generation (one small item) once per batch that has such a customer, keeps the
//! filter itself across batches until the generation moves, and reads a marker only when the
//! filter says "maybe". A false positive costs that one read; a false negative cannot happen.
//!
//! The filter grows by pages: each holds [`FilterPage::CAPACITY`] hashes at a false-positive
//! rate under 1 %, and a new page opens when the last is full, so the rate stays bounded
//! (about 1 % a page) as erasures accumulate.

use sha2::{Digest, Sha256};

/// Bit probes per hash.
const PROBES: u64 = 7;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("erasure filter page {page}: {problem}")]
pub struct ErasureFilterError {
    pub page: usize,
    pub problem: &'static str,
}

/// One page: a count and [`FilterPage::BYTES`] of bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterPage {
    count: u32,
    bits: Box<[u8]>,
}

impl FilterPage {
    /// 28,672 bits: a page, its count and the item's key stay under 4 KB, so a read of a
    /// one-page filter is one read unit.
    pub const BYTES: usize = 3_584;
    /// Hashes a page takes before the next opens: with 7 probes, 0.9 % false positives when
    /// full.
    pub const CAPACITY: u32 = 2_900;

    fn empty() -> Self {
        FilterPage {
            count: 0,
            bits: vec![0; Self::BYTES].into_boxed_slice(),
        }
    }

    fn probes(hash: &str) -> impl Iterator<Item = usize> {
        // Double hashing over a digest of the hash: the marker's hash is already uniform, but
        // hashing again keeps the probes independent of how it is spelled.
        let digest = Sha256::digest(hash.as_bytes());
        let word = |at: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&digest[at..at + 8]);
            u64::from_be_bytes(bytes)
        };
        let (first, step) = (word(0), word(8) | 1);
        let bits = (Self::BYTES * 8) as u64;
        (0..PROBES).map(move |probe| (first.wrapping_add(probe.wrapping_mul(step)) % bits) as usize)
    }

    fn contains(&self, hash: &str) -> bool {
        Self::probes(hash).all(|bit| self.bits[bit / 8] & (1 << (bit % 8)) != 0)
    }

    fn insert(&mut self, hash: &str) {
        for bit in Self::probes(hash) {
            self.bits[bit / 8] |= 1 << (bit % 8);
        }
        self.count = self.count.saturating_add(1);
    }

    /// The stored form: the count (4 bytes, big-endian), then the bits.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(4 + Self::BYTES);
        bytes.extend_from_slice(&self.count.to_be_bytes());
        bytes.extend_from_slice(&self.bits);
        bytes
    }

    fn from_bytes(page: usize, bytes: &[u8]) -> Result<Self, ErasureFilterError> {
        if bytes.len() != 4 + Self::BYTES {
            return Err(ErasureFilterError {
                page,
                problem: "not the size of a page",
            });
        }
        let (count, bits) = bytes.split_at(4);
        let mut count_bytes = [0u8; 4];
        count_bytes.copy_from_slice(count);
        Ok(FilterPage {
            count: u32::from_be_bytes(count_bytes),
            bits: bits.into(),
        })
    }
}

/// Every erasure marker's hash, as of one generation of the erasure log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErasureFilter {
    pages: Vec<FilterPage>,
}

impl ErasureFilter {
    /// Reads the stored pages, in order.
    pub fn from_pages<'a>(
        pages: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Self, ErasureFilterError> {
        let pages = pages
            .into_iter()
            .enumerate()
            .map(|(index, bytes)| FilterPage::from_bytes(index, bytes))
            .collect::<Result<_, _>>()?;
        Ok(ErasureFilter { pages })
    }

    pub fn pages(&self) -> &[FilterPage] {
        &self.pages
    }

    /// False only for a hash never inserted.
    pub fn may_contain(&self, hash: &str) -> bool {
        self.pages.iter().any(|page| page.contains(hash))
    }

    /// Adds a hash; returns false when the filter answered "maybe" for it already, and then
    /// changes nothing (so recording the same erasure twice does not fill a page).
    pub fn insert(&mut self, hash: &str) -> bool {
        if self.may_contain(hash) {
            return false;
        }
        let open = match self.pages.last_mut() {
            Some(page) if page.count < FilterPage::CAPACITY => page,
            _ => {
                self.pages.push(FilterPage::empty());
                let last = self.pages.len() - 1;
                &mut self.pages[last]
            }
        };
        open.insert(hash);
        true
    }

    /// Hashes inserted.
    pub fn len(&self) -> u64 {
        self.pages.iter().map(|page| u64::from(page.count)).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::erasure_hash_with;

    fn hash(n: u32) -> String {
        erasure_hash_with(Some(b"test key"), &format!("customer{n}@example.com"))
    }

    #[test]
    fn inserted_hashes_are_always_found_and_pages_round_trip() {
        let mut filter = ErasureFilter::default();
        assert!(filter.is_empty());
        assert!(
            !filter.may_contain(&hash(0)),
            "an empty filter holds nothing"
        );
        for n in 0..6_000 {
            filter.insert(&hash(n));
        }
        assert_eq!(filter.pages().len(), 3, "2,900 a page");
        for n in 0..6_000 {
            assert!(filter.may_contain(&hash(n)), "no false negative: {n}");
        }
        let stored: Vec<Vec<u8>> = filter.pages().iter().map(FilterPage::to_bytes).collect();
        let read = ErasureFilter::from_pages(stored.iter().map(Vec::as_slice));
        assert_eq!(read.as_ref(), Ok(&filter));
    }

    #[test]
    fn false_positives_stay_near_one_percent_a_page() {
        let mut filter = ErasureFilter::default();
        for n in 0..FilterPage::CAPACITY {
            filter.insert(&hash(n));
        }
        assert_eq!(filter.pages().len(), 1);
        let strangers = 20_000;
        let positives = (1_000_000..1_000_000 + strangers)
            .filter(|&n| filter.may_contain(&hash(n)))
            .count();
        let rate = positives as f64 / f64::from(strangers);
        assert!((0.002..0.02).contains(&rate), "false positives {rate}");
    }

    #[test]
    fn inserting_twice_changes_nothing() {
        let mut filter = ErasureFilter::default();
        assert!(filter.insert(&hash(1)));
        let once = filter.clone();
        assert!(!filter.insert(&hash(1)));
        assert_eq!(filter, once);
        assert_eq!(filter.len(), 1);
    }

    #[test]
    fn a_damaged_page_is_refused_by_number() {
        let mut filter = ErasureFilter::default();
        filter.insert(&hash(1));
        let good = filter.pages()[0].to_bytes();
        let short = &good[..100];
        assert_eq!(
            ErasureFilter::from_pages([good.as_slice(), short]),
            Err(ErasureFilterError {
                page: 1,
                problem: "not the size of a page"
            })
        );
    }
}
