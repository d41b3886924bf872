//! Helpers the integration tests of this package share; each test binary uses a part of them.
#![allow(dead_code)]

pub mod bedrock;
