//! The lifetime-value rule's flags (`referral run`, `local serve`, `features recompute`), the
//! same thresholds as the enricher Lambda's `LTV_*` variables; and `referral features
//! recompute`, whose work is in `referral_maintenance::recompute`.

use std::process::ExitCode;

use aws_config::SdkConfig;
use referral_domain::features::{LifetimeValueRule, RuleError};
use referral_domain::orchestrator::policy::parse_score;
pub use referral_maintenance::recompute::RecomputeError;
use referral_maintenance::recompute::RecomputeOptions;

use crate::names::TableNames;
use crate::policy::RetentionArgs;

/// The lifetime-value bands: high needs both high thresholds, medium either medium one.
/// Unset: DESIGN.md's 6 / 4.0 / 3 / 3.5.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LifetimeValueArgs {
    /// Services needed for the high lifetime-value band, with --high-min-satisfaction (6).
    #[arg(long, value_name = "N")]
    pub high_min_services: Option<u64>,
    /// Average satisfaction (0-5) needed for the high band, with --high-min-services (4.0).
    #[arg(long, value_parser = parse_score, value_name = "SCORE")]
    pub high_min_satisfaction: Option<u32>,
    /// Services that make a customer medium, or --medium-min-satisfaction (3).
    #[arg(long, value_name = "N")]
    pub medium_min_services: Option<u64>,
    /// Average satisfaction (0-5) that makes a customer medium, or --medium-min-services (3.5).
    #[arg(long, value_parser = parse_score, value_name = "SCORE")]
    pub medium_min_satisfaction: Option<u32>,
}

impl LifetimeValueArgs {
    /// The rule the flags give, refused (naming the flags) when high is below medium.
    pub fn rule(&self) -> Result<LifetimeValueRule, RuleError> {
        let default = LifetimeValueRule::default();
        LifetimeValueRule {
            high_min_services: self.high_min_services.unwrap_or(default.high_min_services),
            high_min_satisfaction_micros: self
                .high_min_satisfaction
                .map_or(default.high_min_satisfaction_micros, u64::from),
            medium_min_services: self
                .medium_min_services
                .unwrap_or(default.medium_min_services),
            medium_min_satisfaction_micros: self
                .medium_min_satisfaction
                .map_or(default.medium_min_satisfaction_micros, u64::from),
        }
        .validated()
    }
}

#[derive(Debug, clap::Args)]
pub struct RecomputeArgs {
    #[command(flatten)]
    rule: LifetimeValueArgs,
    /// Change nothing: print how many customers would move from which band to which.
    #[arg(long)]
    plan: bool,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    tables: TableNames,
    #[command(flatten)]
    retention: RetentionArgs,
    /// Scan segments read (and written) at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1000))]
    segments: u16,
    /// At most this many write units a second (a write costs one per started KB of item),
    /// so that a table serving production keeps its capacity. Unset: no cap.
    #[arg(long, value_name = "N", value_parser = parse_units)]
    max_write_units: Option<f64>,
}

pub(crate) fn parse_units(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(units) if units.is_finite() && units > 0.0 => Ok(units),
        _ => Err(format!(
            "{text:?} is not a rate: give write units per second, greater than 0"
        )),
    }
}

impl RecomputeArgs {
    fn options(&self) -> Result<RecomputeOptions, RuleError> {
        Ok(RecomputeOptions {
            rule: self.rule.rule()?,
            plan: self.plan,
            json: self.json,
            features_table: self.tables.features_table.clone(),
            messages_table: self.tables.messages_table.clone(),
            message_retention: self.retention.message_retention,
            segments: self.segments,
            max_write_units: self.max_write_units,
        })
    }
}

pub async fn recompute(args: &RecomputeArgs, sdk: &SdkConfig) -> Result<ExitCode, RecomputeError> {
    referral_maintenance::recompute::recompute(&args.options()?, sdk).await
}
