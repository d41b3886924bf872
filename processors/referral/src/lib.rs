//! The `referral` command-line tool's library: everything that runs the pipeline on one
//! machine (the embedded run, the event-source mappings played against AWS APIs, local
//! provisioning) and the operators' tools (DLQ, features, messages). The deployed Lambda
//! functions never link this crate.

pub mod aws_local;
pub mod dlq;
pub mod http;
pub mod inputs;
pub mod local;
pub mod output;
pub mod remote;
