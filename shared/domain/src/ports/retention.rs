//! How long a change's decision (a message or a suppression) is kept once recorded.
//!
//! Decisions carry customers' names and places in their message bodies, so they expire; the
//! message policy's own state (a customer's message slot, the day's model calls) does not
//! expire with them, so a cooldown holds after the message it was measured from is gone.

use chrono::{DateTime, Utc};

use crate::env::{EnvError, Vars};

pub const ENV_MESSAGE_RETENTION_DAYS: &str = "MESSAGE_RETENTION_DAYS";

/// A century: far beyond any retention policy, and well inside what a timestamp holds.
pub const MAX_RETENTION_DAYS: u32 = 36_500;

/// Days a decision is kept after it was recorded; zero keeps it for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRetention {
    days: u32,
}

impl MessageRetention {
    /// The template's `MessageRetentionDays` default: a year.
    pub const DEFAULT_DAYS: u32 = 365;
    pub const KEEP: MessageRetention = MessageRetention { days: 0 };

    /// `days` after recording (zero: for good), at most [`MAX_RETENTION_DAYS`].
    pub fn days(days: u32) -> Self {
        MessageRetention {
            days: days.min(MAX_RETENTION_DAYS),
        }
    }

    pub fn in_days(&self) -> u32 {
        self.days
    }

    /// When a decision recorded at `recorded_at` may be deleted; `None` when kept for good.
    pub fn expiry(&self, recorded_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.days == 0 {
            return None;
        }
        Some(
            recorded_at
                .checked_add_signed(chrono::Duration::days(i64::from(self.days)))
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        )
    }

    /// The setting from [`ENV_MESSAGE_RETENTION_DAYS`] (unset: [`Self::DEFAULT_DAYS`]).
    pub fn from_vars(vars: &Vars<impl Fn(&str) -> Option<String>>) -> Result<Self, EnvError> {
        vars.parsed(
            ENV_MESSAGE_RETENTION_DAYS,
            Self::DEFAULT_DAYS,
            "a whole number of days, 0 (keep for good) to 36500",
            |days| *days <= MAX_RETENTION_DAYS,
        )
        .map(Self::days)
    }

    /// For command-line flags: the same bounds as the variable.
    pub fn parse_days(text: &str) -> Result<Self, String> {
        match text.trim().parse::<u32>() {
            Ok(days) if days <= MAX_RETENTION_DAYS => Ok(Self::days(days)),
            _ => Err(format!(
                "expected a whole number of days, 0 (keep for good) to {MAX_RETENTION_DAYS}"
            )),
        }
    }
}

impl Default for MessageRetention {
    fn default() -> Self {
        Self::days(Self::DEFAULT_DAYS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_is_a_year_and_zero_keeps_for_good() {
        let at = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .map(|at| at.to_utc())
            .unwrap_or_default();
        let default = MessageRetention::from_vars(&Vars::fixed(&[])).ok();
        assert_eq!(default, Some(MessageRetention::days(365)));
        assert_eq!(
            default.and_then(|retention| retention.expiry(at)),
            DateTime::parse_from_rfc3339("2027-01-01T00:00:00Z")
                .ok()
                .map(|at| at.to_utc())
        );
        let keep = MessageRetention::from_vars(&Vars::fixed(&[(ENV_MESSAGE_RETENTION_DAYS, "0")]));
        assert_eq!(keep.ok().and_then(|keep| keep.expiry(at)), None);
    }

    #[test]
    fn a_bad_value_names_the_variable() {
        for bad in ["-1", "1.5", "a year", "36501"] {
            let error =
                MessageRetention::from_vars(&Vars::fixed(&[(ENV_MESSAGE_RETENTION_DAYS, bad)]));
            assert!(
                matches!(error, Err(EnvError::Invalid { name, .. }) if name == ENV_MESSAGE_RETENTION_DAYS),
                "{bad}: {error:?}"
            );
            assert!(MessageRetention::parse_days(bad).is_err());
        }
    }
}
