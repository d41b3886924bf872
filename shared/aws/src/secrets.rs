//! Secrets a function reads once at start-up from Secrets Manager, so that their values sit
//! in no environment variable and in no template output.

use aws_config::SdkConfig;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;

use referral_domain::env::{EnvError, Vars};
use referral_domain::redact::{CUSTOMER_REF_KEY_ARN_VAR, install_customer_ref_key};

use crate::error::SdkFailure;

/// What reading a secret takes (every function reads the customer-ref key).
pub const SECRETS_IAM_ACTIONS: &[&str] = &["secretsmanager:GetSecretValue"];

/// A secret a function cannot start without, said with the variable that names it. The
/// secret's value never appears in it.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{variable}: cannot read the secret {secret_id} from Secrets Manager: {source}")]
    Read {
        variable: &'static str,
        secret_id: String,
        #[source]
        source: Box<SdkFailure<GetSecretValueError>>,
    },
    #[error(
        "{variable}: the secret {secret_id} has no SecretString (a binary secret is not \
         read): set one with `aws secretsmanager put-secret-value --secret-string`"
    )]
    NotAString {
        variable: &'static str,
        secret_id: String,
    },
    #[error(transparent)]
    Refused(#[from] EnvError),
}

/// The current `SecretString` of `secret_id` (an ARN or a name), which the environment
/// variable `variable` gave. One call, at start-up: a client of its own is cheaper than
/// keeping one for the process's life.
pub async fn read_secret_string(
    sdk: &SdkConfig,
    variable: &'static str,
    secret_id: &str,
) -> Result<String, SecretError> {
    let output = Client::new(sdk)
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|error| SecretError::Read {
            variable,
            secret_id: secret_id.to_owned(),
            source: Box::new(SdkFailure(error)),
        })?;
    output.secret_string.ok_or_else(|| SecretError::NotAString {
        variable,
        secret_id: secret_id.to_owned(),
    })
}

/// What every function does first with the AWS APIs: the deployed SDK configuration
/// ([`crate::config::load`]), then the customer-ref key read from the secret that
/// `CUSTOMER_REF_KEY_ARN` names and made the process's, when the variable is set (as
/// deployed; otherwise the process keeps to `CUSTOMER_REF_KEY` or plain hashes). One call, so
/// that no function can compute a ref before its key is installed.
pub async fn function_sdk_config() -> Result<SdkConfig, SecretError> {
    let sdk = crate::config::load(None).await;
    if let Some(secret_id) = Vars::process().get(CUSTOMER_REF_KEY_ARN_VAR) {
        let key = read_secret_string(&sdk, CUSTOMER_REF_KEY_ARN_VAR, &secret_id).await?;
        install_customer_ref_key(CUSTOMER_REF_KEY_ARN_VAR, key)?;
    }
    Ok(sdk)
}
