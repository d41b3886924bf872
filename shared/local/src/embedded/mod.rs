//! Embedded in-memory adapters: the same contracts as the AWS ones (conditional writes and
//! a change feed with one record per write; an event archive of sets; claim-then-record decisions; a queue with SQS's
//! visibility, receive counts and redrive), so the whole pipeline runs in one process with
//! no account, network or credentials. The contract suites in `tests/` run against these
//! and the AWS adapters alike.

mod archive;
mod feature_store;
mod message_store;
mod queue;

use std::sync::{Mutex, MutexGuard, PoisonError};

use referral_domain::ports::AdapterError;

pub use archive::EmbeddedArchive;
pub use feature_store::EmbeddedFeatureStore;
pub use message_store::EmbeddedMessageStore;
pub use queue::{EmbeddedQueue, QueueRules};

/// A panic while a lock is held cannot leave these maps half-updated (each critical section
/// is a single insert or remove), so a poisoned lock is still safe to use.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A change feed asked to resume from a record its latest poll did not hand out: the
/// caller's bookkeeping is wrong, and retrying cannot fix it.
pub(crate) fn not_handed_out(sequence_number: &str) -> AdapterError {
    AdapterError::Permanent {
        operation: "resume_from",
        source: format!("sequence number {sequence_number} was not handed out by the latest poll")
            .into(),
    }
}
