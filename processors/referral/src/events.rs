//! `referral events apigw|sqs|stream PATHS`: the AWS events each Lambda function receives
//! for a set of webhook files, chained as the pipeline chains them. `apigw` is what a sender
//! posts to the HTTP API, `sqs` what ingest's messages become for the enricher, `stream`
//! what the enricher's writes become for the orchestrator (computed by the real fold).
//!
//! Output is reproducible: ids and timestamps are derived from the inputs and from
//! `--timestamp`, whose default is 2 s after the latest `occurred_at` of the inputs.
//! `events/lambda/generate.sh` regenerates the fixtures of `events/lambda/` with it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use referral_fixtures::{
    ApigwOptions, SentWebhook, Signature, SqsOptions, StreamOptions, When, apigw_requests,
    parse_when, render, send_time, sqs_batches, stream_events, webhooks,
};
use serde_json::Value;

use crate::DEVELOPMENT_SECRET;
use crate::inputs::read_inputs;
pub use referral_fixtures::EventsError;

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    #[command(subcommand)]
    pub kind: EventKind,
}

#[derive(Debug, clap::Subcommand)]
pub enum EventKind {
    /// API Gateway HTTP API (payload 2.0) requests, one per webhook, signed as a sender
    /// signs them (ingest's input).
    Apigw(ApigwArgs),
    /// The SQS batches these webhooks become once ingest has queued them (the enricher's
    /// input).
    Sqs(SqsArgs),
    /// The DynamoDB Streams records (NEW_IMAGE) of the enricher's writes for these webhooks
    /// (the orchestrator's input).
    Stream(StreamArgs),
}

#[derive(Debug, clap::Args)]
pub struct CommonArgs {
    /// Webhook files (.json, .jsonl, .ndjson) or directories of them, as `referral run`
    /// takes them.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Write to this file instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// When the webhooks were sent: unix seconds, an RFC 3339 date-time, or `now` (default:
    /// 2 s after the latest occurred_at of the inputs, so the output is reproducible).
    #[arg(long, value_parser = parse_when)]
    pub timestamp: Option<When>,
}

#[derive(Debug, clap::Args)]
pub struct ApigwArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// The signing secret (default: the development secret `referral invoke` and `local
    /// serve` use).
    #[arg(long, default_value = DEVELOPMENT_SECRET, hide_default_value = true)]
    pub secret: String,
    /// No x-signature header (ingest answers 401 `missing`).
    #[arg(long, conflicts_with = "mis_signed")]
    pub unsigned: bool,
    /// A signature that does not match the body (ingest answers 401 `mismatch`).
    #[arg(long)]
    pub mis_signed: bool,
    /// Base64-encode the body, as API Gateway passes a body it treats as binary.
    #[arg(long)]
    pub base64: bool,
}

#[derive(Debug, clap::Args)]
pub struct SqsArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Messages per event, like the event-source mapping's BatchSize.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=10_000))]
    pub batch_size: u16,
    /// Deliveries so far of every message (ApproximateReceiveCount).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub receive_count: u32,
    /// The queue's name, in the records' eventSourceARN.
    #[arg(long, default_value = "referral-webhooks")]
    pub queue: String,
}

#[derive(Debug, clap::Args)]
pub struct StreamArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Webhooks per enricher invocation: a customer's events in one batch make one write.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=10_000))]
    pub batch_size: u16,
    /// Records per event, like the orchestrator's event-source mapping's BatchSize.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=10_000))]
    pub records_per_event: u16,
    /// The table's name, in the records' eventSourceARN.
    #[arg(long, default_value = "CustomerFeatures")]
    pub table: String,
}

/// Runs the command: the events on stdout or in `--out`.
pub fn run(args: &EventsArgs) -> Result<ExitCode, EventsError> {
    let (common, events) = match &args.kind {
        EventKind::Apigw(apigw) => (&apigw.common, generate_apigw(apigw)?),
        EventKind::Sqs(sqs) => (&sqs.common, generate_sqs(sqs)?),
        EventKind::Stream(stream) => (&stream.common, generate_stream(stream)?),
    };
    let text = render(&events)?;
    match &common.out {
        Some(path) => std::fs::write(path, text).map_err(|source| EventsError::Write {
            path: path.clone(),
            source,
        })?,
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(EventsError::Stdout)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read(common: &CommonArgs) -> Result<Vec<SentWebhook>, EventsError> {
    Ok(webhooks(&read_inputs(&common.paths)?))
}

fn generate_apigw(args: &ApigwArgs) -> Result<Vec<Value>, EventsError> {
    let webhooks = read(&args.common)?;
    let secret = args.secret.clone();
    let signature = if args.unsigned {
        Signature::None
    } else if args.mis_signed {
        Signature::Wrong { secret }
    } else {
        Signature::Valid { secret }
    };
    let options = ApigwOptions {
        signature,
        base64: args.base64,
        sent_at: send_time(&webhooks, args.common.timestamp),
    };
    Ok(apigw_requests(&webhooks, &options))
}

fn generate_sqs(args: &SqsArgs) -> Result<Vec<Value>, EventsError> {
    let webhooks = read(&args.common)?;
    let options = SqsOptions {
        batch_size: usize::from(args.batch_size),
        receive_count: args.receive_count,
        queue: args.queue.clone(),
        sent_at: send_time(&webhooks, args.common.timestamp),
    };
    sqs_batches(&webhooks, &options)
}

fn generate_stream(args: &StreamArgs) -> Result<Vec<Value>, EventsError> {
    let webhooks = read(&args.common)?;
    let options = StreamOptions {
        batch_size: usize::from(args.batch_size),
        records_per_event: usize::from(args.records_per_event),
        table: args.table.clone(),
        sent_at: send_time(&webhooks, args.common.timestamp),
    };
    let events = stream_events(&webhooks, &options)?;
    if events.is_empty() {
        return Err(EventsError::Nothing {
            what: "stream record",
            why: "no webhook applies a new service event (all invalid, duplicates or of \
                  another type)",
        });
    }
    Ok(events)
}
