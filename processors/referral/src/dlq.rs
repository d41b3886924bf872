//! `referral dlq ...`: inspect, export, import and replay dead-letter queues.

use std::process::ExitCode;

use aws_config::SdkConfig;

#[derive(Debug, clap::Args)]
pub struct DlqArgs {}

#[derive(Debug, thiserror::Error)]
pub enum DlqError {}

pub async fn run(_args: &DlqArgs, _sdk: &SdkConfig) -> Result<ExitCode, DlqError> {
    Ok(ExitCode::SUCCESS)
}
