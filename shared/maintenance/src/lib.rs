//! Operators' jobs over the data the pipeline stores, against any AWS-API endpoint:
//! moving stored items to the bands of a new lifetime-value rule, previewing the message a
//! customer would get, and erasing customers.

pub mod forget;
pub mod preview;
pub mod recompute;
