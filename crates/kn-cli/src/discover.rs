//! `kn discover`: the paper's knowledge-neuron discovery over PARAREL facts.
//!
//! For each selected fact: attribute every prompt (integrated gradients, all layers), select
//! coarsely per prompt (score > t x max), refine across the fact's prompts (kept by more than
//! a fraction p of them), and append one line to `DIR/neurons.jsonl`. At the end (also after a
//! resumed run) `DIR/relations.json` (relation-level neurons) and `DIR/stats.json` are written
//! from all lines. `DIR/config.json` records the exact configuration, the model fingerprint and
//! the toolkit version; a run into a directory of another configuration is refused, and a run
//! into one of the same configuration resumes (facts already written are skipped). Each line
//! is written and synced whole, so an interrupted run loses at most the fact in progress; a
//! failed write (a full disk) is cut back to the last whole line.
//!
//! `DIR/scores/<fact>.npy` (fact id with `:` as `_`) holds the mean attribution matrix (the
//! run's layers x FFN neurons, float32) of the first `--save-scores` facts of each relation, for
//! the heatmap of `kn report`. `DIR/selection.json` lists the facts the run (or shard) selected,
//! so a finished run can be told from an unfinished one.

use crate::exit::CliError;
use crate::options::ModelOptions;
use kn_attribution::Method;
use kn_run::discover_request::DiscoverRequest;
use std::path::PathBuf;

/// Arguments of `kn discover`.
#[derive(Debug, clap::Args)]
pub struct DiscoverArgs {
    #[command(flatten)]
    pub model: ModelOptions,
    /// Relations to run, comma-separated (e.g. P36,P19), or `all`.
    #[arg(long)]
    pub relations: String,
    /// Facts per relation, drawn with --seed among the facts the model answers correctly
    /// (0: every eligible fact).
    #[arg(long, default_value_t = 20)]
    pub facts_per_relation: usize,
    /// Seed of the fact sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output directory (created; resumed when it holds a run of the same configuration).
    #[arg(long)]
    pub out: PathBuf,
    /// PARAREL directory (default: the copy in data/pararel).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// The attribution method of the coarse step: ig (integrated gradients, the paper's),
    /// activation, grad-x-act, logprob-increase or atp (counterfactual: the same template with
    /// the subject of another fact of the relation; docs/methods.md).
    #[arg(long, default_value = "ig")]
    pub method: Method,
    /// Integration steps m.
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Layers to attribute: `all`, `0-29`, `0,5,7-9`.
    #[arg(long, default_value = "all")]
    pub layers: String,
    /// Coarse threshold t: a prompt selects neurons scoring above t x its maximum.
    #[arg(long, default_value_t = 0.2)]
    pub threshold: f32,
    /// Refinement share p: a fact keeps neurons selected by more than p of its prompts.
    #[arg(long, default_value_t = 0.7)]
    pub share: f64,
    /// Adapt p per relation in 0.05 steps until the mean neurons per fact is in [2, 5] (the
    /// paper's code); applies to relations.json and stats.json.
    #[arg(long)]
    pub adaptive: bool,
    /// Facts with fewer prompts than this are skipped.
    #[arg(long, default_value_t = 3)]
    pub min_prompts: usize,
    /// Use at most this many prompts per fact (0: all).
    #[arg(long, default_value_t = 0)]
    pub max_prompts: usize,
    /// A fact counts as answered correctly when the answer's rank is at most this (1 = top-1)
    /// on at least --correct-prompts of its prompts (0 disables the filter).
    #[arg(long, default_value_t = 1)]
    pub correct_rank: usize,
    /// See --correct-rank.
    #[arg(long, default_value_t = 1)]
    pub correct_prompts: usize,
    /// Keep only facts whose answer is a single token for the model's tokenizer.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub single_token: bool,
    /// Process only shard i of n (`i/n`, 0-based): n processes cover every fact once.
    #[arg(long)]
    pub shard: Option<String>,
    /// Most rows (layer x integration point) held at once, which bounds memory; concurrent
    /// passes share them (0: the model's suggestion: 1200 for Llama on the CPU, two SmolLM2
    /// prompts' rows; otherwise 640). Prompts attributed together share a pass when two or
    /// more fit in it. Results do not depend on it.
    #[arg(long, default_value_t = 0)]
    pub batch_size: usize,
    /// Attribution passes run at the same time on the CPU, each on its share of --threads
    /// (0: the model's suggestion: 2 for Llama with two or more threads, otherwise 1). Results
    /// do not depend on it.
    #[arg(long, default_value_t = 0)]
    pub concurrent_passes: usize,
    /// Memory the rows in flight may take, in GiB: the model's suggested rows are cut to what
    /// fits for large models (0: half the memory available when the attribution starts, on
    /// the CPU). Ignored with --batch-size. Results do not depend on it.
    #[arg(long, default_value_t = 0.0)]
    pub memory_budget: f64,
    /// Save the mean attribution matrix (layers x neurons, .npy) of the first N facts of each
    /// relation under DIR/scores/ (for `kn report`'s heatmap; 0: none). Not part of the
    /// configuration: it does not change the results.
    #[arg(long, default_value_t = 1)]
    pub save_scores: usize,
    /// When done, print the run's statistics (stats.json) on stdout as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `kn discover`.
pub fn run(args: DiscoverArgs) -> Result<(), CliError> {
    let prepared = DiscoverRequest {
        relations: args.relations,
        facts_per_relation: args.facts_per_relation,
        seed: args.seed,
        out: args.out,
        data: args.data,
        method: args.method,
        steps: args.steps,
        layers: args.layers,
        threshold: args.threshold,
        share: args.share,
        adaptive: args.adaptive,
        min_prompts: args.min_prompts,
        max_prompts: args.max_prompts,
        correct_rank: args.correct_rank,
        correct_prompts: args.correct_prompts,
        single_token: args.single_token,
        shard: args.shard,
        batch_size: args.batch_size,
        concurrent_passes: args.concurrent_passes,
        memory_budget: args.memory_budget,
        save_scores: args.save_scores,
    }
    .prepare()?;
    let model = args.model.load()?;
    crate::interrupt::install();
    let report = crate::log::report("discover");
    let stats = prepared.run(model.as_ref(), &crate::interrupt::requested, &report)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&stats).map_err(|e| CliError::Internal(e.to_string()))?
        );
    }
    Ok(())
}
