//! The ingest function's configuration, read once at start-up from the environment.

use std::fmt;
use std::time::Duration;

use thiserror::Error;

use crate::signature::WebhookSecret;

/// Comma-separated webhook signing secrets; one, or two while rotating (either verifies).
pub const SECRETS_VAR: &str = "WEBHOOK_SECRETS";
/// URL of the SQS queue accepted webhooks are sent to.
pub const QUEUE_URL_VAR: &str = "WEBHOOK_QUEUE_URL";
/// Optional: how far (seconds, past or future) a signature's timestamp may be from now.
pub const TOLERANCE_VAR: &str = "WEBHOOK_SIGNATURE_TOLERANCE_SECONDS";

/// Every environment variable the ingest function reads itself (the SDK and the telemetry
/// set-up read the standard `AWS_*` ones). `WEBHOOK_SIGNATURE_TOLERANCE_SECONDS` is optional.
pub const ENV_VARS: &[&str] = &[SECRETS_VAR, QUEUE_URL_VAR, TOLERANCE_VAR];

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

/// A variable is missing or unusable. Messages name the variable, never its value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("{var} is not set: {hint}")]
    Missing {
        var: &'static str,
        hint: &'static str,
    },
    #[error("{var} is invalid: {problem}")]
    Invalid { var: &'static str, problem: String },
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let non_empty = |var: &str| lookup(var).filter(|value| !value.trim().is_empty());

        let secrets = non_empty(SECRETS_VAR).ok_or(ConfigError::Missing {
            var: SECRETS_VAR,
            hint: "set it to the webhook signing secret (two, comma-separated, while rotating)",
        })?;
        let secrets = parse_secrets(&secrets)?;

        let queue_url = non_empty(QUEUE_URL_VAR)
            .map(|url| url.trim().to_owned())
            .ok_or(ConfigError::Missing {
                var: QUEUE_URL_VAR,
                hint: "set it to the URL of the webhook SQS queue",
            })?;
        if !(queue_url.starts_with("https://") || queue_url.starts_with("http://")) {
            return Err(ConfigError::Invalid {
                var: QUEUE_URL_VAR,
                problem: "must be a queue URL starting with https:// (or http:// for an emulator)"
                    .to_owned(),
            });
        }

        let signature_tolerance = match non_empty(TOLERANCE_VAR) {
            None => default_signature_tolerance(),
            Some(text) => parse_tolerance(&text)?,
        };

        Ok(Config {
            secrets,
            queue_url,
            signature_tolerance,
        })
    }
}

fn parse_secrets(text: &str) -> Result<Vec<WebhookSecret>, ConfigError> {
    let invalid = |problem: String| ConfigError::Invalid {
        var: SECRETS_VAR,
        problem,
    };
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    if parts.len() > MAX_SECRETS {
        return Err(invalid(format!(
            "holds {} secrets; at most {MAX_SECRETS} (the current one and the one being retired)",
            parts.len()
        )));
    }
    parts
        .iter()
        .enumerate()
        .map(|(index, part)| {
            if part.len() < MIN_SECRET_BYTES {
                return Err(invalid(format!(
                    "secret {} is {}; each secret needs at least {MIN_SECRET_BYTES} bytes",
                    index + 1,
                    if part.is_empty() {
                        "empty"
                    } else {
                        "too short"
                    }
                )));
            }
            WebhookSecret::new(part.as_bytes())
                .ok_or_else(|| invalid(format!("secret {} cannot key HMAC-SHA256", index + 1)))
        })
        .collect()
}

fn parse_tolerance(text: &str) -> Result<Duration, ConfigError> {
    match text.trim().parse::<u64>() {
        Ok(seconds) if (1..=MAX_TOLERANCE_SECONDS).contains(&seconds) => {
            Ok(Duration::from_secs(seconds))
        }
        _ => Err(ConfigError::Invalid {
            var: TOLERANCE_VAR,
            problem: format!(
                "must be a whole number of seconds from 1 to {MAX_TOLERANCE_SECONDS} (default 300)"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const SECRET: &str = "whsec_fixture_only_not_a_real_secret";

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    const QUEUE: (&str, &str) = (
        QUEUE_URL_VAR,
        "https://sqs.us-east-1.amazonaws.com/123456789012/webhooks",
    );

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
            ConfigError::Missing {
                var: SECRETS_VAR,
                ..
            }
        ));
        assert!(err.to_string().contains("WEBHOOK_SECRETS"));

        let err = config(&[(SECRETS_VAR, SECRET)]).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Missing {
                var: QUEUE_URL_VAR,
                ..
            }
        ));

        let err = config(&[(SECRETS_VAR, "  "), QUEUE]).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Missing {
                var: SECRETS_VAR,
                ..
            }
        ));
    }

    #[test]
    fn bad_values_are_refused_without_echoing_secrets() {
        let three = "whsec_aaaaaaaaaaaaaaaa,whsec_bbbbbbbbbbbbbbbb,whsec_cccccccccccccccc";
        let err = config(&[(SECRETS_VAR, three), QUEUE]).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                var: SECRETS_VAR,
                ..
            }
        ));
        assert!(!err.to_string().contains("whsec_"));

        for bad in [
            "short",
            "whsec_aaaaaaaaaaaaaaaa,",
            "whsec_aaaaaaaaaaaaaaaa,tiny",
        ] {
            let err = config(&[(SECRETS_VAR, bad), QUEUE]).unwrap_err();
            assert!(
                matches!(
                    err,
                    ConfigError::Invalid {
                        var: SECRETS_VAR,
                        ..
                    }
                ),
                "{bad}"
            );
            assert!(!err.to_string().contains("tiny") && !err.to_string().contains("short,"));
        }

        let err = config(&[(SECRETS_VAR, SECRET), (QUEUE_URL_VAR, "webhooks")]).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                var: QUEUE_URL_VAR,
                ..
            }
        ));

        for bad in ["0", "-5", "ten", "3601"] {
            let err = config(&[(SECRETS_VAR, SECRET), QUEUE, (TOLERANCE_VAR, bad)]).unwrap_err();
            assert!(
                matches!(
                    err,
                    ConfigError::Invalid {
                        var: TOLERANCE_VAR,
                        ..
                    }
                ),
                "{bad}"
            );
        }
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
        assert_eq!(ENV_VARS, &[SECRETS_VAR, QUEUE_URL_VAR, TOLERANCE_VAR]);
    }
}
