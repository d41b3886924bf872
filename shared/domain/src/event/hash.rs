use sha2::{Digest, Sha256};

use super::ServiceEvent;

/// The first 64 bits of SHA-256 over the validated fields, each length-prefixed (or marked
/// absent) in a fixed order: equal content always hashes the same, whatever the sender's
/// key order, spacing or e-mail case, and no two different contents feed the same bytes.
pub(super) fn content_hash(event: &ServiceEvent) -> u64 {
    // The fields are gathered first and hashed in one call: the same bytes, so the same
    // hash, without SHA-256's buffering overhead on each of some forty tiny updates.
    let mut feed = HashFeed(Vec::with_capacity(512));
    feed.text(Some(&event.event_id));
    feed.number(event.occurred_at.timestamp_nanos_opt().map(|n| n as u64));
    let customer = &event.customer;
    feed.text(Some(&customer.email));
    feed.text(customer.name.as_deref());
    let address = customer.address.as_ref();
    feed.text(address.and_then(|a| a.street.as_deref()));
    feed.text(address.and_then(|a| a.city.as_deref()));
    feed.text(address.and_then(|a| a.state.as_deref()));
    feed.text(address.and_then(|a| a.zip.as_deref()));
    let service = event.service.as_ref();
    feed.text(service.and_then(|s| s.id.as_deref()));
    feed.text(service.and_then(|s| s.service_type.as_deref()));
    feed.number(service.and_then(|s| s.satisfaction_micros).map(u64::from));
    let property = event.property.as_ref();
    feed.text(property.and_then(|p| p.property_type.as_deref()));
    feed.number(property.and_then(|p| p.square_feet));
    feed.number(property.and_then(|p| p.year_built).map(u64::from));
    match property.and_then(|p| p.pest_issues.as_ref()) {
        Some(issues) => {
            feed.number(Some(issues.len() as u64));
            issues.iter().for_each(|issue| feed.text(Some(issue)));
        }
        None => feed.number(None),
    }
    feed.number(event.services_count);
    let digest = Sha256::digest(&feed.0);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

struct HashFeed(Vec<u8>);

impl HashFeed {
    fn text(&mut self, value: Option<&str>) {
        match value {
            Some(text) => {
                self.0.push(1);
                self.0.extend_from_slice(&(text.len() as u64).to_le_bytes());
                self.0.extend_from_slice(text.as_bytes());
            }
            None => self.0.push(0),
        }
    }

    fn number(&mut self, value: Option<u64>) {
        match value {
            Some(number) => {
                self.0.push(1);
                self.0.extend_from_slice(&number.to_le_bytes());
            }
            None => self.0.push(0),
        }
    }
}
