//! `referral local setup|serve|send`, `referral features get`, `referral messages list`:
//! the asynchronous pipeline on one machine (`serve`, in [`crate::serve`]), the resources
//! it uses through AWS APIs, and a webhook sender.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use axum::body::Bytes;
use axum::http::{Request, Uri};
use chrono::Utc;
use clap::Subcommand;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use referral_aws::config::{AccessError, check_access};
use referral_aws::dynamo::DynamoFeatureStore;
use referral_domain::event::{EventError, normalise_email};
use referral_domain::ports::{AdapterError, FeatureStore, MessageStore};
use referral_domain::trace::TraceContext;
use tokio::task::JoinSet;

use crate::DEVELOPMENT_SECRET;
use crate::dlq::pace::parse_rate;
use crate::inputs;
use crate::lifetime::{RecomputeArgs, RecomputeError};
use crate::names::{RedriveArgs, ResourceNames, TableNames};
use crate::policy::{PreviewArgs, PreviewError};
use crate::remote;
use crate::serve::{self, ServeArgs, ServeError};

#[derive(Debug, clap::Args)]
pub struct LocalArgs {
    #[command(subcommand)]
    command: LocalCommand,
}

#[derive(Debug, Subcommand)]
enum LocalCommand {
    /// Create the queue, its DLQ (redrive policy) and both tables, if absent.
    Setup(SetupArgs),
    /// Serve signed webhooks on 127.0.0.1 and run enricher and orchestrator until Ctrl-C:
    /// in memory with no endpoint, through AWS APIs with `--endpoint-url` or `--aws`.
    Serve(ServeArgs),
    /// Sign and POST webhook files to a `local serve` (or a deployed API) and print answers.
    Send(SendArgs),
}

#[derive(Debug, clap::Args)]
struct SetupArgs {
    #[command(flatten)]
    resources: ResourceNames,
    #[command(flatten)]
    redrive: RedriveArgs,
}

#[derive(Debug, clap::Args)]
struct SendArgs {
    /// Webhook files (.json, .jsonl, .ndjson) or directories of them.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Where to POST.
    #[arg(long, default_value = "http://127.0.0.1:8080/webhooks")]
    url: String,
    /// The signing secret.
    #[arg(long, env = "WEBHOOK_SECRET", default_value = DEVELOPMENT_SECRET, hide_env_values = true)]
    secret: String,
    /// Load mode: requests per second (e.g. `50` or `50/s`).
    #[arg(long, value_parser = parse_rate)]
    rate: Option<f64>,
    /// Load mode: send this many requests, cycling through the files' events.
    #[arg(long)]
    count: Option<usize>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// A W3C `traceparent` header to send with every request, so that the webhooks join a
    /// trace of yours (by default ingest starts one per webhook and answers with it).
    #[arg(long, value_parser = parse_traceparent)]
    traceparent: Option<TraceContext>,
}

fn parse_traceparent(header: &str) -> Result<TraceContext, String> {
    TraceContext::parse(header).map_err(|error| error.to_string())
}

#[derive(Debug, clap::Args)]
pub struct FeaturesArgs {
    #[command(subcommand)]
    command: FeaturesCommand,
}

#[derive(Debug, Subcommand)]
enum FeaturesCommand {
    /// Print one customer's features as JSON.
    Get {
        email: String,
        #[command(flatten)]
        tables: TableNames,
    },
    /// Move every customer to the lifetime-value band a rule gives them, from the stored
    /// aggregates; each move is recorded as suppressed (`recompute`), so no message is sent.
    Recompute(RecomputeArgs),
}

#[derive(Debug, clap::Args)]
pub struct MessagesArgs {
    #[command(subcommand)]
    command: MessagesCommand,
}

#[derive(Debug, Subcommand)]
enum MessagesCommand {
    /// Print one customer's referral messages as JSON, oldest first.
    List {
        email: String,
        #[command(flatten)]
        tables: TableNames,
    },
    /// Print the prompt a customer's current features would produce and the message
    /// policy's decision on them; calls no model and writes nothing.
    Preview(PreviewArgs),
}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Aws(#[from] AdapterError),
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error(transparent)]
    Preview(#[from] PreviewError),
    #[error(transparent)]
    Recompute(#[from] RecomputeError),
    #[error(transparent)]
    Input(#[from] inputs::InputError),
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The customer's key is the canonical address; one that has none names no customer.
    #[error("{0}")]
    Email(#[from] EventError),
    #[error("--url {0}: only http:// URLs are supported")]
    Url(String),
}

/// The bucket `local setup` creates for `referral backfill --to` (the stack's `BackfillBucket`).
pub const LOCAL_BACKFILL_BUCKET: &str = "referral-backfill";

pub async fn run(args: &LocalArgs, endpoint: Option<&str>) -> Result<ExitCode, LocalError> {
    match &args.command {
        LocalCommand::Setup(setup) => {
            let sdk = aws_access(endpoint).await?;
            let resources =
                remote::setup(&sdk, &setup.resources, setup.redrive.max_receive_count).await?;
            println!("queue       {}", resources.queues.url);
            println!("dlq         {}", resources.queues.dlq_url);
            println!("features    {}", resources.tables.features);
            println!("messages    {}", resources.tables.messages);
            println!("stream      {}", resources.stream_arn);
            let s3 = referral_backfill::s3_client(&sdk);
            referral_aws_local::provision::ensure_bucket(&s3, LOCAL_BACKFILL_BUCKET).await?;
            println!(
                "bucket      {LOCAL_BACKFILL_BUCKET}   (referral backfill --to s3://{LOCAL_BACKFILL_BUCKET}/PREFIX)"
            );
            Ok(ExitCode::SUCCESS)
        }
        LocalCommand::Serve(serve_args) => {
            let sdk = match serve_args.needs_aws(endpoint) {
                true => Some(aws_access(endpoint).await?),
                false => None,
            };
            Ok(serve::serve(serve_args, sdk.as_ref()).await?)
        }
        LocalCommand::Send(send_args) => send(send_args).await,
    }
}

/// The SDK configuration of a command that calls AWS, or a one-line account of what is
/// missing (an emulator endpoint needs nothing: its test credentials are filled in).
pub async fn aws_access(endpoint: Option<&str>) -> Result<SdkConfig, AccessError> {
    let sdk = referral_aws::config::load(endpoint).await;
    if endpoint.is_none() {
        check_access(&sdk).await?;
    }
    Ok(sdk)
}

pub async fn features(args: &FeaturesArgs, sdk: &SdkConfig) -> Result<ExitCode, LocalError> {
    let (email, features_table) = match &args.command {
        FeaturesCommand::Get { email, tables } => (email, &tables.features_table),
        FeaturesCommand::Recompute(recompute) => {
            return Ok(crate::lifetime::recompute(recompute, sdk).await?);
        }
    };
    let store = DynamoFeatureStore::new(aws_sdk_dynamodb::Client::new(sdk), features_table);
    let email = normalise_email(email)?;
    match store.load(&email).await? {
        Some(features) => {
            println!("{}", serde_json::to_string_pretty(&features.view())?);
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!("no features for that customer in {features_table}");
            Ok(ExitCode::FAILURE)
        }
    }
}

pub async fn messages(args: &MessagesArgs, sdk: &SdkConfig) -> Result<ExitCode, LocalError> {
    let (email, messages_table) = match &args.command {
        MessagesCommand::List { email, tables } => (email, &tables.messages_table),
        MessagesCommand::Preview(preview) => return Ok(crate::policy::preview(preview, sdk).await?),
    };
    let store = referral_aws::dynamo::DynamoMessageStore::new(
        aws_sdk_dynamodb::Client::new(sdk),
        messages_table,
    );
    let messages = store.list(&normalise_email(email)?).await?;
    println!("{}", serde_json::to_string_pretty(&messages)?);
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------
// send

async fn send(args: &SendArgs) -> Result<ExitCode, LocalError> {
    let inputs = inputs::read_inputs(&args.files)?;
    if inputs.is_empty() {
        eprintln!("no events in the given files");
        return Ok(ExitCode::FAILURE);
    }
    let total = args.count.unwrap_or(inputs.len());
    let load_mode = args.count.is_some() || args.rate.is_some();
    let interval = args.rate.map(|rate| Duration::from_secs_f64(1.0 / rate));
    let url: Uri = args
        .url
        .parse()
        .ok()
        .filter(|url: &Uri| url.scheme_str() == Some("http") && url.authority().is_some())
        .ok_or_else(|| LocalError::Url(args.url.clone()))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let started = Instant::now();
    let by_status: Arc<std::sync::Mutex<BTreeMap<u16, u64>>> = Arc::default();
    let failures = Arc::new(AtomicU64::new(0));
    let mut in_flight = JoinSet::new();
    for index in 0..total {
        if let Some(interval) = interval {
            let due = started + interval.mul_f64(index as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        while in_flight.len() >= args.concurrency.max(1) {
            in_flight.join_next().await;
        }
        let input = inputs[index % inputs.len()].clone();
        let (client, url) = (client.clone(), url.clone());
        let secret = args.secret.clone();
        let traceparent = args.traceparent.map(|trace| trace.to_string());
        let by_status = Arc::clone(&by_status);
        let failures = Arc::clone(&failures);
        in_flight.spawn(async move {
            let signature =
                referral_ingest::sign(&secret, Utc::now().timestamp(), input.body.as_bytes());
            let result = post(&client, &url, &signature, traceparent, input.body).await;
            match result {
                Ok((status, body)) => {
                    if let Ok(mut counts) = by_status.lock() {
                        *counts.entry(status).or_insert(0) += 1;
                    }
                    if !load_mode {
                        println!(
                            "{}  {status}  {}",
                            input.source,
                            String::from_utf8_lossy(&body)
                        );
                    }
                }
                Err(error) => {
                    failures.fetch_add(1, Ordering::Relaxed);
                    eprintln!("{}  failed: {error}", input.source);
                }
            }
        });
    }
    while in_flight.join_next().await.is_some() {}
    let elapsed = started.elapsed().as_secs_f64();
    let counts = by_status.lock().map(|c| c.clone()).unwrap_or_default();
    let summary: Vec<String> = counts
        .iter()
        .map(|(status, n)| format!("{status}: {n}"))
        .collect();
    eprintln!(
        "sent {total} in {elapsed:.2} s ({:.0}/s); {}; connection failures: {}",
        total as f64 / elapsed.max(f64::EPSILON),
        summary.join(", "),
        failures.load(Ordering::Relaxed)
    );
    Ok(if failures.load(Ordering::Relaxed) == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// How long one exchange of `local send` may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// The most of an answer read: answers are short JSON documents.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("cannot build the request: {0}")]
    Request(#[from] axum::http::Error),
    #[error("connection failed: {0}")]
    Connect(#[from] hyper_util::client::legacy::Error),
    #[error("cannot read the answer: {0}")]
    Answer(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("no answer within {SEND_TIMEOUT:?}")]
    Timeout,
}

/// POSTs one signed webhook; the status and body of the answer.
async fn post(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &Uri,
    signature: &str,
    traceparent: Option<String>,
    body: String,
) -> Result<(u16, Bytes), SendError> {
    let mut request = Request::post(url)
        .header("content-type", "application/json")
        .header("x-signature", signature);
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    let request = request.body(Full::new(Bytes::from(body)))?;
    let exchange = async {
        let response = client.request(request).await?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(SendError::Answer)?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(SEND_TIMEOUT, exchange)
        .await
        .map_err(|_| SendError::Timeout)?
}
