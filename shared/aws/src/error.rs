//! The one place that decides whether an SDK failure is worth retrying.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use referral_domain::ports::AdapterError;

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

/// Classifies an SDK failure of `operation` for the retry decision at the boundary.
pub fn adapter_error<E>(operation: &'static str, error: SdkError<E, HttpResponse>) -> AdapterError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let transient = is_transient(&error);
    // `DisplayErrorContext` keeps the service's code and message, not just "service error".
    let source = aws_smithy_types::error::display::DisplayErrorContext(&error).to_string();
    if transient {
        AdapterError::Transient {
            operation,
            source: source.into(),
        }
    } else {
        AdapterError::Permanent {
            operation,
            source: source.into(),
        }
    }
}

/// A stored item that does not decode into the domain's type.
pub fn corrupt(operation: &'static str, error: impl std::fmt::Display) -> AdapterError {
    AdapterError::Corrupt {
        operation,
        source: error.to_string().into(),
    }
}
