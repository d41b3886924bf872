//! `bench`: the enricher's capacity-and-CPU benchmark (see `referral_tests::bench`), and the
//! corpora it runs on. `tests/bench.sh` starts the emulator, builds the release enricher and
//! runs this.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use referral_tests::bench::{BenchSpec, render, run};
use referral_tests::corpus::Corpus;

#[derive(Debug, Parser)]
#[command(name = "bench", about = "The enricher's capacity-and-CPU benchmark")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Deliver a corpus to the enricher binary under a loopback Lambda Runtime API, against
    /// the emulator at REFERRAL_TEST_ENDPOINT, and print its figures.
    Capacity {
        /// The enricher binary to measure.
        #[arg(long, default_value = "target/release/enricher")]
        enricher: PathBuf,
        #[arg(long, value_enum, default_value_t = Preset::Issue)]
        corpus: Preset,
        /// Enricher processes at once (each with its own item cache).
        #[arg(long, default_value_t = 1)]
        instances: usize,
        /// Messages per invocation, as the event-source mapping's `BatchSize` cuts them
        /// (the template's `EnricherBatchSize`).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=10_000))]
        batch_size: u16,
        /// Print the figures as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Write a corpus's webhook bodies, one per line.
    Corpus {
        #[arg(value_enum)]
        preset: Preset,
        out: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Preset {
    /// 1,950 deliveries: 1,500 distinct events and 450 duplicates of 250 customers, live.
    Issue,
    /// The same shape as a year and a half of history, delivered in random order.
    Shuffled,
    /// One customer with 20,000 services over five years, late and redelivered.
    Heavy,
}

impl Preset {
    fn corpus(self) -> Corpus {
        match self {
            Preset::Issue => Corpus::issue_shape(),
            Preset::Shuffled => Corpus::shuffled_history(),
            Preset::Heavy => Corpus::heavy_customer(),
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Capacity {
            enricher,
            corpus,
            instances,
            batch_size,
            json,
        } => {
            let mut corpus = corpus.corpus();
            corpus.spec.batch_size = usize::from(batch_size);
            let spec = BenchSpec {
                enricher,
                corpus,
                instances,
            };
            match run(&spec).await {
                Ok(report) if json => match serde_json::to_string(&report) {
                    Ok(line) => {
                        println!("{line}");
                        ExitCode::SUCCESS
                    }
                    Err(error) => fail(&error),
                },
                Ok(report) => {
                    print!("{}", render(&report));
                    ExitCode::SUCCESS
                }
                Err(error) => fail(&error),
            }
        }
        Command::Corpus { preset, out } => match preset.corpus().save_jsonl(&out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => fail(&error),
        },
    }
}

fn fail(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("bench: {error}");
    ExitCode::FAILURE
}
