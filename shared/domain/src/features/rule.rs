//! The lifetime-value rule: its four thresholds are settings (DESIGN.md, "History and rules"),
//! read by the enricher for every write and by `referral features recompute` to move stored
//! items to the bands a new rule gives them.
//!
//! A valid rule keeps high a stricter bar than medium: neither high threshold is below its
//! medium counterpart, so every high customer would also be medium. Without that, a rule
//! could rank a customer high while one with more services and better scores is medium.

use thiserror::Error;

use super::{CustomerFeatures, LifetimeValue, average_at_least};
use crate::env::{EnvError, Vars};
use crate::event::MAX_SCORE_MICROS;
use crate::orchestrator::policy::parse_score;

/// One of the rule's four thresholds, for errors and the names each layer gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Threshold {
    HighMinServices,
    HighMinSatisfaction,
    MediumMinServices,
    MediumMinSatisfaction,
}

impl Threshold {
    pub const ALL: [Threshold; 4] = [
        Threshold::HighMinServices,
        Threshold::HighMinSatisfaction,
        Threshold::MediumMinServices,
        Threshold::MediumMinSatisfaction,
    ];

    /// The enricher's environment variable.
    pub const fn env_var(self) -> &'static str {
        match self {
            Threshold::HighMinServices => "LTV_HIGH_MIN_SERVICES",
            Threshold::HighMinSatisfaction => "LTV_HIGH_MIN_SATISFACTION",
            Threshold::MediumMinServices => "LTV_MEDIUM_MIN_SERVICES",
            Threshold::MediumMinSatisfaction => "LTV_MEDIUM_MIN_SATISFACTION",
        }
    }

    /// The CLI's flag.
    pub fn flag(self) -> &'static str {
        match self {
            Threshold::HighMinServices => "--high-min-services",
            Threshold::HighMinSatisfaction => "--high-min-satisfaction",
            Threshold::MediumMinServices => "--medium-min-services",
            Threshold::MediumMinSatisfaction => "--medium-min-satisfaction",
        }
    }

    /// What a value of the variable must be, for [`EnvError::Invalid`].
    fn expected(self) -> &'static str {
        match self {
            Threshold::HighMinServices => {
                "a whole number of services, not below LTV_MEDIUM_MIN_SERVICES"
            }
            Threshold::HighMinSatisfaction => {
                "a satisfaction score from 0 to 5, not below LTV_MEDIUM_MIN_SATISFACTION"
            }
            Threshold::MediumMinServices => {
                "a whole number of services, not above LTV_HIGH_MIN_SERVICES"
            }
            Threshold::MediumMinSatisfaction => {
                "a satisfaction score from 0 to 5, not above LTV_HIGH_MIN_SATISFACTION"
            }
        }
    }

    fn is_satisfaction(self) -> bool {
        matches!(
            self,
            Threshold::HighMinSatisfaction | Threshold::MediumMinSatisfaction
        )
    }
}

/// A rule that cannot be used, naming thresholds by the CLI's flags (the enricher names its
/// variables instead: [`LifetimeValueRule::from_vars`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RuleError {
    #[error("{} must be a satisfaction score from 0 to 5", .0.flag())]
    SatisfactionOutOfRange(Threshold),
    #[error("{} must not be below {}", .high.flag(), .medium.flag())]
    HighBelowMedium { high: Threshold, medium: Threshold },
}

impl RuleError {
    /// The thresholds at fault.
    pub fn thresholds(self) -> Vec<Threshold> {
        match self {
            RuleError::SatisfactionOutOfRange(threshold) => vec![threshold],
            RuleError::HighBelowMedium { high, medium } => vec![high, medium],
        }
    }
}

/// `high` when a customer has at least `high_min_services` services **and** an average
/// satisfaction of at least `high_min_satisfaction_micros`; else `medium` when at least
/// `medium_min_services` **or** `medium_min_satisfaction_micros`; else `low`. Satisfaction
/// in millionths, as scores are kept, so that 3.5 is exactly 3.5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LifetimeValueRule {
    pub high_min_services: u64,
    pub high_min_satisfaction_micros: u64,
    pub medium_min_services: u64,
    pub medium_min_satisfaction_micros: u64,
}

impl Default for LifetimeValueRule {
    /// DESIGN.md's bands: 6 services and 4.0 for high, 3 services or 3.5 for medium.
    fn default() -> Self {
        LifetimeValueRule {
            high_min_services: 6,
            high_min_satisfaction_micros: 4_000_000,
            medium_min_services: 3,
            medium_min_satisfaction_micros: 3_500_000,
        }
    }
}

impl LifetimeValueRule {
    /// The environment variables of the rule (unset or blank: the default of each).
    pub const ENV_VARS: [&'static str; 4] = [
        Threshold::HighMinServices.env_var(),
        Threshold::HighMinSatisfaction.env_var(),
        Threshold::MediumMinServices.env_var(),
        Threshold::MediumMinSatisfaction.env_var(),
    ];

    /// The threshold's value (satisfaction in millionths).
    pub fn get(&self, threshold: Threshold) -> u64 {
        match threshold {
            Threshold::HighMinServices => self.high_min_services,
            Threshold::HighMinSatisfaction => self.high_min_satisfaction_micros,
            Threshold::MediumMinServices => self.medium_min_services,
            Threshold::MediumMinSatisfaction => self.medium_min_satisfaction_micros,
        }
    }

    fn set(&mut self, threshold: Threshold, value: u64) {
        *match threshold {
            Threshold::HighMinServices => &mut self.high_min_services,
            Threshold::HighMinSatisfaction => &mut self.high_min_satisfaction_micros,
            Threshold::MediumMinServices => &mut self.medium_min_services,
            Threshold::MediumMinSatisfaction => &mut self.medium_min_satisfaction_micros,
        } = value;
    }

    /// The rule itself, if it can be used (see the module's note on high and medium).
    pub fn validated(self) -> Result<Self, RuleError> {
        for threshold in [
            Threshold::HighMinSatisfaction,
            Threshold::MediumMinSatisfaction,
        ] {
            if self.get(threshold) > u64::from(MAX_SCORE_MICROS) {
                return Err(RuleError::SatisfactionOutOfRange(threshold));
            }
        }
        for (high, medium) in [
            (Threshold::HighMinServices, Threshold::MediumMinServices),
            (
                Threshold::HighMinSatisfaction,
                Threshold::MediumMinSatisfaction,
            ),
        ] {
            if self.get(high) < self.get(medium) {
                return Err(RuleError::HighBelowMedium { high, medium });
            }
        }
        Ok(self)
    }

    /// The rule from the enricher's environment ([`Self::ENV_VARS`]); a value that cannot be
    /// used is refused with an error naming its variable.
    pub fn from_vars(vars: &Vars<impl Fn(&str) -> Option<String>>) -> Result<Self, EnvError> {
        let mut rule = LifetimeValueRule::default();
        let mut given: Vec<(Threshold, String)> = Vec::new();
        for threshold in Threshold::ALL {
            let Some(text) = vars.get(threshold.env_var()) else {
                continue;
            };
            let value = match threshold.is_satisfaction() {
                true => parse_score(&text).ok().map(u64::from),
                false => text.parse::<u64>().ok(),
            };
            let value = value.ok_or_else(|| EnvError::Invalid {
                name: threshold.env_var(),
                expected: threshold.expected(),
                value: text.clone(),
            })?;
            rule.set(threshold, value);
            given.push((threshold, text));
        }
        rule.validated().map_err(|error| {
            // Names a variable the operator set: a default is not what they got wrong.
            let at_fault = error.thresholds();
            let (threshold, value) = given
                .into_iter()
                .find(|(set, _)| at_fault.contains(set))
                .unwrap_or_else(|| (at_fault[0], rule.get(at_fault[0]).to_string()));
            EnvError::Invalid {
                name: threshold.env_var(),
                expected: threshold.expected(),
                value,
            }
        })
    }

    /// The band of a customer with these aggregates, compared on integer millionths.
    pub fn classify(
        &self,
        service_count: u64,
        score_sum_micros: u64,
        score_count: u64,
    ) -> LifetimeValue {
        let average_at_least =
            |threshold: u64| average_at_least(score_sum_micros, score_count, threshold);
        if service_count >= self.high_min_services
            && average_at_least(self.high_min_satisfaction_micros)
        {
            LifetimeValue::High
        } else if service_count >= self.medium_min_services
            || average_at_least(self.medium_min_satisfaction_micros)
        {
            LifetimeValue::Medium
        } else {
            LifetimeValue::Low
        }
    }

    /// The band `item` has under this rule, from its stored aggregates alone: no history is
    /// replayed, because the band depends on nothing else.
    pub fn band_of(&self, item: &CustomerFeatures) -> BandMove {
        BandMove {
            from: item.lifetime_value,
            to: self.classify(item.service_count, item.score_sum_micros, item.score_count),
        }
    }
}

/// An item's band as stored, and the band a rule gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BandMove {
    pub from: LifetimeValue,
    pub to: LifetimeValue,
}

impl BandMove {
    pub fn moves(self) -> bool {
        self.from != self.to
    }
}

impl CustomerFeatures {
    /// The next version of this item with the band `rule` gives it, or `None` when the band
    /// stands. The version is bumped like every write's, so that the write is guarded and
    /// the change is on the stream. The new version applied no event, so it has no trigger:
    /// the orchestrator makes no message of a change without one (`message_worthy`), and a
    /// trigger kept from the previous version would make it look like a second service.
    pub fn rederived(&self, rule: &LifetimeValueRule) -> Option<CustomerFeatures> {
        let band = rule.band_of(self);
        if !band.moves() {
            return None;
        }
        let mut next = self.clone();
        next.lifetime_value = band.to;
        next.version = self.version + 1;
        next.trigger_event_id = None;
        next.trigger = None;
        next.trace = None;
        Some(next)
    }
}

#[cfg(test)]
#[path = "rule_tests.rs"]
mod tests;
