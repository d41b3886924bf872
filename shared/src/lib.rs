//! The referral pipeline's library: the pure domain (webhook validation, feature fold,
//! prompt, template generator), the ports it needs, the enricher and orchestrator cores,
//! and the adapters that implement the ports.
//!
//! Domain modules (`event`, `features`, `prompt`, `template`, `ports`, `enricher`,
//! `orchestrator`) know no AWS type; adapters translate at the edge.

#[cfg(feature = "aws")]
pub mod aws;
pub mod digits;
pub mod embedded;
pub mod enricher;
pub mod env;
pub mod event;
pub mod fallback;
pub mod features;
pub mod orchestrator;
pub mod pipeline;
pub mod ports;
pub mod prompt;
pub mod redact;
pub mod template;
