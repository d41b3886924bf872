//! The referral pipeline's domain: webhook validation, the feature fold, the prompt and the
//! message template, the ports the cores need, and the enricher and orchestrator cores.
//!
//! Nothing here knows an AWS type, and the crate does not depend on one: adapters
//! (`referral-aws`, `referral-local`) implement the ports and translate at the edge.

pub mod answer;
pub mod catalogue;
pub mod digits;
pub mod duration;
pub mod enricher;
pub mod env;
pub mod event;
pub mod fallback;
pub mod features;
pub mod gazetteer;
pub mod message_screen;
pub mod orchestrator;
pub mod ports;
pub mod prompt;
pub mod redact;
pub mod shapes;
pub mod template;

/// An error and its sources, `: `-separated, on one line: what a log line shows of a
/// failure (mask e-mail addresses in it before logging).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
