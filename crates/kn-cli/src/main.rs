//! `kn`: the command-line face of the knowledge-neurons toolkit.
//!
//! Results go to stdout (JSON with `--json`), logs to stderr. Exit codes: 0 success,
//! 2 bad input (usage, missing or malformed files, bad prompts), 3 internal failure.

mod attribute;
mod discover;
mod exit;
mod merge;
mod options;
mod predict;

use clap::{Parser, Subcommand};
use exit::CliError;

/// Find, inspect and edit knowledge neurons in pretrained transformers.
#[derive(Debug, Parser)]
#[command(name = "kn", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the model's top predictions for a prompt (the mask position for masked LMs, the
    /// next token for causal LMs).
    Predict(predict::PredictArgs),
    /// Integrated-gradients attribution of a prompt's answer over the FFN neurons.
    Attribute(attribute::AttributeArgs),
    /// Find knowledge neurons of PARAREL facts: attribute, select, refine; write
    /// neurons.jsonl, relations.json and stats.json (resumable).
    Discover(discover::DiscoverArgs),
    /// Combine the outputs of `kn discover --shard i/n` runs into one run directory.
    Merge(merge::MergeArgs),
}

fn main() {
    let cli = Cli::parse();
    let result: Result<(), CliError> = match cli.command {
        Command::Predict(args) => predict::run(args),
        Command::Attribute(args) => attribute::run(args),
        Command::Discover(args) => discover::run(args),
        Command::Merge(args) => merge::run(args),
    };
    if let Err(error) = result {
        eprintln!("kn: error: {error}");
        std::process::exit(error.exit_code());
    }
}
