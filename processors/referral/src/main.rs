//! `referral`: run the referral pipeline locally, on embedded adapters or AWS APIs.

mod inputs;
mod output;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use referral_shared::embedded::{EmbeddedFeatureStore, EmbeddedMessageStore, EmbeddedQueue};
use referral_shared::enricher::{Enricher, EnricherConfig};
use referral_shared::orchestrator::{Orchestrator, OrchestratorConfig};
use referral_shared::pipeline::{RunConfig, read_results, run_pipeline};
use referral_shared::template::TemplateGenerator;

#[derive(Debug, Parser)]
#[command(
    name = "referral",
    version,
    about = "Run and operate the referral pipeline"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Push webhook files through the whole pipeline and report features and messages.
    Run(RunArgs),
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
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Input(#[from] inputs::InputError),
    #[error("the pipeline failed: {0}")]
    Pipeline(#[from] referral_shared::ports::AdapterError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot encode the report as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(&args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &RunArgs) -> Result<ExitCode, CliError> {
    let inputs = inputs::read_inputs(&args.paths)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(CliError::Runtime)?;
    let config = RunConfig {
        batch_size: usize::from(args.batch_size),
        ..RunConfig::default()
    };
    let (report, results) = runtime.block_on(async {
        let queue = EmbeddedQueue::new();
        let store = EmbeddedFeatureStore::new();
        let messages = EmbeddedMessageStore::new();
        let enricher = Enricher::new(&store, EnricherConfig::default());
        let orchestrator =
            Orchestrator::new(TemplateGenerator, &messages, OrchestratorConfig::default());
        let report =
            run_pipeline(&inputs, &queue, &enricher, &store, &orchestrator, config).await?;
        let results = read_results(&report.customers, &store, &messages).await?;
        Ok::<_, CliError>((report, results))
    })?;
    if args.json {
        println!("{}", output::json(&report, &results)?);
    } else {
        print!(
            "{}",
            output::text(&report, &results, "embedded pipeline, template generator")
        );
    }
    Ok(if report.unprocessed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
