//! `referral local setup|serve|send`, `referral features get`, `referral messages list`:
//! the whole asynchronous pipeline on one machine against an AWS-API endpoint (moto's
//! server in development), this process playing API Gateway and both event-source mappings.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::aws_local::stream_reader::{DynamoStreamFeed, StartingPosition};
use aws_config::SdkConfig;
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::{HeaderMap, HeaderName, HeaderValue, Method};
use base64::Engine;
use chrono::Utc;
use clap::Subcommand;
use referral_aws::dynamo::DynamoFeatureStore;
use referral_aws::sqs::SqsQueue;
use referral_domain::enricher::Outcome;
use referral_domain::env::{EnvError, Vars};
use referral_domain::orchestrator::StreamCounters;
use referral_domain::orchestrator::{Orchestrator, OrchestratorConfig};
use referral_domain::ports::{AdapterError, FeatureStore, MessageStore, WorkQueue};
use referral_domain::redact::CUSTOMER_REF_KEY_VAR;
use referral_domain::template::TemplateGenerator;
use referral_ingest::Deps;
use referral_ingest::config::{QUEUE_URL_VAR, SECRETS_VAR};
use referral_local::mapping::StreamMapping;
use referral_local::pipeline::{BatchHandler, StreamConsumer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::DEVELOPMENT_SECRET;
use crate::dlq::pace::parse_rate;
use crate::http;
use crate::inputs;
use crate::policy::{PolicyArgs, PreviewArgs};
use crate::remote::{self, LambdaEnricher, ResourceArgs};

const DEFAULT_PORT: u16 = 8080;
/// How long an idle stream poller sleeps between polls.
const STREAM_IDLE: Duration = Duration::from_millis(200);

#[derive(Debug, clap::Args)]
pub struct LocalArgs {
    #[command(subcommand)]
    command: LocalCommand,
}

#[derive(Debug, Subcommand)]
enum LocalCommand {
    /// Create the queue, its DLQ (redrive policy) and both tables, if absent.
    Setup(SetupArgs),
    /// Serve signed webhooks on 127.0.0.1 and run enricher and orchestrator until Ctrl-C.
    Serve(ServeArgs),
    /// Sign and POST webhook files to a `local serve` (or a deployed API) and print answers.
    Send(SendArgs),
}

#[derive(Debug, clap::Args)]
struct SetupArgs {
    #[command(flatten)]
    resources: ResourceArgs,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Port of the webhook listener on 127.0.0.1.
    #[arg(long, default_value_t = DEFAULT_PORT)]
    port: u16,
    /// Webhook secrets, comma-separated (at most two, for rotation).
    #[arg(long, env = "WEBHOOK_SECRETS", default_value = DEVELOPMENT_SECRET, hide_env_values = true)]
    secrets: String,
    /// Messages per enricher invocation.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=10))]
    batch_size: u16,
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(flatten)]
    resources: ResourceArgs,
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
        #[arg(long, env = "FEATURES_TABLE", default_value = "CustomerFeatures")]
        features_table: String,
    },
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
        #[arg(long, env = "MESSAGES_TABLE", default_value = "ReferralMessages")]
        messages_table: String,
    },
    /// Print the prompt a customer's current features would produce and the message
    /// policy's decision on them; calls no model and writes nothing.
    Preview(PreviewArgs),
}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Aws(#[from] AdapterError),
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Listen {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("ingest configuration: {0}")]
    Ingest(#[from] EnvError),
    #[error(transparent)]
    Input(#[from] inputs::InputError),
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot wait for Ctrl-C: {0}")]
    Signal(std::io::Error),
}

pub async fn run(args: &LocalArgs, endpoint: Option<&str>) -> Result<ExitCode, LocalError> {
    match &args.command {
        LocalCommand::Setup(setup) => {
            let sdk = referral_aws::config::load(endpoint).await;
            let resources = remote::setup(&sdk, &setup.resources).await?;
            println!("queue       {}", resources.queues.url);
            println!("dlq         {}", resources.queues.dlq_url);
            println!("features    {}", resources.tables.features);
            println!("messages    {}", resources.tables.messages);
            println!("stream      {}", resources.stream_arn);
            Ok(ExitCode::SUCCESS)
        }
        LocalCommand::Serve(serve_args) => serve(serve_args, endpoint).await,
        LocalCommand::Send(send_args) => send(send_args).await,
    }
}

pub async fn features(args: &FeaturesArgs, sdk: &SdkConfig) -> Result<ExitCode, LocalError> {
    let FeaturesCommand::Get {
        email,
        features_table,
    } = &args.command;
    let store = DynamoFeatureStore::new(aws_sdk_dynamodb::Client::new(sdk), features_table);
    let email = email.trim().to_lowercase();
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
        MessagesCommand::List {
            email,
            messages_table,
        } => (email, messages_table),
        MessagesCommand::Preview(preview) => return crate::policy::preview(preview, sdk).await,
    };
    let store = referral_aws::dynamo::DynamoMessageStore::new(
        aws_sdk_dynamodb::Client::new(sdk),
        messages_table,
    );
    let messages = store.list(&email.trim().to_lowercase()).await?;
    println!("{}", serde_json::to_string_pretty(&messages)?);
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------
// serve

type Ingest = Deps<SqsQueue>;

async fn serve(args: &ServeArgs, endpoint: Option<&str>) -> Result<ExitCode, LocalError> {
    referral_aws::telemetry::init();
    let sdk = referral_aws::config::load(endpoint).await;
    let resources = remote::setup(&sdk, &args.resources).await?;
    let queue_url = resources.queues.url.clone();
    // The customer-ref key is this process's, as `customer_ref` reads it everywhere.
    let process = Vars::process();
    let config = referral_ingest::Config::from_vars(&Vars::new(|name: &str| match name {
        SECRETS_VAR => Some(args.secrets.clone()),
        QUEUE_URL_VAR => Some(queue_url.clone()),
        CUSTOMER_REF_KEY_VAR => process.get(name),
        _ => None,
    }))?;
    let ingest = Arc::new(Deps {
        config,
        queue: SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), resources.queues.url.clone()),
    });
    if args.secrets == DEVELOPMENT_SECRET {
        tracing::warn!(
            "using the built-in development webhook secret; set WEBHOOK_SECRETS for anything else"
        );
    }
    tracing::info!("Bedrock is not used locally: messages come from the template generator");

    let listener = TcpListener::bind(("127.0.0.1", args.port))
        .await
        .map_err(|source| LocalError::Listen {
            port: args.port,
            source,
        })?;
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(args.port);
    let (stop, stopped) = watch::channel(false);

    let enricher = LambdaEnricher::new(&sdk, &resources);
    let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), resources.queues.url.clone())
        .with_wait_seconds(1);
    let feed = DynamoStreamFeed::start(
        aws_sdk_dynamodbstreams::Client::new(&sdk),
        resources.stream_arn.clone(),
        // The orchestrator is idempotent: replaying retained records only finds them done.
        StartingPosition::TrimHorizon,
    )
    .await?;
    let orchestrator = Orchestrator::new(
        TemplateGenerator,
        remote::message_store(&sdk, &resources),
        OrchestratorConfig {
            policy: args.policy.policy(),
            ..OrchestratorConfig::default()
        },
    );
    let stream = StreamMapping::new(feed, &orchestrator);
    eprintln!(
        "referral local serve: listening on http://127.0.0.1:{port}/webhooks (Ctrl-C to stop)"
    );

    let http_loop = accept_loop(listener, ingest, stopped.clone());
    let sqs_loop = enricher_loop(
        &queue,
        &enricher,
        usize::from(args.batch_size),
        stopped.clone(),
    );
    let stream_loop = stream_loop(&stream, stopped.clone());
    let signal = async {
        let result = tokio::signal::ctrl_c().await;
        let _ = stop.send(true);
        result
    };
    let (signal, (), sqs, stream) = tokio::join!(signal, http_loop, sqs_loop, stream_loop);
    signal.map_err(LocalError::Signal)?;
    eprintln!(
        "referral local serve: stopped; {} enricher batches, {} stream records",
        sqs, stream
    );
    Ok(ExitCode::SUCCESS)
}

async fn accept_loop(
    listener: TcpListener,
    ingest: Arc<Ingest>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let ingest = Arc::clone(&ingest);
                    connections.spawn(async move { serve_connection(stream, &ingest).await });
                }
                Err(error) => tracing::warn!(error = %error, "accept failed"),
            },
            _ = stopped.changed() => break,
        }
        // Reap finished connections so the set does not grow with the load.
        while connections.try_join_next().is_some() {}
    }
    // Requests already accepted are answered (and enqueued) before the loops stop.
    while connections.join_next().await.is_some() {}
}

async fn serve_connection(mut stream: TcpStream, ingest: &Ingest) {
    let request = match http::read_message(&mut stream).await {
        Ok(request) => request,
        Err(error) => {
            let _ = http::write_response(
                &mut stream,
                400,
                &BTreeMap::new(),
                error.to_string().as_bytes(),
            )
            .await;
            return;
        }
    };
    let response = referral_ingest::handle(ingest, api_gateway_request(request), Utc::now()).await;
    let headers: BTreeMap<String, String> = response
        .headers
        .iter()
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
        .collect();
    let body: Vec<u8> = match response.body {
        Some(Body::Text(text)) => text.into_bytes(),
        Some(Body::Binary(bytes)) => bytes,
        _ => Vec::new(),
    };
    if let Err(error) =
        http::write_response(&mut stream, response.status_code, &headers, &body).await
    {
        tracing::debug!(error = %error, "client went away before the answer");
    }
}

/// The API Gateway HTTP API (payload v2) event for a request, as the ingest Lambda gets it.
fn api_gateway_request(request: http::Message) -> ApiGatewayV2httpRequest {
    let mut event = ApiGatewayV2httpRequest::default();
    let (method, path) = request.start;
    event.request_context.http.method =
        Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
    event.request_context.http.path = Some(path.clone());
    event.raw_path = Some(path);
    event.request_context.request_id = Some(format!("local-{:x}", fastrand::u64(..)));
    let mut headers = HeaderMap::new();
    for (name, value) in &request.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
    event.headers = headers;
    // API Gateway passes text as is and base64-encodes anything else.
    match String::from_utf8(request.body) {
        Ok(text) => event.body = Some(text),
        Err(error) => {
            event.body = Some(base64::engine::general_purpose::STANDARD.encode(error.into_bytes()));
            event.is_base64_encoded = true;
        }
    }
    event
}

/// The SQS event-source mapping: long-poll, invoke the enricher with a batch, delete what it
/// handled, leave the reported failures to come back after a visibility backoff. Stops
/// between batches, so no received message is left in flight.
async fn enricher_loop(
    queue: &SqsQueue,
    enricher: &LambdaEnricher,
    batch_size: usize,
    stopped: watch::Receiver<bool>,
) -> u64 {
    let mut batches = 0;
    while !*stopped.borrow() {
        let received = match queue.receive(batch_size).await {
            Ok(received) => received,
            Err(error) => {
                tracing::warn!(error = %error, "receive failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if received.is_empty() {
            continue;
        }
        batches += 1;
        let report = enricher.handle_batch(&received).await;
        let mut done = Vec::new();
        for (message, result) in received.iter().zip(&report.messages) {
            if let Outcome::Failed(_) = result.outcome {
                // Exponential visibility backoff, as a redelivery after the timeout would.
                let seconds = 2_i32.saturating_pow(message.receive_count.min(6));
                let _ = queue
                    .client()
                    .change_message_visibility()
                    .queue_url(queue.url())
                    .receipt_handle(&message.receipt)
                    .visibility_timeout(seconds)
                    .send()
                    .await;
            } else {
                done.push(message.receipt.clone());
            }
        }
        if let Err(error) = queue.delete(&done).await {
            tracing::warn!(error = %error, "delete failed; the messages will come back as duplicates");
        }
    }
    batches
}

/// The stream event-source mapping: poll the shards and deliver what they hold to the
/// orchestrator's handler, until stopped.
async fn stream_loop<S: StreamConsumer>(stream: &S, stopped: watch::Receiver<bool>) -> u64 {
    let mut counters = StreamCounters::default();
    while !*stopped.borrow() {
        match stream.consume(100, &mut counters).await {
            Ok(0) => tokio::time::sleep(STREAM_IDLE).await,
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(error = %error, "stream poll failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    counters.records
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
        let url = args.url.clone();
        let secret = args.secret.clone();
        let by_status = Arc::clone(&by_status);
        let failures = Arc::clone(&failures);
        in_flight.spawn(async move {
            let signature =
                referral_ingest::sign(&secret, Utc::now().timestamp(), input.body.as_bytes());
            let result = http::post(
                &url,
                &[
                    ("content-type", "application/json"),
                    ("x-signature", &signature),
                ],
                input.body.as_bytes(),
            )
            .await;
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
