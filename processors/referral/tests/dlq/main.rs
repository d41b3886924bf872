//! `referral dlq stats|peek|export|import|replay` end to end against moto's server, through
//! the real binary: poison events reach the DLQ and come back fixed; transient failures are
//! replayed to their source queue; a replay killed between a send and its delete loses
//! nothing; `--dry-run` changes nothing; `--filter`, `--rate`, `--copy` do what they say;
//! `peek` and `stats` look without consuming and mask e-mail addresses.
//!
//! The enricher runs in this process as its SQS event-source mapping would invoke it: the
//! Lambda handler on batches of ten received from the source queue, deleting what it
//! handled.
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

mod common;
mod export_import;
mod fifo;
mod inspect;
mod late;
mod options;
mod replay;
mod stream_failures;
