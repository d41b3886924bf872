//! The pieces of AWS a local process must play or create itself: the resources the SAM
//! template would create, and the DynamoDB stream event-source mapping in front of the
//! orchestrator.

pub mod provision;
pub mod stream_mapping;
pub mod stream_reader;
