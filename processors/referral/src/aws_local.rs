//! The pieces of AWS a local process must create or read itself: the resources the SAM
//! template would create, and the table's stream as Lambda's event-source mapping reads it.

pub mod provision;
pub mod stream_reader;
