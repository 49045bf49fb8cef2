//! `kn edit`: updating facts through their knowledge neurons (Dai et al. 2022, §5.1) and the
//! paper's metrics, on the facts of a `kn discover` run.
//!
//! One fact (`--fact P36:12 --new-answer Rome`) or a seeded sample (`--facts N`, the paper's
//! setup: each fact's new answer is drawn, seeded, from the objects of other PARAREL facts of
//! its relation that are a single token for the model). For each fact,
//! `kn_edit::evaluate_update` measures success rate, change rate, top-5 rate and MRR of the new
//! answer on the fact's prompts, and the perplexity of the correct answers of other facts of the
//! same relation and of other relations (from the run, at most `--max-control-prompts` each),
//! before and after the edit and under a random-neuron control. The weights are always
//! restored afterwards and the restoration is checked bit for bit; `--patch-out` keeps the edit
//! as a patch file to re-apply later.
//!
//! The work is `kn_run::editing`'s; this file holds the options, the checks and the tables.

use crate::emit::emit;
use crate::exit::CliError;
use crate::options::ModelOptions;
use kn_edit::{EvaluationConfig, UpdateConfig};
use kn_run::editing::{edit_fact, edit_sample, Context, SingleOutput};
use kn_run::sweep::edit_sweep;
use kn_run::RunDir;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `kn edit`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["fact", "facts"])))]
pub struct EditArgs {
    #[command(flatten)]
    model: ModelOptions,
    /// The neurons.jsonl of a `kn discover` run (its config.json must be beside it), or the
    /// run directory.
    #[arg(long)]
    neurons: PathBuf,
    /// The fact to update (e.g. P36:12); it must be in the run.
    #[arg(long, requires = "new_answer")]
    fact: Option<String>,
    /// The fact's new answer; a single token for the model.
    #[arg(long, requires = "fact")]
    new_answer: Option<String>,
    /// Update this many facts of the run instead (seeded sample; new answers drawn from other
    /// facts' objects of the same relation), one at a time, and aggregate the metrics.
    #[arg(long)]
    facts: Option<usize>,
    /// With --facts: only facts of these relations (comma-separated).
    #[arg(long, requires = "facts")]
    relations: Option<String>,
    /// Seed of the fact sample, the new answers, the control prompts and the random control.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// λ1: weight of the old answer's embedding removed from each value slot.
    #[arg(long, default_value_t = 1.0)]
    lambda_remove: f64,
    /// λ2: weight of the new answer's embedding added to each value slot.
    #[arg(long, default_value_t = 8.0)]
    lambda_add: f64,
    /// Scale both embeddings to the slot's norm (the paper's released code).
    #[arg(long)]
    scale_by_norm: bool,
    /// Leave out neurons held by more than this fraction of the relation's facts (raised to
    /// 1/facts when the run has fewer than 1/threshold facts of the relation).
    #[arg(long, default_value_t = 0.1)]
    shared_threshold: f64,
    /// Run the random-neuron control (the same edit on as many random neurons, same layers).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    random_control: bool,
    /// Prompts per forward pass.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// At most this many prompts each for the same-relation and other-relation perplexity
    /// (seeded choice; 0: all of the run's).
    #[arg(long, default_value_t = 200)]
    max_control_prompts: usize,
    /// Share of each fact's run prompts held out of localization for the generality check (its
    /// neurons are then re-refined from the other prompts; 0: the paper's rule, every prompt
    /// locates, and generality uses the PARAREL prompts the run did not use).
    #[arg(long, default_value_t = 0.0)]
    holdout: f64,
    /// With --facts: repeat the sample for each of these λ2 values (comma-separated), unscaled
    /// and norm-scaled, with the shared-neuron exclusion and without; report success against
    /// damage and the given update split by layer (e.g. DIR/edit-sweep.json for `kn report`).
    #[arg(long, requires = "facts", value_delimiter = ',')]
    sweep: Vec<f64>,
    /// With --fact: save the edit as a kn-edit patch file (to re-apply it later).
    #[arg(long, requires = "fact")]
    patch_out: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write the JSON report to this file (atomically), e.g. DIR/edit.json for `kn report`.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs `kn edit`.
pub fn run(args: EditArgs) -> Result<(), CliError> {
    kn_run::options::check_update_numbers(
        args.lambda_remove,
        args.lambda_add,
        args.shared_threshold,
    )?;
    for &lambda in &args.sweep {
        kn_run::options::check_finite("--sweep", lambda, false)?;
    }
    crate::options::at_least_one(args.batch_size, "--batch-size")?;
    kn_run::options::check_holdout(args.holdout)?;
    crate::options::at_least_one(args.facts.unwrap_or(1), "--facts")?;
    let run = RunDir::load(&args.neurons)?;
    let single = match &args.fact {
        Some(id) => Some(run.find(id)?.clone()),
        None => None,
    };
    let relations = run.select_relations(args.relations.as_deref())?;
    let outputs = [
        (args.out.as_deref(), "--out"),
        (args.patch_out.as_deref(), "--patch-out"),
    ];
    let _locks = kn_run::prepare_outputs(&outputs, "kn edit")?;
    let mut model = args.model.load()?;
    run.check_model(model.info())?;
    let started = Instant::now();
    let report = crate::log::report("edit");
    let context = Context {
        report: &report,
        run: &run,
        encoded: kn_run::encode_run(model.as_ref(), &run)?,
        config: UpdateConfig {
            lambda_remove: args.lambda_remove,
            lambda_add: args.lambda_add,
            scale_by_norm: args.scale_by_norm,
            shared_threshold: args.shared_threshold,
        },
        eval: EvaluationConfig {
            batch_size: args.batch_size,
            random_control: args.random_control,
            seed: args.seed,
        },
        max_control_prompts: args.max_control_prompts,
        dataset: kn_run::editing::load_dataset(&run),
        holdout: args.holdout,
    };
    if let (Some(record), Some(answer)) = (&single, &args.new_answer) {
        let edit = edit_fact(
            model.as_mut(),
            &context,
            record,
            answer,
            args.patch_out.as_deref(),
        )?;
        let output = SingleOutput {
            run: run.describe(),
            edit,
            seconds: started.elapsed().as_secs_f64(),
        };
        return emit(&output, args.json, args.out.as_deref(), || {
            kn_report::terminal::fact_edit_table(&output.edit)
        });
    }
    let requested = args.facts.unwrap_or(1);
    if !args.sweep.is_empty() {
        let output = edit_sweep(
            model.as_mut(),
            context,
            &relations,
            requested,
            &args.sweep,
            started,
        )?;
        return emit(&output, args.json, args.out.as_deref(), || {
            kn_report::terminal::sweep_table(&output)
        });
    }
    let output = edit_sample(model.as_mut(), &context, &relations, requested, started)?;
    emit(&output, args.json, args.out.as_deref(), || {
        kn_report::terminal::sample_edit_table(&output)
    })
}
