//! The fault-injection suite: the pipeline against moto's server through the real Lambda
//! handlers, with Lambda's retry semantics played faithfully (`referral_tests::faults`),
//! faults injected at the adapter boundary and in Bedrock, and the same invariants checked
//! after every scenario (`referral_tests::faults::invariants`):
//!
//! - every customer's features equal the reference fold of the distinct valid events;
//! - exactly one decision per applied change, and Bedrock asked at most once per change
//!   (a throttled call is refused work and does not count: it is tried again);
//! - every event is applied, or in a dead-letter queue with a reason; none is lost;
//! - no claim is left in the message table.
//!
//! `headline` is the seeded end-to-end scenario; `holes` has one regression scenario per
//! orchestrator hole found in review (deadline, stuck record).
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

mod bedrock;
mod headline;
mod holes;
mod late;
mod setup;
