//! Placeholder: the capacity benchmark is wired in once the Lambda runner lands.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::ExitCode;

use referral_tests::corpus::Corpus;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next(), args.next()) {
        (Some("corpus"), Some(preset), Some(out)) => {
            let corpus = match preset.as_str() {
                "issue" => Corpus::issue_shape(),
                "heavy" => Corpus::heavy_customer(),
                _ => return ExitCode::from(2),
            };
            match corpus.save_jsonl(&PathBuf::from(out)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("{error}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!("usage: bench corpus issue|heavy OUT.jsonl");
            ExitCode::from(2)
        }
    }
}
