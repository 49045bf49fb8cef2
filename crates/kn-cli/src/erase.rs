//! `kn erase`: erasing a relation through its most frequent knowledge neurons (Dai et al.
//! 2022, §5.2) on a `kn discover` run, with the paper's metrics.
//!
//! The work is `kn_run::erasure`'s; this file holds the options, the checks and the tables.

use crate::emit::emit;
use crate::exit::CliError;
use crate::options::ModelOptions;
use kn_edit::{EraseConfig, EvaluationConfig};
use kn_run::erasure::erase_relation;
use kn_run::options::parse_erasure_value;
use kn_run::RunDir;
use std::path::PathBuf;

/// Arguments of `kn erase`.
#[derive(Debug, clap::Args)]
pub struct EraseArgs {
    #[command(flatten)]
    model: ModelOptions,
    /// The neurons.jsonl of a `kn discover` run (its config.json must be beside it), or the
    /// run directory.
    #[arg(long)]
    neurons: PathBuf,
    /// The relation to erase (e.g. P19); it must have facts in the run.
    #[arg(long)]
    relation: String,
    /// How many of the relation's most frequent knowledge neurons to erase.
    #[arg(long, default_value_t = 20)]
    top: usize,
    /// What the value slots become: `unk` (the unknown token's output embedding, the paper's),
    /// `zero`, `id:N` (token id N) or a token as written in the vocabulary.
    #[arg(long, default_value = "unk")]
    value: String,
    /// Prompts of the relation held out from localization (its facts and paraphrases the run
    /// did not use) on which generality is measured, a seeded choice (0: all).
    #[arg(long, default_value_t = kn_run::erasure::DEFAULT_MAX_HELD_OUT)]
    max_held_out: usize,
    /// Run the random-neuron control.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    random_control: bool,
    /// Seed of the random control.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Prompts per forward pass.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write the JSON report to this file (atomically), e.g. DIR/erase-P36.json for
    /// `kn report`.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

/// Runs `kn erase`.
pub fn run(args: EraseArgs) -> Result<(), CliError> {
    let value = parse_erasure_value(&args.value)?;
    crate::options::at_least_one(args.top, "--top")?;
    crate::options::at_least_one(args.batch_size, "--batch-size")?;
    let run = RunDir::load(&args.neurons)?;
    let relation = run.select_relation(&args.relation)?;
    let _lock = kn_run::prepare_outputs(&[(args.out.as_deref(), "--out")], "kn erase")?;
    let mut model = args.model.load()?;
    run.check_model(model.info())?;
    let eval = EvaluationConfig {
        batch_size: args.batch_size,
        random_control: args.random_control,
        seed: args.seed,
    };
    let report = crate::log::report("erase");
    let output = erase_relation(
        model.as_mut(),
        &run,
        &relation,
        &EraseConfig {
            top_n: args.top,
            value,
        },
        args.max_held_out,
        &eval,
        &report,
    )?;
    emit(&output, args.json, args.out.as_deref(), || {
        kn_report::terminal::erasure_table(&output)
    })
}
