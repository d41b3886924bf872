//! The one place that decides whether an SDK failure is worth retrying.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use referral_domain::ports::{AdapterError, BoxError};

/// Error codes AWS services use for throttling and short-lived trouble.
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TransactionInProgressException",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
    "KMSThrottlingException",
    "AWS.SimpleQueueService.RequestThrottled",
];

/// Whether an SDK failure may succeed if tried again: timeouts, connection failures,
/// unparseable responses, 5xx, 429 and the throttling codes.
pub fn is_transient<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> bool {
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            status >= 500
                || status == 429
                || context
                    .err()
                    .code()
                    .is_some_and(|code| TRANSIENT_CODES.contains(&code))
        }
        _ => false,
    }
}

/// An SDK failure kept whole, so a caller can downcast an [`AdapterError`]'s source to it.
/// It displays as the SDK's full context (service code and message, not just "service
/// error") and reports no further source: that context already holds the chain.
#[derive(Debug)]
pub struct SdkFailure<E>(pub SdkError<E, HttpResponse>);

impl<E: std::error::Error + 'static> std::fmt::Display for SdkFailure<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}",
            aws_smithy_types::error::display::DisplayErrorContext(&self.0)
        )
    }
}

impl<E: std::error::Error + 'static> std::error::Error for SdkFailure<E> {}

/// Classifies an SDK failure of `operation` for the retry decision at the boundary.
pub fn adapter_error<E>(operation: &'static str, error: SdkError<E, HttpResponse>) -> AdapterError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let transient = is_transient(&error);
    let source = Box::new(SdkFailure(error));
    if transient {
        AdapterError::Transient { operation, source }
    } else {
        AdapterError::Permanent { operation, source }
    }
}

/// A stored item that does not decode into the domain's type, or an answer missing what it
/// must hold.
pub fn corrupt(operation: &'static str, error: impl Into<BoxError>) -> AdapterError {
    AdapterError::Corrupt {
        operation,
        source: error.into(),
    }
}
