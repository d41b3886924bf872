//! Operators' jobs over the data the pipeline stores, against any AWS-API endpoint:
//! moving stored items to the bands of a new lifetime-value rule, and erasing customers.

pub mod forget;
pub mod recompute;
