//! The `referral` tool's reusable parts, shared by its binary, its tests and benchmarks:
//! the small HTTP/1.1 of the local commands and `invoke`, which runs a Lambda function's
//! binary under a loopback Lambda Runtime API.

pub mod http;
pub mod invoke;

/// A webhook secret for local development only, so `local serve`, `local send` and
/// `invoke` agree out of the box.
pub const DEVELOPMENT_SECRET: &str = "whsec_local_development_only";
