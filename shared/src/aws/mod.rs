//! Adapters of the ports to AWS APIs (cargo feature `aws`). Everything AWS-shaped stays in
//! here: the domain modules only see the ports' own types.

pub mod bedrock;
pub mod config;
pub mod dynamo;
pub mod error;
pub mod sqs;
pub mod streams;
pub mod telemetry;
