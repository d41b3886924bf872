//! `referral local ...`, `referral features get`, `referral messages list`.

use std::process::ExitCode;

use aws_config::SdkConfig;

#[derive(Debug, clap::Args)]
pub struct LocalArgs {}

#[derive(Debug, clap::Args)]
pub struct FeaturesArgs {}

#[derive(Debug, clap::Args)]
pub struct MessagesArgs {}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {}

pub async fn run(_args: &LocalArgs, _endpoint: Option<&str>) -> Result<ExitCode, LocalError> {
    Ok(ExitCode::SUCCESS)
}

pub async fn features(_args: &FeaturesArgs, _sdk: &SdkConfig) -> Result<ExitCode, LocalError> {
    Ok(ExitCode::SUCCESS)
}

pub async fn messages(_args: &MessagesArgs, _sdk: &SdkConfig) -> Result<ExitCode, LocalError> {
    Ok(ExitCode::SUCCESS)
}
