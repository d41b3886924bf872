//! Identifiers in the shapes Lambda gives them, so that code parsing them locally sees
//! what it will see deployed.

use std::time::{SystemTime, UNIX_EPOCH};

/// The account in local ARNs and queue URLs: moto's default account.
pub const ACCOUNT: &str = "123456789012";

/// A request id: a random UUID (version 4), as Lambda's are.
pub fn request_id() -> String {
    uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes())
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// An X-Ray trace header, not sampled: nothing collects traces locally.
pub fn trace_id() -> String {
    format!(
        "Root=1-{:08x}-{:024x};Parent={:016x};Sampled=0",
        epoch_ms() / 1000,
        fastrand::u128(..) >> 32,
        fastrand::u64(..)
    )
}

/// `YYYY/MM/DD/[$LATEST]<32 hex digits>`, Lambda's log stream names.
pub fn log_stream_name() -> String {
    format!(
        "{}/[$LATEST]{:032x}",
        chrono::Utc::now().format("%Y/%m/%d"),
        fastrand::u128(..)
    )
}

pub fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_version_4_uuids() {
        let id = request_id();
        let groups: Vec<&str> = id.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(groups[2].starts_with('4'), "{id}");
        assert!(
            matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
            "{id}"
        );
        assert_ne!(request_id(), id);
    }

    #[test]
    fn trace_ids_have_xray_shape() {
        let trace = trace_id();
        let root = trace.strip_prefix("Root=1-").expect(&trace);
        let (time, rest) = root.split_once('-').expect(&trace);
        assert_eq!(time.len(), 8);
        assert_eq!(rest.split(';').next().map(str::len), Some(24));
        assert!(trace.ends_with(";Sampled=0"));
    }
}
