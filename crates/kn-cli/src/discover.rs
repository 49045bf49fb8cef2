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
use crate::options::{parse_layers, ModelOptions};
use kn_attribution::{AttributionConfig, IntegrationRule, Method, Target};
use kn_data::{Fact, Pararel};
use kn_run::{
    counterfactual_prompts, discover_facts, parse_shard, prompt_style, select_facts,
    write_summaries, FactSelection, FactSteps, OutputDir,
};
use kn_schema::{ModelRecord, RunConfig};
use kn_select::{CoarseRule, RefineConfig};
use std::collections::{BTreeMap, BTreeSet};
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
    let shard = args.shard.as_deref().map(parse_shard).transpose()?;
    crate::options::check_thread_count("--concurrent-passes", args.concurrent_passes)?;
    let memory_budget = crate::options::memory_budget_bytes(args.memory_budget)?;
    let data_dir = args.data.clone().unwrap_or_else(Pararel::bundled_dir);
    let dataset = kn_data::load_facts(&data_dir).map_err(|e| CliError::BadInput(e.to_string()))?;
    let relations = if args.relations.trim() == "all" {
        dataset.relation_ids()
    } else {
        args.relations
            .split(',')
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty())
            .collect()
    };
    if relations.is_empty() {
        return Err(CliError::BadInput(format!(
            "--relations {:?} names no relation (e.g. P36,P19 or all)",
            crate::text::shorten(&args.relations)
        )));
    }
    for relation in &relations {
        dataset
            .relation(relation)
            .map_err(|e| CliError::BadInput(e.to_string()))?;
    }
    CoarseRule::Relative {
        ratio: args.threshold,
    }
    .validate()
    .map_err(|e| CliError::BadInput(e.to_string()))?;
    let refine = RefineConfig {
        share: args.share,
        min_prompts: args.min_prompts,
        ..RefineConfig::default()
    };
    refine
        .validate()
        .map_err(|e| CliError::BadInput(e.to_string()))?;
    crate::options::at_least_one(args.steps, "--steps")?;

    let out = OutputDir::prepare(&args.out, "kn discover")?;
    let model = args.model.load()?;
    let info = model.info().clone();
    let layers = parse_layers(&args.layers, info.num_layers)?;
    let config = RunConfig {
        version: env!("CARGO_PKG_VERSION").to_string(),
        model: ModelRecord {
            source: info.source.clone(),
            architecture: info.architecture.clone(),
            fingerprint: info.fingerprint.clone(),
            dtype: info.dtype.name().into(),
        },
        relations: relations.clone(),
        facts_per_relation: args.facts_per_relation,
        seed: args.seed,
        data: data_dir.display().to_string(),
        method: args.method.name().into(),
        steps: args.steps,
        layers: layers.clone(),
        threshold: args.threshold,
        share: args.share,
        adaptive: args.adaptive,
        min_prompts: args.min_prompts,
        max_prompts: args.max_prompts,
        correct_rank: args.correct_rank,
        correct_prompts: args.correct_prompts,
        single_token: args.single_token,
        shard,
    };
    out.claim(&config)?;
    let finished = out.read_neurons()?;
    if finished.torn_tail {
        crate::log::warn(
            "discover",
            format!(
                "{}: the last line was cut short by an interrupted write; removed it (that fact is attributed again)",
                out.neurons_path().display()
            ),
        );
    }

    let style = prompt_style(model.as_ref());
    let selection = FactSelection {
        seed: args.seed,
        facts_per_relation: args.facts_per_relation,
        max_prompts: args.max_prompts,
        min_prompts: args.min_prompts,
        single_token: args.single_token,
        correct_rank: args.correct_rank,
        correct_prompts: args.correct_prompts,
        shard,
    };
    let progress = |message: String| crate::log::progress("discover", message);
    progress(format!(
        "selecting facts of {} relation(s)",
        relations.len()
    ));
    let facts = select_facts(
        model.as_ref(),
        &dataset,
        &relations,
        &style,
        &selection,
        &progress,
    )?;
    let selected: Vec<String> = facts.iter().map(|(f, _)| f.id.to_string()).collect();
    // A resumed run holds only facts of this selection, each once (parse_neurons refused
    // duplicates): anything else is a corrupt or foreign file, never counted.
    kn_schema::check_facts_known(
        &finished,
        &selected.iter().cloned().collect(),
        "the facts this configuration selects",
        &out.neurons_path(),
    )
    .map_err(|e| CliError::BadInput(format!("{e}; refusing to resume this run")))?;
    out.write_selection(&selected)?;
    let done: BTreeSet<&str> = finished.records.iter().map(|r| r.fact.as_str()).collect();
    let todo: Vec<&(&Fact, Vec<String>)> = facts
        .iter()
        .filter(|(f, _)| !done.contains(f.id.to_string().as_str()))
        .collect();
    progress(format!(
        "{} facts selected, {} already done, {} to attribute",
        facts.len(),
        facts.len() - todo.len(),
        todo.len()
    ));

    let mut counterfactuals = BTreeMap::new();
    if args.method == Method::Atp {
        for (fact, prompts) in &todo {
            let texts = counterfactual_prompts(&dataset, fact, prompts, &style, args.seed)?;
            counterfactuals.insert(fact.id.to_string(), texts);
        }
    }
    let attribution = AttributionConfig {
        steps: args.steps,
        rule: IntegrationRule::Left,
        target: Target::Probability,
        layers: Some(layers.clone()),
        batch_size: args.batch_size,
        concurrent_passes: args.concurrent_passes,
        memory_budget,
    };
    let rule = CoarseRule::Relative {
        ratio: args.threshold,
    };
    crate::interrupt::install();
    let report = crate::log::report("discover");
    discover_facts(
        model.as_ref(),
        &out,
        &todo,
        &FactSteps {
            method: args.method,
            attribution: &attribution,
            rule: &rule,
            refine: &refine,
            save_scores: args.save_scores,
            counterfactuals: Some(&counterfactuals),
        },
        &crate::interrupt::requested,
        &report,
    )?;
    let records = out.records()?;
    let stats = write_summaries(&out, &records, &config)?;
    progress(format!(
        "done: {} facts in {}",
        records.len(),
        out.dir().display()
    ));
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&stats).map_err(|e| CliError::Internal(e.to_string()))?
        );
    }
    Ok(())
}
