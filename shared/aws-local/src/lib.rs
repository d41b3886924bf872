//! The pieces of AWS a local process must create or read itself: the resources the SAM
//! template would create, the table's stream as Lambda's event-source mapping reads it, and
//! the SQS event that mapping hands a function. Used by the CLI and the tests, never by a
//! deployed Lambda.

pub mod apigw_event;
pub mod provision;
pub mod sqs_event;
pub mod stream_reader;

pub use sqs_event::sqs_event;
