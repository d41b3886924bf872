//! The referral pipeline on one machine, with no AWS account: the embedded in-memory
//! adapters (same contracts as the AWS ones) and the runner that plays the Lambda
//! event-source mappings over any adapters. Nothing deployed links this crate.

pub mod embedded;
pub mod mapping;
pub mod output;
pub mod pipeline;
pub mod queue_mapping;
