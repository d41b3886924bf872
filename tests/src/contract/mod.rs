//! One contract per port: the cases every adapter of the port must pass with the same
//! results, embedded and AWS alike (`tests/tests/embedded_contract.rs`,
//! `tests/tests/aws_contract.rs`). `tests/tests/contract_catches.rs` shows each suite fails
//! an adapter that breaks its contract on purpose.
//!
//! Each case works on its own customer or message (prefixed by the caller), so suites can
//! share a table.

mod change_feed;
mod erasure_log;
mod event_archive;
mod feature_store;
mod message_store;
mod work_queue;

pub use change_feed::change_feed_contract;
pub use erasure_log::erasure_log_contract;
pub use event_archive::event_archive_contract;
pub use feature_store::feature_store_contract;
pub use message_store::{message_retention_contract, message_store_contract};
pub use work_queue::{QueueSetup, work_queue_contract};
