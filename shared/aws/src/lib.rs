//! Adapters of the domain's ports to AWS APIs, and what every Lambda function shares: SDK
//! configuration, error classification, logs and metrics. Everything AWS-shaped stays in
//! here; the domain only sees the ports' own types.

pub mod backfill;
pub mod bedrock;
pub mod config;
pub mod dynamo;
pub mod erasure;
pub mod error;
pub mod secrets;
pub mod sqs;
pub mod stream_record;
pub mod telemetry;
