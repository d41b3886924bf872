//! The ingest function's configuration, read once at start-up from the environment.

use std::fmt;
use std::time::Duration;

use referral_domain::env::{EnvError, Vars};
use referral_domain::redact::{CUSTOMER_REF_KEY_ARN_VAR, check_customer_ref_key};

use crate::signature::WebhookSecret;

/// Comma-separated webhook signing secrets; one, or two while rotating (either verifies).
/// For local development only: a deployed function reads them from Secrets Manager.
pub const SECRETS_VAR: &str = "WEBHOOK_SECRETS";
/// ARN (or name) of the Secrets Manager secret whose `SecretString` holds the signing
/// secrets, in the format of [`SECRETS_VAR`]; read once at start-up.
pub const SECRETS_ARN_VAR: &str = "WEBHOOK_SECRETS_ARN";
/// URL of the SQS queue accepted webhooks are sent to.
pub const QUEUE_URL_VAR: &str = "WEBHOOK_QUEUE_URL";
/// Optional: how far (seconds, past or future) a signature's timestamp may be from now.
pub const TOLERANCE_VAR: &str = "WEBHOOK_SIGNATURE_TOLERANCE_SECONDS";

/// Every environment variable the deployed ingest function reads itself (the SDK and the
/// telemetry set-up read the standard `AWS_*` ones). The tolerance and the customer-ref key
/// are optional.
pub const ENV_VARS: &[&str] = &[
    SECRETS_ARN_VAR,
    QUEUE_URL_VAR,
    TOLERANCE_VAR,
    CUSTOMER_REF_KEY_ARN_VAR,
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

/// Where the signing secrets come from, before any of them is read.
#[derive(Clone)]
pub enum SecretsSource {
    /// From [`SECRETS_VAR`] (local development), already parsed.
    Inline(Vec<WebhookSecret>),
    /// The Secrets Manager secret [`SECRETS_ARN_VAR`] names.
    SecretsManager { secret_id: String },
}

/// The configuration as the environment gives it: everything but the secrets of a
/// deployed function, which [`Settings::with_secret_string`] completes at start-up. `Debug` never shows a secret.
#[derive(Clone, Debug)]
pub struct Settings {
    pub secrets: SecretsSource,
    pub queue_url: String,
    pub signature_tolerance: Duration,
}

impl fmt::Debug for SecretsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretsSource::Inline(secrets) => write!(f, "Inline([{} redacted])", secrets.len()),
            SecretsSource::SecretsManager { secret_id } => {
                write!(f, "SecretsManager({secret_id})")
            }
        }
    }
}

impl Settings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from_vars(&Vars::process())
    }

    /// Reads the settings through `vars`. Exactly one of [`SECRETS_ARN_VAR`] and
    /// [`SECRETS_VAR`] must be set: with both, which one verifies would be a guess.
    pub fn from_vars(vars: &Vars<impl Fn(&str) -> Option<String>>) -> Result<Self, EnvError> {
        let secrets = match vars.get(SECRETS_ARN_VAR) {
            Some(_) if vars.get(SECRETS_VAR).is_some() => {
                return Err(EnvError::Invalid {
                    name: SECRETS_ARN_VAR,
                    expected: "set without WEBHOOK_SECRETS (which is for local development \
                               only): unset one of them",
                    value: "<both set>".to_owned(),
                });
            }
            Some(secret_id) => SecretsSource::SecretsManager { secret_id },
            None => SecretsSource::Inline(parse_secrets(
                SECRETS_VAR,
                &vars.required(
                    SECRETS_VAR,
                    "the webhook signing secret (two, comma-separated, while rotating), or set \
                     WEBHOOK_SECRETS_ARN to a Secrets Manager secret holding them",
                )?,
            )?),
        };
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
        Ok(Settings {
            secrets,
            queue_url,
            signature_tolerance,
        })
    }

    /// The configuration, with the secrets of a [`SecretsSource::SecretsManager`] source
    /// taken from `secret_string` (the secret's value, in [`SECRETS_VAR`]'s format). An
    /// inline source ignores it.
    pub fn with_secret_string(self, secret_string: Option<&str>) -> Result<Config, EnvError> {
        let secrets = match (self.secrets, secret_string) {
            (SecretsSource::Inline(secrets), _) => secrets,
            (SecretsSource::SecretsManager { .. }, Some(text)) => {
                parse_secrets(SECRETS_ARN_VAR, text)?
            }
            (SecretsSource::SecretsManager { .. }, None) => {
                return Err(EnvError::Missing {
                    name: SECRETS_ARN_VAR,
                    meaning: "a secret whose value is read at start-up",
                });
            }
        };
        Ok(Config {
            secrets,
            queue_url: self.queue_url,
            signature_tolerance: self.signature_tolerance,
        })
    }
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
    /// Reads the configuration through `vars` (a map in tests and under `referral local
    /// serve`), whose secrets are given inline in [`SECRETS_VAR`]. Errors name the variable,
    /// never a secret.
    pub fn from_vars(vars: &Vars<impl Fn(&str) -> Option<String>>) -> Result<Self, EnvError> {
        let settings = Settings::from_vars(vars)?;
        if matches!(settings.secrets, SecretsSource::SecretsManager { .. }) {
            return Err(EnvError::Invalid {
                name: SECRETS_ARN_VAR,
                expected: "unset here: only the deployed function reads the secret, at \
                           start-up; give the secrets in WEBHOOK_SECRETS",
                value: "<a secret id>".to_owned(),
            });
        }
        settings.with_secret_string(None)
    }
}

/// The secrets, or what is wrong with them, described without any of them. `source` is
/// the variable that gave them (or named the secret that holds them).
fn parse_secrets(source: &'static str, text: &str) -> Result<Vec<WebhookSecret>, EnvError> {
    let invalid = |described: String| EnvError::Invalid {
        name: source,
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
    use referral_domain::redact::CUSTOMER_REF_KEY_VAR;

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

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, EnvError> {
        Settings::from_vars(&Vars::fixed(vars))
    }

    const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:webhooks-AbCdEf";

    #[test]
    fn a_secret_arn_defers_the_secrets_to_start_up() {
        let settings = settings(&[(SECRETS_ARN_VAR, ARN), QUEUE]).unwrap();
        assert!(
            matches!(&settings.secrets, SecretsSource::SecretsManager { secret_id } if secret_id == ARN)
        );
        let config = settings
            .with_secret_string(Some(
                "whsec_new_secret_0123456789,whsec_old_secret_0123456789",
            ))
            .unwrap();
        assert_eq!(config.secrets.len(), 2);
        assert_eq!(config.queue_url, QUEUE.1);
    }

    #[test]
    fn a_bad_stored_secret_names_the_arn_variable_without_echoing_it() {
        for bad in ["short", "whsec_aaaaaaaaaaaaaaaa,", "a,b,c"] {
            let err = settings(&[(SECRETS_ARN_VAR, ARN), QUEUE])
                .unwrap()
                .with_secret_string(Some(bad))
                .unwrap_err();
            assert_eq!(invalid_var(&err), Some(SECRETS_ARN_VAR), "{bad}");
            assert!(!err.to_string().contains("whsec_"), "{err}");
        }
        let err = settings(&[(SECRETS_ARN_VAR, ARN), QUEUE])
            .unwrap()
            .with_secret_string(None)
            .unwrap_err();
        assert!(err.to_string().contains(SECRETS_ARN_VAR), "{err}");
    }

    #[test]
    fn both_secret_variables_are_refused_as_ambiguous() {
        let err = settings(&[(SECRETS_ARN_VAR, ARN), (SECRETS_VAR, SECRET), QUEUE]).unwrap_err();
        assert_eq!(invalid_var(&err), Some(SECRETS_ARN_VAR));
        let shown = err.to_string();
        assert!(
            shown.contains(SECRETS_VAR) && !shown.contains("whsec_"),
            "{shown}"
        );
    }

    #[test]
    fn neither_secret_variable_is_named_in_the_error() {
        let err = settings(&[QUEUE]).unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.contains(SECRETS_VAR) && shown.contains(SECRETS_ARN_VAR),
            "{shown}"
        );
    }

    #[test]
    fn the_inline_configuration_refuses_a_secret_arn() {
        let err = config(&[(SECRETS_ARN_VAR, ARN), QUEUE]).unwrap_err();
        assert_eq!(invalid_var(&err), Some(SECRETS_ARN_VAR));
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
                SECRETS_ARN_VAR,
                QUEUE_URL_VAR,
                TOLERANCE_VAR,
                CUSTOMER_REF_KEY_ARN_VAR
            ]
        );
    }
}
