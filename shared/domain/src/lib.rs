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
pub mod erasure_filter;
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
#[cfg(feature = "test-support")]
pub mod test_support;
pub mod trace;

/// An error and its sources, `: `-separated, on one line: what a log line shows of a
/// failure (mask e-mail addresses in it before logging). A source whose text an outer
/// message already shows (`"cannot read {path}: {source}"`) is not repeated.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::error_chain;
    use crate::ports::AdapterError;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read queue q: {0}")]
    struct ShowsItsSource(#[source] AdapterError);

    fn refused() -> AdapterError {
        AdapterError::Permanent {
            operation: "GetQueueUrl",
            source: "AWS.SimpleQueueService.NonExistentQueue".into(),
        }
    }

    #[test]
    fn an_adapter_error_names_the_operation_and_its_chain_adds_the_cause_once() {
        let error = refused();
        assert_eq!(error.to_string(), "GetQueueUrl was refused");
        assert_eq!(
            error_chain(&error),
            "GetQueueUrl was refused: AWS.SimpleQueueService.NonExistentQueue"
        );
        // A wrapper that already prints its source does not get it twice.
        assert_eq!(
            error_chain(&ShowsItsSource(refused())),
            "cannot read queue q: GetQueueUrl was refused: AWS.SimpleQueueService.NonExistentQueue"
        );
    }
}
