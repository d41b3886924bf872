//! The event archive: where a customer's item sends the applied events it no longer keeps,
//! in small buckets (see [`crate::features::ArchiveLayout`]), so that an event of any age is
//! still told new or duplicate.

use std::future::Future;

use super::AdapterError;
use crate::features::ArchivedEvent;

pub trait EventArchive: Send + Sync {
    /// What one bucket holds, read strongly consistent (an empty bucket is one never
    /// written).
    fn bucket(
        &self,
        customer_email: &str,
        bucket: u32,
    ) -> impl Future<Output = Result<Vec<ArchivedEvent>, AdapterError>> + Send;

    /// Adds events to a bucket, creating it if need be: a set union, so adding an event the
    /// bucket holds already changes nothing.
    fn add(
        &self,
        customer_email: &str,
        bucket: u32,
        events: &[ArchivedEvent],
    ) -> impl Future<Output = Result<(), AdapterError>> + Send;

    /// Takes events out of a bucket (the copies a committed split moved on).
    fn remove(
        &self,
        customer_email: &str,
        bucket: u32,
        events: &[ArchivedEvent],
    ) -> impl Future<Output = Result<(), AdapterError>> + Send;

    /// Every bucket of a customer that holds something, by bucket number: for operators'
    /// tools and checks, never the hot path.
    fn buckets(
        &self,
        customer_email: &str,
    ) -> impl Future<Output = Result<Vec<(u32, Vec<ArchivedEvent>)>, AdapterError>> + Send;
}
