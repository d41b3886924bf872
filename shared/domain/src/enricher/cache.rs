//! The items this process wrote or saw, so that a write can go out conditioned on the
//! version it knows, with no read first. Bounded in bytes; least recently used goes first.
//!
//! A cached item may be behind the table (another process wrote since): the conditional
//! write then fails and returns the current item, which replaces the cached one. So the
//! cache saves reads and can never make a write wrong.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::features::CustomerFeatures;

#[derive(Debug)]
struct Slot {
    item: Arc<CustomerFeatures>,
    bytes: usize,
    last_used: u64,
}

#[derive(Debug)]
pub struct ItemCache {
    capacity_bytes: usize,
    used_bytes: usize,
    clock: u64,
    slots: HashMap<String, Slot>,
    /// `last_used` → customer, oldest first: the eviction order.
    recency: BTreeMap<u64, String>,
}

impl ItemCache {
    pub fn new(capacity_bytes: usize) -> Self {
        ItemCache {
            capacity_bytes,
            used_bytes: 0,
            clock: 0,
            slots: HashMap::new(),
            recency: BTreeMap::new(),
        }
    }

    pub fn get(&mut self, customer_email: &str) -> Option<Arc<CustomerFeatures>> {
        self.clock += 1;
        let slot = self.slots.get_mut(customer_email)?;
        self.recency.remove(&slot.last_used);
        slot.last_used = self.clock;
        self.recency.insert(self.clock, customer_email.to_owned());
        Some(Arc::clone(&slot.item))
    }

    /// Keeps `item` unless a newer version of it is cached already.
    pub fn put(&mut self, item: Arc<CustomerFeatures>) {
        let bytes = item.approximate_bytes();
        if bytes > self.capacity_bytes {
            self.remove(&item.customer_email);
            return;
        }
        self.clock += 1;
        let email = item.customer_email.clone();
        match self.slots.get_mut(&email) {
            Some(slot) if slot.item.version > item.version => return,
            Some(slot) => {
                self.recency.remove(&slot.last_used);
                self.used_bytes = self.used_bytes - slot.bytes + bytes;
                *slot = Slot {
                    item,
                    bytes,
                    last_used: self.clock,
                };
            }
            None => {
                self.used_bytes += bytes;
                self.slots.insert(
                    email.clone(),
                    Slot {
                        item,
                        bytes,
                        last_used: self.clock,
                    },
                );
            }
        }
        self.recency.insert(self.clock, email);
        while self.used_bytes > self.capacity_bytes {
            let Some((_, oldest)) = self.recency.pop_first() else {
                break;
            };
            if let Some(slot) = self.slots.remove(&oldest) {
                self.used_bytes -= slot.bytes;
            }
        }
    }

    pub fn remove(&mut self, customer_email: &str) {
        if let Some(slot) = self.slots.remove(customer_email) {
            self.used_bytes -= slot.bytes;
            self.recency.remove(&slot.last_used);
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn used_bytes(&self) -> usize {
        self.used_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Webhook, parse_webhook_value};
    use crate::features::{MemoryLimits, fold_events};

    fn item(email: &str, version: u64) -> Arc<CustomerFeatures> {
        let body = serde_json::json!({
            "event_id": "evt_1", "event_type": "service.completed",
            "occurred_at": "2026-11-20T15:04:05Z", "customer": {"email": email}
        });
        let Ok(Webhook::ServiceCompleted(event)) = parse_webhook_value(&body) else {
            panic!("test event refused");
        };
        let mut item = fold_events(None, &[&event], MemoryLimits::default())
            .into_next()
            .unwrap_or_else(|| panic!("nothing applied"));
        item.version = version;
        Arc::new(item)
    }

    #[test]
    fn the_least_recently_used_goes_first_and_the_bound_holds() {
        let one = item("a@example.com", 1).approximate_bytes();
        let mut cache = ItemCache::new(one * 3);
        for name in ["a", "b", "c"] {
            cache.put(item(&format!("{name}@example.com"), 1));
        }
        assert!(cache.get("a@example.com").is_some());
        cache.put(item("d@example.com", 1));
        assert_eq!(cache.len(), 3);
        assert!(
            cache.get("b@example.com").is_none(),
            "b was least recently used"
        );
        assert!(cache.get("a@example.com").is_some());
        assert!(cache.used_bytes() <= one * 3);
    }

    #[test]
    fn an_older_version_never_replaces_a_newer_one() {
        let mut cache = ItemCache::new(1 << 20);
        cache.put(item("a@example.com", 5));
        cache.put(item("a@example.com", 4));
        assert_eq!(cache.get("a@example.com").map(|i| i.version), Some(5));
        cache.put(item("a@example.com", 6));
        assert_eq!(cache.get("a@example.com").map(|i| i.version), Some(6));
    }
}
