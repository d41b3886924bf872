//! The referral pipeline's domain: webhook validation, the feature fold, the prompt and the
//! message template, the ports the cores need, and the enricher and orchestrator cores.
//!
//! Nothing here knows an AWS type, and the crate does not depend on one: adapters
//! (`referral-aws`, `referral-local`) implement the ports and translate at the edge.

pub mod answer;
pub mod catalogue;
pub mod digits;
pub mod enricher;
pub mod env;
pub mod event;
pub mod fallback;
pub mod features;
pub mod orchestrator;
pub mod ports;
pub mod prompt;
pub mod redact;
pub mod template;
