//! Loading the shared SDK configuration once per process.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;

/// Attempts per SDK call: throttling and 5xx are retried by the SDK with exponential
/// backoff and jitter before an adapter ever sees them.
const MAX_ATTEMPTS: u32 = 4;
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// One DynamoDB or SQS request answers in milliseconds; an attempt that takes seconds is
/// stuck, and is better retried than waited for.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Every attempt and the backoff between them: a call gives up well inside the functions'
/// timeouts, so a stuck dependency becomes a reported failure, not a killed invocation.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(8);

/// An emulator on a busy development machine can take seconds to answer what AWS answers in
/// milliseconds: calls aimed at loopback get these bounds instead.
const EMULATOR_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
const EMULATOR_OPERATION_TIMEOUT: Duration = Duration::from_secs(90);

/// Region used against a local emulator when none is configured.
const EMULATOR_REGION: &str = "us-east-1";

/// The bounds of every call against AWS itself.
pub fn deployed_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// Loads the SDK configuration the standard way (environment, profile, `AWS_ENDPOINT_URL`),
/// with `endpoint_url` overriding the endpoint of every client when given. Calls are bounded
/// by [`ATTEMPT_TIMEOUT`] and [`OPERATION_TIMEOUT`] (a client that needs longer, like
/// Bedrock's, sets its own); the SDK's stalled-stream protection is off, since those bounds
/// already cover a stalled body and the small bodies here never stream.
///
/// Aimed at a loopback endpoint (a local emulator) with no credentials in the environment,
/// it uses static test credentials: the default chain would otherwise ask the instance
/// metadata service, which is not on loopback. Its calls get lenient bounds
/// ([`EMULATOR_OPERATION_TIMEOUT`]): an emulator on a busy machine can take seconds.
pub async fn load(endpoint_url: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .timeout_config(deployed_timeouts())
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled());
    let endpoint = endpoint_url
        .map(str::to_owned)
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if endpoint.as_deref().is_some_and(is_loopback) {
        loader = loader.timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(EMULATOR_ATTEMPT_TIMEOUT)
                .operation_timeout(EMULATOR_OPERATION_TIMEOUT)
                .build(),
        );
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            loader = loader.credentials_provider(Credentials::new(
                "test",
                "test",
                None,
                None,
                "loopback-emulator",
            ));
        }
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            loader = loader.region(Region::new(EMULATOR_REGION));
        }
    }
    loader.load().await
}

/// Whether an endpoint URL names this machine.
pub fn is_loopback(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .unwrap_or(url);
    let host_port = rest.split('/').next().unwrap_or_default();
    let host = match host_port.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => host_port
            .rsplit_once(':')
            .map_or(host_port, |(host, _)| host),
    };
    host == "localhost" || host == "::1" || host.starts_with("127.")
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn loopback_endpoints_are_recognised() {
        assert!(is_loopback("http://127.0.0.1:5000"));
        assert!(is_loopback("http://localhost:4566/"));
        assert!(is_loopback("http://[::1]:8000"));
        assert!(!is_loopback("https://dynamodb.us-east-1.amazonaws.com"));
        assert!(!is_loopback("http://169.254.169.254"));
    }
}

/// What a command that calls AWS is missing, said in one line with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(
        "no AWS credentials found: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY), or pass --endpoint-url to use a local emulator"
    )]
    // The SDK's account of each provider it tried (a line each) is kept for `Debug` but is
    // no `source()`: printed as a chain it would bury the one line that says what to do.
    NoCredentials(Option<aws_credential_types::provider::error::CredentialsError>),
    #[error(
        "no AWS region configured: set AWS_REGION (or a region in your profile), or pass \
         --endpoint-url to use a local emulator"
    )]
    NoRegion,
}

/// How long the credential chain may take to answer (it may ask the instance metadata
/// service, which is slow to say no off EC2).
const CREDENTIALS_LOOKUP: Duration = Duration::from_secs(10);

/// Fails fast, in one line, when `sdk` has no credentials or no region, instead of letting
/// every call fail with the SDK's own account of it.
pub async fn check_access(sdk: &SdkConfig) -> Result<(), AccessError> {
    use aws_credential_types::provider::ProvideCredentials;
    let provider = sdk
        .credentials_provider()
        .ok_or(AccessError::NoCredentials(None))?;
    match tokio::time::timeout(CREDENTIALS_LOOKUP, provider.provide_credentials()).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => return Err(AccessError::NoCredentials(Some(error))),
        Err(_) => return Err(AccessError::NoCredentials(None)),
    }
    if sdk.region().is_none() {
        return Err(AccessError::NoRegion);
    }
    Ok(())
}
