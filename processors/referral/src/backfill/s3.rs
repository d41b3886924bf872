//! `referral backfill --to s3://…` and `--status`: the backfill at scale, on the template's
//! state machine. `--to` runs the same first pass as a local backfill (validation, the
//! rejects file, the spill by customer), then writes each partition as one S3 object of
//! webhook lines, which a Distributed Map hands to the backfill Lambda one at a time.
//! `--status` follows the run the state machine started.

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::process::ExitCode;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sfn::types::ExecutionStatus;
use serde::Serialize;

use super::{
    BackfillArgs, BackfillError, Spilled, first_pass, is_backfill_file, partition_path, run_key,
    state_error,
};
use crate::inputs;

/// Where `--to` writes: a bucket and a key prefix (empty, or ending in `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    pub prefix: String,
}

impl S3Location {
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix("s3://")
            .ok_or_else(|| format!("`{text}` is not an s3://BUCKET/PREFIX address"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("`{text}` names no bucket"));
        }
        let prefix = match prefix.trim_end_matches('/') {
            "" => String::new(),
            prefix => format!("{prefix}/"),
        };
        Ok(S3Location {
            bucket: bucket.to_owned(),
            prefix,
        })
    }

    /// The object of one partition.
    pub fn key(&self, partition: u64) -> String {
        format!("{}part-{partition:04}.jsonl", self.prefix)
    }
}

#[derive(Debug, Serialize)]
struct Uploaded<'a> {
    events: u64,
    valid: u64,
    rejected: u64,
    ignored: u64,
    objects: u64,
    bucket: &'a str,
    prefix: &'a str,
    /// The state machine's input for this upload.
    execution_input: serde_json::Value,
    rejects: &'a std::path::Path,
}

pub async fn upload(
    args: &BackfillArgs,
    target: &S3Location,
    sdk: &SdkConfig,
) -> Result<ExitCode, BackfillError> {
    let files = inputs::input_files(&args.paths, is_backfill_file)?;
    let destination = format!("s3://{}/{}", target.bucket, target.prefix);
    let state = args
        .state_dir
        .join(format!("upload-{}", run_key(&files, &destination)?));
    let scan = first_pass(&files, &state, &args.rejects, args.partitions)?;
    let s3 = referral_backfill::s3_client(sdk);
    let mut objects = 0;
    for partition in 0..scan.partitions {
        let path = partition_path(&state, partition);
        let mut lines = String::new();
        let file = File::open(&path).map_err(state_error(&path))?;
        for (index, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(state_error(&path))?;
            let spilled: Spilled =
                serde_json::from_str(&line).map_err(|error| BackfillError::Damaged {
                    path: path.clone(),
                    detail: format!("line {}: {error}", index + 1),
                })?;
            // A valid body is JSON, where a line break can only be whitespace: one a line.
            lines.push_str(&spilled.body.replace(['\r', '\n'], " "));
            lines.push('\n');
        }
        if lines.is_empty() {
            continue;
        }
        let key = target.key(partition);
        s3.put_object()
            .bucket(&target.bucket)
            .key(&key)
            .content_type("application/x-ndjson")
            .body(ByteStream::from(lines.into_bytes()))
            .send()
            .await
            .map_err(|error| BackfillError::Aws {
                action: format!("cannot write s3://{}/{key}", target.bucket),
                detail: referral_domain::error_chain(&error),
            })?;
        objects += 1;
    }
    fs::remove_dir_all(&state).map_err(state_error(&state))?;
    let uploaded = Uploaded {
        events: scan.events,
        valid: scan.valid,
        rejected: scan.rejected,
        ignored: scan.ignored,
        objects,
        bucket: &target.bucket,
        prefix: &target.prefix,
        execution_input: serde_json::json!({ "prefix": target.prefix }),
        rejects: &args.rejects,
    };
    if args.json {
        println!("{}", serde_json::to_string(&uploaded)?);
    } else {
        let rejects = match scan.rejected {
            0 => String::new(),
            _ => format!("; rejects in {}", args.rejects.display()),
        };
        println!(
            "backfill --to: {} events ({} valid, {} rejected, {} ignored) in {objects} objects \
             under {destination}{rejects}",
            scan.events, scan.valid, scan.rejected, scan.ignored
        );
        println!(
            "start it: aws stepfunctions start-execution --state-machine-arn \"$BACKFILL_STATE_MACHINE\" \
             --input '{}'   (the stack's output BackfillStateMachineArn)",
            uploaded.execution_input
        );
        println!("follow it: referral backfill --status EXECUTION_ARN");
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Default, PartialEq, Eq, Serialize)]
struct Progress {
    status: String,
    items_total: i64,
    items_succeeded: i64,
    items_failed: i64,
    items_running: i64,
    items_pending: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Follows an execution until it ends: a line each time its items move; 0 when it
/// succeeded, 1 otherwise.
pub async fn follow(
    execution: &str,
    poll: Duration,
    json: bool,
    sdk: &SdkConfig,
) -> Result<ExitCode, BackfillError> {
    let sfn = aws_sdk_sfn::Client::new(sdk);
    let aws_error = |action: &str| {
        let action = format!("{action} {execution}");
        move |error: String| BackfillError::Aws {
            action: action.clone(),
            detail: error,
        }
    };
    let mut last = None;
    loop {
        let described = sfn
            .describe_execution()
            .execution_arn(execution)
            .send()
            .await
            .map_err(|error| aws_error("cannot describe")(referral_domain::error_chain(&error)))?;
        let mut progress = Progress {
            status: described.status().as_str().to_owned(),
            error: described.error().map(str::to_owned),
            ..Progress::default()
        };
        let runs = sfn
            .list_map_runs()
            .execution_arn(execution)
            .send()
            .await
            .map_err(|error| {
                aws_error("cannot list the map runs of")(referral_domain::error_chain(&error))
            })?;
        for run in runs.map_runs() {
            let map_run = sfn
                .describe_map_run()
                .map_run_arn(run.map_run_arn())
                .send()
                .await
                .map_err(|error| {
                    aws_error("cannot describe a map run of")(referral_domain::error_chain(&error))
                })?;
            if let Some(counts) = map_run.item_counts() {
                progress.items_total += counts.total();
                progress.items_succeeded += counts.succeeded();
                progress.items_failed += counts.failed() + counts.timed_out() + counts.aborted();
                progress.items_running += counts.running();
                progress.items_pending += counts.pending();
            }
        }
        let running = *described.status() == ExecutionStatus::Running;
        if last.as_ref() != Some(&progress) {
            if json {
                println!("{}", serde_json::to_string(&progress)?);
            } else {
                let error = progress
                    .error
                    .as_deref()
                    .map_or_else(String::new, |error| format!(" ({error})"));
                println!(
                    "{}{error}: {}/{} objects loaded, {} failed, {} running, {} pending",
                    progress.status,
                    progress.items_succeeded,
                    progress.items_total,
                    progress.items_failed,
                    progress.items_running,
                    progress.items_pending
                );
            }
        }
        if !running {
            let succeeded = *described.status() == ExecutionStatus::Succeeded;
            return Ok(if succeeded {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        last = Some(progress);
        tokio::time::sleep(poll).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_s3_address_is_a_bucket_and_a_prefix_ending_in_a_slash() {
        let at = S3Location::parse("s3://history/2026/run-1").unwrap();
        assert_eq!(
            (at.bucket.as_str(), at.prefix.as_str()),
            ("history", "2026/run-1/")
        );
        assert_eq!(at.key(3), "2026/run-1/part-0003.jsonl");
        assert_eq!(
            S3Location::parse("s3://history").unwrap().key(0),
            "part-0000.jsonl"
        );
        assert_eq!(S3Location::parse("s3://history/").unwrap().prefix, "");
        assert!(S3Location::parse("history/x").is_err());
        assert!(S3Location::parse("s3:///x").is_err());
    }
}
