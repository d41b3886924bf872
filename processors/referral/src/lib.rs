//! The `referral` command-line tool's library: everything that runs the pipeline on one
//! machine (the embedded run, the event-source mappings played against AWS APIs, local
//! provisioning, a deployed binary under a loopback Lambda Runtime API, the AWS events it is
//! fed) and the operators' tools (DLQ, features, messages): their flags and wiring. The work
//! of the larger tools is in libraries of their own (`referral-dlq`, `referral-fixtures`,
//! `referral-maintenance`). The deployed Lambda functions never link this crate.

pub mod backfill;
pub mod customers;
pub mod dlq;
pub mod events;
pub mod invoke;
pub mod lifetime;
pub mod local;
pub mod names;
pub mod policy;
pub mod remote;
pub mod serve;

/// Reading webhook files, shared with the fixture generator.
pub use referral_fixtures::inputs;
/// What `referral run` prints, beside the runner whose report it renders.
pub use referral_local::output;

/// A webhook secret for local development only, so `local serve`, `local send` and
/// `invoke` agree out of the box.
pub const DEVELOPMENT_SECRET: &str = "whsec_local_development_only";
