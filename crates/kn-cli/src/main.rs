//! `kn`: the command-line face of the knowledge-neurons toolkit.
//!
//! Results go to stdout (JSON with `--json`), logs to stderr. Exit codes: 0 success,
//! 2 bad input (usage, missing or malformed files, bad prompts), 3 internal failure, 130 a
//! run stopped by Ctrl-C (finished work kept; the same command resumes).
//! Global options: `--config FILE` (TOML holding options, see `config_file`), `-q`, `-v`.

mod activations;
mod attribute;
mod config_file;
mod discover;
mod edit;
mod emit;
mod erase;
mod exit;
mod interrupt;
mod log;
mod merge;
mod options;
mod predict;
mod report;
mod suppress;
mod text;
mod triggers;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use exit::{CliError, ExitCode};

/// Find, inspect and edit knowledge neurons in pretrained transformers.
#[derive(Debug, Parser)]
#[command(name = "kn", version, long_about = None)]
struct Cli {
    /// A TOML file holding options: top-level keys for every subcommand that has them,
    /// `[discover]`, `[suppress]`, ... tables for one subcommand; typed options win.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// Print details on stderr (model loading, per-batch progress).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Print only warnings and errors on stderr (no progress lines).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
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
    /// Suppress and amplify the knowledge neurons of a discover run's facts (the paper's
    /// experiment, with random, other-relation and activation-baseline controls).
    Suppress(suppress::SuppressArgs),
    /// Update a fact (or a seeded sample of facts) of a discover run through its knowledge
    /// neurons and report the paper's metrics; the weights are restored afterwards.
    Edit(edit::EditArgs),
    /// Erase a relation of a discover run through its most frequent knowledge neurons and
    /// report accuracy and perplexity; the weights are restored afterwards.
    Erase(erase::EraseArgs),
    /// Mean activation of a discover run's knowledge neurons on BINGREL sentences expressing
    /// their fact (T1), head-only (T2) and random (T3) sentences, beside random neurons; writes
    /// activations.json.
    Activations(activations::ActivationsArgs),
    /// The BINGREL sentences that activate a fact's knowledge neurons most, with and without
    /// the tail.
    Triggers(triggers::TriggersArgs),
    /// Render a run directory as a self-contained HTML and Markdown report with plots (layer
    /// distribution, attribution heatmap, suppression bars, activations, editing metrics).
    Report(report::ReportArgs),
}

fn main() {
    // Die quietly on a closed pipe (`kn ... | head`) like other command-line tools, instead of
    // panicking in println!.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // A file-size limit (`ulimit -f`) makes a write fail with EFBIG instead of killing the
    // process, so the full-disk path handles it: exit 3, whole lines kept, no temporary file.
    // SAFETY: as above, before any thread is started.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    // Attribution passes free and reallocate hundreds of MB each; keeping it mapped spares
    // the page faults of taking it back from the kernel every pass (kn_model docs).
    kn_model::retain_freed_memory();
    let command = Cli::command();
    let args = match config_file::expand(std::env::args_os().collect(), &command) {
        Ok(args) => args,
        Err(error) => {
            eprintln!("kn: error: {}", text::printable_message(&error.to_string()));
            std::process::exit(error.exit_code());
        }
    };
    let cli = match command
        .try_get_matches_from(args)
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(cli) => cli,
        // --help and --version print and exit with 0.
        Err(error) if !error.use_stderr() => error.exit(),
        // Usage errors exit with 2 (bad input), the values they quote made printable.
        Err(error) => {
            eprint!("{}", text::printable_message(&error.render().to_string()));
            std::process::exit(2);
        }
    };
    log::set_verbosity(cli.quiet, cli.verbose);
    let result: Result<(), CliError> = match cli.command {
        Command::Predict(args) => predict::run(args),
        Command::Attribute(args) => attribute::run(args),
        Command::Discover(args) => discover::run(args),
        Command::Merge(args) => merge::run(args),
        Command::Suppress(args) => suppress::run(args),
        Command::Edit(args) => edit::run(args),
        Command::Erase(args) => erase::run(args),
        Command::Activations(args) => activations::run(args),
        Command::Triggers(args) => triggers::run(args),
        Command::Report(args) => report::run(args),
    };
    if let Err(error) = result {
        eprintln!("kn: error: {}", text::printable_message(&error.to_string()));
        std::process::exit(error.exit_code());
    }
}
