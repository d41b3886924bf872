//! Helpers the integration tests of `referral` share: where the Lambda binaries are and how
//! to run them, the `local serve` process, the Converse stand-in. Each test binary uses a
//! part of them.
#![allow(dead_code)]

pub mod converse;
pub mod function_binaries;
pub mod lambda_binaries;
pub mod serve;
