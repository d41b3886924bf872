//! The ingest function's configuration, read once at start-up from the environment.

use std::fmt;
use std::time::Duration;

use referral_domain::env::{EnvError, Vars};
use referral_domain::redact::{CUSTOMER_REF_KEY_VAR, check_customer_ref_key};

use crate::signature::WebhookSecret;

/// Comma-separated webhook signing secrets; one, or two while rotating (either verifies).
pub const SECRETS_VAR: &str = "WEBHOOK_SECRETS";
/// URL of the SQS queue accepted webhooks are sent to.
pub const QUEUE_URL_VAR: &str = "WEBHOOK_QUEUE_URL";
/// Optional: how far (seconds, past or future) a signature's timestamp may be from now.
pub const TOLERANCE_VAR: &str = "WEBHOOK_SIGNATURE_TOLERANCE_SECONDS";

/// Every environment variable the ingest function reads itself (the SDK and the telemetry
/// set-up read the standard `AWS_*` ones). The tolerance and the customer-ref key are
/// optional.
pub const ENV_VARS: &[&str] = &[
    SECRETS_VAR,
    QUEUE_URL_VAR,
    TOLERANCE_VAR,
    CUSTOMER_REF_KEY_VAR,
];

/// At most two secrets are live at once: the current one and the one being rotated out.
pub const MAX_SECRETS: usize = 2;
/// Shorter secrets are refused: they can be guessed from a captured signature.
pub const MIN_SECRET_BYTES: usize = 16;
/// Upper bound of the tolerance: a wider window makes replays of captured requests easier.
pub const MAX_TOLERANCE_SECONDS: u64 = 3600;

/// The default replay window: five minutes either side of now.
pub fn default_signature_tolerance() -> Duration {
    Duration::from_secs(300)
}

/// What the handler needs to know. `Debug` never shows the secrets.
#[derive(Clone)]
pub struct Config {
    /// Secrets a signature may be made with, current first (1..=2 of them).
    pub secrets: Vec<WebhookSecret>,
    /// The SQS queue accepted webhooks are sent to.
    pub queue_url: String,
    /// How far a signature's timestamp may be from the clock, in either direction.
    pub signature_tolerance: Duration,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field(
                "secrets",
                &format_args!("[{} redacted]", self.secrets.len()),
            )
            .field("queue_url", &self.queue_url)
            .field("signature_tolerance", &self.signature_tolerance)
            .finish()
    }
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from_vars(&Vars::process())
    }

    /// Reads the configuration through `vars` (the environment, or a map in tests and
    /// under `referral local serve`). Errors name the variable, never a secret.
    pub fn from_vars(vars: &Vars<impl Fn(&str) -> Option<String>>) -> Result<Self, EnvError> {
        let secrets = parse_secrets(&vars.required(
            SECRETS_VAR,
            "the webhook signing secret (two, comma-separated, while rotating)",
        )?)?;
        let queue_url = vars.required(QUEUE_URL_VAR, "the URL of the webhook SQS queue")?;
        if !(queue_url.starts_with("https://") || queue_url.starts_with("http://")) {
            return Err(EnvError::Invalid {
                name: QUEUE_URL_VAR,
                expected: "a queue URL starting with https:// (or http:// for an emulator)",
                value: queue_url,
            });
        }
        let signature_tolerance = Duration::from_secs(vars.parsed(
            TOLERANCE_VAR,
            default_signature_tolerance().as_secs(),
            "a whole number of seconds from 1 to 3600 (default 300)",
            |seconds| (1..=MAX_TOLERANCE_SECONDS).contains(seconds),
        )?);
        check_customer_ref_key(vars)?;
        Ok(Config {
            secrets,
            queue_url,
            signature_tolerance,
        })
    }
}

/// The secrets, or what is wrong with them, described without any of them.
fn parse_secrets(text: &str) -> Result<Vec<WebhookSecret>, EnvError> {
    let invalid = |described: String| EnvError::Invalid {
        name: SECRETS_VAR,
        expected: "1 or 2 comma-separated secrets of at least 16 bytes each",
        value: described,
    };
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    if parts.len() > MAX_SECRETS {
        return Err(invalid(format!("<{} secrets>", parts.len())));
    }
    parts
        .iter()
        .enumerate()
        .map(|(index, part)| {
            if part.len() < MIN_SECRET_BYTES {
                return Err(invalid(format!(
                    "<secret {} {}>",
                    index + 1,
                    if part.is_empty() {
                        "empty"
                    } else {
                        "under 16 bytes"
                    }
                )));
            }
            WebhookSecret::new(part.as_bytes())
                .ok_or_else(|| invalid(format!("<secret {} cannot key HMAC-SHA256>", index + 1)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const SECRET: &str = "whsec_fixture_only_not_a_real_secret";

    fn config(vars: &[(&str, &str)]) -> Result<Config, EnvError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_vars(&Vars::new(|name: &str| map.get(name).cloned()))
    }

    const QUEUE: (&str, &str) = (
        QUEUE_URL_VAR,
        "https://sqs.us-east-1.amazonaws.com/123456789012/webhooks",
    );

    fn invalid_var(error: &EnvError) -> Option<&'static str> {
        match error {
            EnvError::Invalid { name, .. } => Some(name),
            EnvError::Missing { .. } => None,
        }
    }

    #[test]
    fn reads_secrets_queue_and_default_tolerance() {
        let config = config(&[(SECRETS_VAR, SECRET), QUEUE]).unwrap();
        assert_eq!(config.secrets.len(), 1);
        assert_eq!(config.queue_url, QUEUE.1);
        assert_eq!(config.signature_tolerance, Duration::from_secs(300));
    }

    #[test]
    fn two_secrets_and_a_custom_tolerance() {
        let config = config(&[
            (
                SECRETS_VAR,
                " whsec_new_secret_0123456789 , whsec_old_secret_0123456789 ",
            ),
            QUEUE,
            (TOLERANCE_VAR, "60"),
        ])
        .unwrap();
        assert_eq!(config.secrets.len(), 2);
        assert_eq!(config.signature_tolerance, Duration::from_secs(60));
    }

    #[test]
    fn missing_variables_are_named() {
        let err = config(&[QUEUE]).unwrap_err();
        assert!(matches!(
            err,
            EnvError::Missing {
                name: SECRETS_VAR,
                ..
            }
        ));
        assert!(err.to_string().contains("WEBHOOK_SECRETS"));

        let err = config(&[(SECRETS_VAR, SECRET)]).unwrap_err();
        assert!(matches!(
            err,
            EnvError::Missing {
                name: QUEUE_URL_VAR,
                ..
            }
        ));

        let err = config(&[(SECRETS_VAR, "  "), QUEUE]).unwrap_err();
        assert!(matches!(
            err,
            EnvError::Missing {
                name: SECRETS_VAR,
                ..
            }
        ));
    }

    #[test]
    fn bad_values_are_refused_without_echoing_secrets() {
        let three = "whsec_aaaaaaaaaaaaaaaa,whsec_bbbbbbbbbbbbbbbb,whsec_cccccccccccccccc";
        let err = config(&[(SECRETS_VAR, three), QUEUE]).unwrap_err();
        assert_eq!(invalid_var(&err), Some(SECRETS_VAR));
        assert!(!err.to_string().contains("whsec_"));

        for bad in [
            "short",
            "whsec_aaaaaaaaaaaaaaaa,",
            "whsec_aaaaaaaaaaaaaaaa,tiny",
        ] {
            let err = config(&[(SECRETS_VAR, bad), QUEUE]).unwrap_err();
            assert_eq!(invalid_var(&err), Some(SECRETS_VAR), "{bad}");
            let shown = err.to_string();
            assert!(
                !shown.contains("tiny") && !shown.contains("short,") && !shown.contains("whsec_"),
                "{shown}"
            );
        }

        let err = config(&[(SECRETS_VAR, SECRET), (QUEUE_URL_VAR, "webhooks")]).unwrap_err();
        assert_eq!(invalid_var(&err), Some(QUEUE_URL_VAR));

        for bad in ["0", "-5", "ten", "3601"] {
            let err = config(&[(SECRETS_VAR, SECRET), QUEUE, (TOLERANCE_VAR, bad)]).unwrap_err();
            assert_eq!(invalid_var(&err), Some(TOLERANCE_VAR), "{bad}");
        }

        let err = config(&[
            (SECRETS_VAR, SECRET),
            QUEUE,
            (CUSTOMER_REF_KEY_VAR, "short-key"),
        ])
        .unwrap_err();
        assert_eq!(invalid_var(&err), Some(CUSTOMER_REF_KEY_VAR));
        assert!(!err.to_string().contains("short-key"));
    }

    #[test]
    fn debug_output_hides_the_secrets() {
        let config = config(&[(SECRETS_VAR, SECRET), QUEUE]).unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("whsec"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn env_vars_lists_every_variable_read() {
        assert_eq!(
            ENV_VARS,
            &[
                SECRETS_VAR,
                QUEUE_URL_VAR,
                TOLERANCE_VAR,
                CUSTOMER_REF_KEY_VAR
            ]
        );
    }
}
