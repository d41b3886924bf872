//! `referral`: run the referral pipeline locally, on embedded adapters or AWS APIs.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use referral_aws::erasure::ErasureError;
use referral_aws::sqs::SqsQueue;
use referral_aws_local::stream_reader::{DynamoStreamFeed, StartingPosition};
use referral_cli::names::{RedriveArgs, ResourceNames};
use referral_cli::{
    backfill, customers, dlq, events, inputs, invoke, lifetime, local, output, policy, remote,
    serve,
};
use referral_domain::enricher::EnricherConfig;
use referral_domain::orchestrator::{Orchestrator, OrchestratorConfig};
use referral_domain::template::TemplateGenerator;
use referral_local::mapping::StreamMapping;
use referral_local::pipeline::{
    InputEvent, RunConfig, RunReport, RunResults, read_results, run_in_memory, run_pipeline,
};

#[derive(Debug, Parser)]
#[command(
    name = "referral",
    version,
    about = "Run and operate the referral pipeline"
)]
struct Cli {
    /// Run against AWS APIs at this endpoint (an AWS account, or a local emulator such as
    /// moto's server) instead of the embedded in-memory adapters.
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL")]
    endpoint_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Push webhook files through the whole pipeline and report features and messages.
    Run(RunArgs),
    /// Load a history of webhooks (JSON, JSONL, CSV) into the feature store, without
    /// messages (AWS APIs).
    Backfill(backfill::BackfillArgs),
    /// Inspect, export, import and replay dead-letter queues (AWS APIs).
    Dlq(dlq::DlqArgs),
    /// The asynchronous pipeline on this machine: in memory, or through AWS APIs.
    Local(local::LocalArgs),
    /// Read a customer's features from the table (AWS APIs).
    Features(local::FeaturesArgs),
    /// Erase customers everywhere the pipeline keeps them (AWS APIs).
    Customers(customers::CustomersArgs),
    /// Read a customer's referral messages, or preview the policy's decision (AWS APIs).
    Messages(local::MessagesArgs),
    /// Run a function's built binary on events, as Lambda would (like `sam local invoke`).
    Invoke(invoke::InvokeArgs),
    /// Generate the AWS events the functions receive for webhook files (API Gateway, SQS,
    /// DynamoDB Streams), chained as the pipeline chains them.
    Events(events::EventsArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Print one JSON object {features, messages, rejected, summary} instead of a summary.
    #[arg(long)]
    json: bool,
    /// Messages per enricher invocation, like the SQS event source's batch size.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=10_000))]
    batch_size: u16,
    /// Webhook files (.json, .jsonl, .ndjson) or directories of them.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    policy: policy::PolicyArgs,
    #[command(flatten)]
    lifetime_value: lifetime::LifetimeValueArgs,
    #[command(flatten)]
    resources: ResourceNames,
    #[command(flatten)]
    redrive: RedriveArgs,
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Input(#[from] inputs::InputError),
    #[error("the pipeline failed: {0}")]
    Pipeline(#[from] referral_domain::ports::AdapterError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot encode the report as JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Dlq(#[from] dlq::DlqError),
    #[error(transparent)]
    Backfill(#[from] backfill::BackfillError),
    #[error(transparent)]
    Local(#[from] local::LocalError),
    #[error(transparent)]
    Invoke(#[from] invoke::InvokeCommandError),
    #[error(transparent)]
    Events(#[from] events::EventsError),
    #[error(transparent)]
    Forget(#[from] customers::ForgetError),
    #[error(transparent)]
    Rule(#[from] referral_domain::features::RuleError),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let endpoint = cli.endpoint_url.as_deref();
    let result = match &cli.command {
        Command::Run(args) => run(args, endpoint),
        Command::Backfill(args) => with_runtime(|| async {
            let sdk = local::aws_access(endpoint)
                .await
                .map_err(local::LocalError::from)?;
            Ok(backfill::run(args, &sdk).await?)
        }),
        Command::Dlq(args) => with_runtime(|| async {
            let sdk = local::aws_access(endpoint)
                .await
                .map_err(local::LocalError::from)?;
            Ok(dlq::run(args, &sdk).await?)
        }),
        Command::Local(args) => with_runtime(|| async { Ok(local::run(args, endpoint).await?) }),
        Command::Features(args) => with_runtime(|| async {
            let sdk = local::aws_access(endpoint)
                .await
                .map_err(local::LocalError::from)?;
            Ok(local::features(args, &sdk).await?)
        }),
        Command::Customers(args) => with_runtime(|| async {
            let sdk = local::aws_access(endpoint)
                .await
                .map_err(local::LocalError::from)?;
            Ok(customers::run(args, &sdk).await?)
        }),
        Command::Messages(args) => with_runtime(|| async {
            let sdk = local::aws_access(endpoint)
                .await
                .map_err(local::LocalError::from)?;
            Ok(local::messages(args, &sdk).await?)
        }),
        Command::Invoke(args) => with_runtime(|| async { Ok(invoke::run(args, endpoint).await?) }),
        Command::Events(args) => events::run(args).map_err(CliError::from),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", referral_domain::error_chain(&error));
            ExitCode::from(exit_status(&error))
        }
    }
}

/// A usage or input error (flags, files, settings, names): status 2. A failure while running
/// (an AWS API, the network, a write, a process): status 1, the status of a run that
/// failed part of its work.
fn exit_status(error: &CliError) -> u8 {
    const USAGE: u8 = 2;
    const FAILURE: u8 = 1;
    let dlq = |error: &dlq::DlqError| match error {
        dlq::DlqError::ImportSend { .. } | dlq::DlqError::Json(_) => FAILURE,
        // A queue the AWS API does not find is a wrong name (README: "usage or queue error").
        _ => USAGE,
    };
    match error {
        CliError::Input(_) | CliError::Rule(_) => USAGE,
        CliError::Pipeline(_) | CliError::Runtime(_) | CliError::Json(_) => FAILURE,
        CliError::Dlq(error) => dlq(error),
        CliError::Backfill(
            backfill::BackfillError::State { .. }
            | backfill::BackfillError::Store(_)
            | backfill::BackfillError::Json(_)
            | backfill::BackfillError::Aws { .. },
        ) => FAILURE,
        CliError::Backfill(_) => USAGE,
        CliError::Forget(
            customers::ForgetError::Output(_)
            | customers::ForgetError::Erasure(ErasureError::Store(_)),
        ) => FAILURE,
        // A queue the AWS API does not find is a wrong name, as for `dlq`.
        CliError::Forget(_) => USAGE,
        CliError::Local(error) => match error {
            local::LocalError::Aws(_)
            | local::LocalError::Json(_)
            | local::LocalError::Serve(
                serve::ServeError::Aws(_)
                | serve::ServeError::Listen { .. }
                | serve::ServeError::Signal(_),
            )
            | local::LocalError::Preview(
                policy::PreviewError::Store(_) | policy::PreviewError::Json(_),
            )
            | local::LocalError::Recompute(
                lifetime::RecomputeError::Store(_)
                | lifetime::RecomputeError::Json(_)
                | lifetime::RecomputeError::Segment(_),
            ) => FAILURE,
            local::LocalError::Serve(serve::ServeError::DeadLetterQueue(error)) => dlq(error),
            _ => USAGE,
        },
        CliError::Invoke(
            invoke::InvokeCommandError::Run(_) | invoke::InvokeCommandError::Stdout(_),
        ) => FAILURE,
        CliError::Invoke(_) => USAGE,
        CliError::Events(
            events::EventsError::Write { .. }
            | events::EventsError::Stdout(_)
            | events::EventsError::Item(_)
            | events::EventsError::Json(_),
        ) => FAILURE,
        CliError::Events(_) => USAGE,
    }
}

/// Runs an async command on a runtime of its own (the embedded run keeps its own setup).
fn with_runtime<F, Fut>(command: F) -> Result<ExitCode, CliError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<ExitCode, CliError>>,
{
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?
        .block_on(command())
}

fn run(args: &RunArgs, endpoint_url: Option<&str>) -> Result<ExitCode, CliError> {
    let lifetime_value = args.lifetime_value.rule()?;
    let inputs = inputs::read_inputs(&args.paths)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    let config = RunConfig {
        batch_size: usize::from(args.batch_size),
        max_receives: args.redrive.max_receive_count,
        policy: args.policy.policy(),
        retention: args.policy.retention.message_retention,
        lifetime_value,
        ..RunConfig::default()
    };
    let (report, results, mode) = match endpoint_url {
        None => runtime.block_on(run_embedded(&inputs, config))?,
        Some(url) => runtime.block_on(run_remote(
            &inputs,
            config,
            url,
            &args.resources,
            args.redrive.max_receive_count,
        ))?,
    };
    if args.json {
        println!("{}", output::json(&report, &results)?);
    } else {
        print!("{}", output::text(&report, &results, &mode));
    }
    Ok(
        if report.unprocessed.is_empty() && report.stream.failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

type RunOutput = (RunReport, RunResults, String);

/// The whole pipeline in this process, on in-memory adapters: no AWS client is built.
async fn run_embedded(inputs: &[InputEvent], config: RunConfig) -> Result<RunOutput, CliError> {
    let (report, results) = run_in_memory(inputs, config).await?;
    Ok((
        report,
        results,
        "embedded pipeline, template generator".to_owned(),
    ))
}

/// The same pipeline through AWS APIs at `endpoint_url`, this process playing the
/// event-source mappings.
async fn run_remote(
    inputs: &[InputEvent],
    config: RunConfig,
    endpoint_url: &str,
    names: &ResourceNames,
    max_receive_count: u32,
) -> Result<RunOutput, CliError> {
    let sdk = referral_aws::config::load(Some(endpoint_url)).await;
    let resources = remote::setup(&sdk, names, max_receive_count).await?;
    // Only this run's changes: earlier runs against the same tables are not replayed.
    let feed = DynamoStreamFeed::start(
        aws_sdk_dynamodbstreams::Client::new(&sdk),
        resources.stream_arn.clone(),
        StartingPosition::Latest,
    )
    .await?;
    let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), resources.queues.url.clone());
    let enricher = remote::LambdaEnricher::new(
        &sdk,
        &resources,
        EnricherConfig {
            lifetime_value: config.lifetime_value,
            ..EnricherConfig::default()
        },
    );
    let messages = remote::message_store(&sdk, &resources, config.retention);
    eprintln!(
        "referral: Bedrock is not used by local runs; messages come from the template generator"
    );
    let orchestrator = Orchestrator::new(
        TemplateGenerator,
        messages.clone(),
        OrchestratorConfig {
            policy: config.policy,
            ..OrchestratorConfig::default()
        },
    );
    let stream = StreamMapping::new(feed, &orchestrator);
    let config = RunConfig {
        // DynamoDB Streams publish a write's record shortly after the write returns.
        settle_polls: 5,
        settle_pause: std::time::Duration::from_millis(200),
        ..config
    };
    let report = run_pipeline(inputs, &queue, &enricher, &stream, config).await?;
    let results = read_results(&report.customers, enricher.store(), &messages).await?;
    Ok((
        report,
        results,
        format!("AWS APIs at {endpoint_url}, template generator"),
    ))
}
