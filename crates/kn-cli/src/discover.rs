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
use kn_attribution::{
    integrated_gradients_batch, write_atomically, AttributionConfig, IntegrationRule, Target,
};
use kn_data::{Dataset, Fact, Pararel, PromptStyle};
use kn_model::{AnswerPolicy, KnowledgeModel, ModelKind};
use kn_select::{
    coarse_select, refine_all, summarize, AdaptiveShare, CoarseRule, FactCounts, FactNeurons,
    Neuron, RefineConfig, ScoreMatrix,
};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use kn_schema::{FactRecord, ModelRecord, PromptRecord, RunConfig, ScoredNeuron};

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
    if args.steps == 0 {
        return Err(CliError::BadInput("--steps must be at least 1".into()));
    }

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

    let style = match info.kind {
        ModelKind::Masked => PromptStyle::Masked {
            mask_token: "[MASK]".into(),
        },
        ModelKind::Causal => PromptStyle::Causal,
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
        &args,
        shard,
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
    let started = Instant::now();
    crate::interrupt::install();
    for (k, (fact, prompts)) in todo.iter().enumerate() {
        if crate::interrupt::requested() {
            return Err(CliError::Interrupted(format!(
                "interrupted after {k} of {} facts; {} holds every finished fact and the same command resumes",
                todo.len(),
                out.dir.display()
            )));
        }
        let (record, mean_scores) =
            discover_fact(model.as_ref(), fact, prompts, &attribution, &rule, &refine)?;
        if out.saved_scores(&record.relation)? < args.save_scores {
            out.save_scores(&record.fact, &layers, &mean_scores)?;
        }
        out.append(&record)?;
        let elapsed = started.elapsed().as_secs_f64();
        let per_fact = elapsed / (k + 1) as f64;
        let eta = per_fact * (todo.len() - k - 1) as f64;
        progress(format!(
            "[{}/{}] {} {} -> {}: {} prompts, {} neurons, {:.1} s/fact, ETA {}",
            k + 1,
            todo.len(),
            record.fact,
            record.subject,
            record.object,
            record.prompts.len(),
            record.neurons.len(),
            per_fact,
            format_duration(eta)
        ));
    }
    let records = out.records()?;
    let stats = write_summaries(&out, &records, &config, &refine)?;
    progress(format!(
        "done: {} facts in {}",
        records.len(),
        out.dir.display()
    ));
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&stats).map_err(|e| CliError::Internal(e.to_string()))?
        );
    }
    Ok(())
}

/// Parses `i/n`.
pub fn parse_shard(spec: &str) -> Result<(usize, usize), CliError> {
    let bad = || {
        CliError::BadInput(format!(
            "--shard {spec:?}: use i/n with 0 <= i < n, e.g. 0/4"
        ))
    };
    let (i, n) = spec.split_once('/').ok_or_else(bad)?;
    let (i, n) = (
        i.trim().parse::<usize>().map_err(|_| bad())?,
        n.trim().parse::<usize>().map_err(|_| bad())?,
    );
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

fn format_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// The facts to run with their prompt texts: per relation, the eligible facts in a seeded
/// order, keeping the first `facts_per_relation` the model answers correctly; then the shard.
fn select_facts<'a>(
    model: &dyn KnowledgeModel,
    dataset: &'a Dataset,
    relations: &[String],
    style: &PromptStyle,
    args: &DiscoverArgs,
    shard: Option<(usize, usize)>,
    progress: &dyn Fn(String),
) -> Result<Vec<(&'a Fact, Vec<String>)>, CliError> {
    let mut chosen = Vec::new();
    let mut considered = Vec::new();
    for relation in relations {
        let facts = dataset
            .facts_of(relation)
            .map_err(|e| CliError::BadInput(e.to_string()))?;
        let mut order: Vec<&Fact> = facts.iter().collect();
        order.sort_by_key(|f| kn_data::seed::derive_seed(args.seed, &f.id.to_string()));
        let mut kept = 0;
        let mut checked = 0;
        for fact in order {
            if args.facts_per_relation > 0 && kept >= args.facts_per_relation {
                break;
            }
            let mut prompts: Vec<String> = dataset
                .prompts(fact, style)
                .into_iter()
                .map(|p| p.text)
                .collect();
            if args.max_prompts > 0 {
                prompts.truncate(args.max_prompts);
            }
            if prompts.len() < args.min_prompts.max(1) {
                continue;
            }
            let policy = if args.single_token {
                AnswerPolicy::SingleToken
            } else {
                AnswerPolicy::FirstToken
            };
            let encoded: Result<Vec<_>, _> = prompts
                .iter()
                .map(|p| model.encode(p, Some(&fact.object), policy))
                .collect();
            let Ok(encoded) = encoded else { continue };
            checked += 1;
            if args.correct_rank > 0 {
                let ranks = answer_ranks(model, &encoded)?;
                let correct = ranks
                    .iter()
                    .filter(|&&(_, rank)| rank <= args.correct_rank)
                    .count();
                if correct < args.correct_prompts {
                    continue;
                }
            }
            kept += 1;
            chosen.push((fact, prompts));
        }
        progress(format!(
            "{relation}: {kept} facts kept of {checked} checked"
        ));
        considered.push(format!(
            "{relation}: {} facts, {checked} encodable with enough prompts",
            facts.len()
        ));
    }
    if chosen.is_empty() {
        return Err(CliError::BadInput(format!(
            "no fact was selected ({}); the criteria: at least --min-prompts {} prompts{}{}",
            considered.join("; "),
            args.min_prompts.max(1),
            if args.single_token {
                ", a single-token answer"
            } else {
                ""
            },
            if args.correct_rank > 0 {
                format!(
                    ", answered within rank {} on at least {} prompt(s) (--correct-rank, --correct-prompts)",
                    args.correct_rank, args.correct_prompts
                )
            } else {
                String::new()
            }
        )));
    }
    if let Some((index, count)) = shard {
        chosen = chosen
            .into_iter()
            .enumerate()
            .filter(|(k, _)| k % count == index)
            .map(|(_, c)| c)
            .collect();
    }
    Ok(chosen)
}

/// Probability and rank (1 = top) of each prompt's first answer token, in batches.
pub fn answer_ranks(
    model: &dyn KnowledgeModel,
    prompts: &[kn_model::EncodedPrompt],
) -> Result<Vec<(f64, usize)>, CliError> {
    let mut result = Vec::with_capacity(prompts.len());
    for chunk in prompts.chunks(16) {
        let output = model.forward(chunk, &[], false)?;
        let values = kn_model::guard(|| {
            let probs = output.logits.softmax(-1, kn_model::tch::Kind::Float);
            let mut values = Vec::new();
            for (row, prompt) in chunk.iter().enumerate() {
                let answer = prompt.targets.first().map(|t| t.1).unwrap_or(0);
                let row_probs = probs.get(row as i64);
                let p = row_probs.double_value(&[answer]);
                let above = row_probs
                    .gt(p)
                    .sum(kn_model::tch::Kind::Int64)
                    .int64_value(&[]);
                values.push((p, above as usize + 1));
            }
            Ok(values)
        })?;
        result.extend(values);
    }
    Ok(result)
}

fn discover_fact(
    model: &dyn KnowledgeModel,
    fact: &Fact,
    prompts: &[String],
    attribution: &AttributionConfig,
    rule: &CoarseRule,
    refine: &RefineConfig,
) -> Result<(FactRecord, ndarray::Array2<f32>), CliError> {
    let started = Instant::now();
    let width = model.info().ffn_width;
    let mut records = Vec::with_capacity(prompts.len());
    let mut matrices = Vec::with_capacity(prompts.len());
    let mut score_sum: Option<ndarray::Array2<f32>> = None;
    let encoded = prompts
        .iter()
        .map(|text| model.encode(text, Some(&fact.object), AnswerPolicy::FirstToken))
        .collect::<Result<Vec<_>, _>>()?;
    // All prompts of the fact in one batch: their passes keep every worker busy.
    let results = integrated_gradients_batch(model, &encoded, attribution)?;
    for (text, result) in prompts.iter().zip(results) {
        let matrix = ScoreMatrix::new(
            result.layers.clone(),
            width,
            result.scores.iter().copied().collect(),
        )
        .map_err(|e| CliError::Internal(e.to_string()))?;
        let coarse = coarse_select(&matrix, rule).map_err(|e| CliError::Internal(e.to_string()))?;
        match score_sum.as_mut() {
            Some(sum) => *sum += &result.scores,
            None => score_sum = Some(result.scores.clone()),
        }
        records.push(PromptRecord {
            text: text.clone(),
            prob: result.clean_prob,
            rank: result.clean_rank,
            coarse,
        });
        matrices.push(matrix);
    }
    let coarse: Vec<Vec<Neuron>> = records.iter().map(|r| r.coarse.clone()).collect();
    let counts = FactCounts::from_coarse(fact.id.to_string(), fact.relation(), &coarse);
    let refined = counts.refine(refine).unwrap_or_default();
    let mut neurons: Vec<ScoredNeuron> = refined
        .iter()
        .map(|&n| {
            let total: f32 = matrices.iter().filter_map(|m| m.get(n)).sum();
            ScoredNeuron {
                layer: n.layer,
                neuron: n.index,
                score: total / matrices.len().max(1) as f32,
            }
        })
        .collect();
    neurons.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mean_scores = score_sum
        .map(|sum| sum / prompts.len() as f32)
        .unwrap_or_default();
    let record = FactRecord {
        fact: fact.id.to_string(),
        relation: fact.relation().to_string(),
        subject: fact.subject.clone(),
        object: fact.object.clone(),
        prompts: records,
        neurons,
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((record, mean_scores))
}

/// The file listing the facts a run selected.
pub const SELECTION_FILE: &str = "selection.json";

/// A run directory: config.json, selection.json, neurons.jsonl, relations.json, stats.json,
/// held under its lock for as long as this value lives.
pub struct OutputDir {
    dir: PathBuf,
    _lock: kn_schema::RunLock,
}

impl OutputDir {
    /// Creates `dir` if needed, checks that it takes new files and takes its lock for
    /// `command`: all before any work (see `outputs`).
    pub fn prepare(dir: &Path, command: &str) -> Result<Self, CliError> {
        let lock = crate::outputs::prepare_run_dir(dir, command, kn_schema::Access::Exclusive)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    /// [`OutputDir::prepare`], then [`OutputDir::claim`].
    pub fn open(dir: &Path, config: &RunConfig, command: &str) -> Result<Self, CliError> {
        let out = Self::prepare(dir, command)?;
        out.claim(config)?;
        Ok(out)
    }

    /// Records `config` in a new directory, or checks that the directory holds a run of the
    /// same configuration.
    pub fn claim(&self, config: &RunConfig) -> Result<(), CliError> {
        let dir = &self.dir;
        let io = |e: std::io::Error| CliError::Internal(format!("{}: {e}", dir.display()));
        let config_path = dir.join("config.json");
        let text =
            serde_json::to_string_pretty(config).map_err(|e| CliError::Internal(e.to_string()))?;
        if config_path.exists() {
            let existing = kn_schema::read_capped_text(
                &config_path,
                kn_schema::CONFIG_FILE_LIMIT,
                "run configuration",
            )
            .map_err(|e| CliError::BadInput(e.to_string()))?;
            let existing: RunConfig = serde_json::from_str(&existing).map_err(|e| {
                CliError::BadInput(format!(
                    "{} is not a kn discover configuration: {e}",
                    config_path.display()
                ))
            })?;
            if &existing != config {
                return Err(CliError::BadInput(format!(
                    "{} holds results of a different configuration ({}); use another --out directory",
                    dir.display(),
                    describe_difference(&existing, config)
                )));
            }
        } else if self.neurons_path().exists() {
            return Err(CliError::BadInput(format!(
                "{} has neurons.jsonl but no config.json: refusing to mix results",
                dir.display()
            )));
        } else {
            write_atomically(&config_path, text.as_bytes()).map_err(io)?;
        }
        Ok(())
    }

    /// The run's neurons.jsonl.
    pub fn neurons_path(&self) -> PathBuf {
        self.dir.join("neurons.jsonl")
    }

    /// The finished records (validated by `kn_schema::parse_neurons`: a malformed line, a bad
    /// fact id or a fact written twice is an error naming the line); a torn last line (an
    /// interrupted write) is cut from the file.
    pub fn read_neurons(&self) -> Result<kn_schema::NeuronsFile, CliError> {
        let path = self.neurons_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
            Err(e) => return Err(CliError::BadInput(format!("{}: {e}", path.display()))),
        };
        let file = kn_schema::parse_neurons(&text, &path, kn_schema::TornTail::Drop)
            .map_err(|e| CliError::BadInput(format!("{e}; refusing to use this run")))?;
        if file.torn_tail {
            crate::log::warn(
                "discover",
                format!(
                "{}: the last line was cut short by an interrupted write; removing it (that fact is attributed again)",
                path.display()
            ));
            write_atomically(&path, &text.as_bytes()[..file.whole_bytes])
                .map_err(|e| CliError::Internal(e.to_string()))?;
        }
        Ok(file)
    }

    /// The finished records (see [`OutputDir::read_neurons`]).
    pub fn records(&self) -> Result<Vec<FactRecord>, CliError> {
        Ok(self.read_neurons()?.records)
    }

    /// Appends one record as one line and syncs it to disk. If the write fails (a full disk),
    /// the file is cut back to its previous length so no partial line survives.
    pub fn append(&self, record: &FactRecord) -> Result<(), CliError> {
        let path = self.neurons_path();
        let io =
            |e: std::io::Error| CliError::Internal(format!("cannot write {}: {e}", path.display()));
        let mut line =
            serde_json::to_string(record).map_err(|e| CliError::Internal(e.to_string()))?;
        line.push('\n');
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        let length = file.metadata().map_err(io)?.len();
        let written = file
            .write_all(line.as_bytes())
            .and_then(|()| file.sync_data());
        if let Err(error) = written {
            // Best effort: the error that matters is the write's.
            let _ = file.set_len(length).and_then(|()| file.sync_data());
            return Err(io(error));
        }
        Ok(())
    }

    /// Writes DIR/selection.json: the ids of the facts this run (or shard) selected, in order,
    /// so that `kn merge` and readers can tell a finished run from an unfinished one.
    pub fn write_selection(&self, facts: &[String]) -> Result<(), CliError> {
        let path = self.dir.join(SELECTION_FILE);
        let text = serde_json::to_string_pretty(&serde_json::json!({ "facts": facts }))
            .map_err(|e| CliError::Internal(e.to_string()))?;
        write_atomically(&path, text.as_bytes())
            .map_err(|e| CliError::Internal(format!("cannot write {}: {e}", path.display())))
    }

    /// The fact ids of DIR/selection.json (`None` for runs written before it existed).
    pub fn selection(&self) -> Result<Option<Vec<String>>, CliError> {
        read_selection(&self.dir)
    }

    /// The scores files of `relation` already saved in DIR/scores/.
    pub fn saved_scores(&self, relation: &str) -> Result<usize, CliError> {
        let dir = self.dir.join("scores");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(CliError::Internal(format!("{}: {e}", dir.display()))),
        };
        let prefix = format!("{relation}_");
        Ok(entries
            .filter_map(Result::ok)
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with(&prefix) && name.ends_with(".npy")
            })
            .count())
    }

    /// Writes `DIR/scores/<fact>.npy` (`:` in the id written as `_`) atomically.
    pub fn save_scores(
        &self,
        fact: &str,
        layers: &[usize],
        scores: &ndarray::Array2<f32>,
    ) -> Result<(), CliError> {
        let dir = self.dir.join("scores");
        std::fs::create_dir_all(&dir)
            .map_err(|e| CliError::Internal(format!("{}: {e}", dir.display())))?;
        let path = dir.join(kn_report::npy::scores_file_name(fact));
        kn_attribution::save_scores(&path, layers, scores)
            .map_err(|e| CliError::Internal(e.to_string()))
    }
}

/// The fact ids of `dir`/selection.json (`None` for runs written before it existed).
pub fn read_selection(dir: &Path) -> Result<Option<Vec<String>>, CliError> {
    let path = dir.join(SELECTION_FILE);
    if !path.exists() {
        return Ok(None);
    }
    // A selection lists at most every PARAREL fact (27,738): far below this cap.
    let text = kn_schema::read_capped_text(&path, 64 << 20, "selection file")
        .map_err(|e| CliError::BadInput(e.to_string()))?;
    #[derive(Deserialize)]
    struct Selection {
        facts: Vec<String>,
    }
    let selection: Selection = serde_json::from_str(&text)
        .map_err(|e| CliError::BadInput(format!("{}: {e}", path.display())))?;
    Ok(Some(selection.facts))
}

fn describe_difference(old: &RunConfig, new: &RunConfig) -> String {
    let old = serde_json::to_value(old).unwrap_or_default();
    let new = serde_json::to_value(new).unwrap_or_default();
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return "unknown".into();
    };
    let keys: Vec<&String> = new.keys().filter(|k| old.get(*k) != new.get(*k)).collect();
    format!(
        "differs in {}",
        keys.iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Writes relations.json and stats.json from all finished records; returns the statistics.
pub fn write_summaries(
    out: &OutputDir,
    records: &[FactRecord],
    config: &RunConfig,
    refine: &RefineConfig,
) -> Result<serde_json::Value, CliError> {
    let counts: Vec<FactCounts> = records
        .iter()
        .map(|r| {
            let coarse: Vec<Vec<Neuron>> = r.prompts.iter().map(|p| p.coarse.clone()).collect();
            FactCounts::from_coarse(r.fact.clone(), r.relation.clone(), &coarse)
        })
        .collect();
    let adaptive = config.adaptive.then(AdaptiveShare::paper_code);
    let refined = refine_all(&counts, refine, adaptive.as_ref())
        .map_err(|e| CliError::Internal(e.to_string()))?;
    let mut relations = BTreeMap::new();
    let mut all_facts: Vec<FactNeurons> = Vec::new();
    for relation in &refined {
        let neurons = relation.relation_neurons(0.1);
        relations.insert(
            relation.relation.clone(),
            serde_json::json!({
                "facts": relation.facts.len(),
                "skipped": relation.skipped,
                "share": relation.share,
                "mean_neurons_per_fact": relation.mean_neurons,
                "neurons": neurons,
            }),
        );
        all_facts.extend(relation.facts.iter().cloned());
    }
    let seconds: Vec<f64> = records.iter().map(|r| r.seconds).collect();
    let stats = serde_json::json!({
        "summary": summarize(&all_facts),
        "seconds_per_fact": seconds.iter().sum::<f64>() / seconds.len().max(1) as f64,
        "prompts_per_fact": records.iter().map(|r| r.prompts.len()).sum::<usize>() as f64 / records.len().max(1) as f64,
        "config": config,
    });
    let write = |name: &str, value: &serde_json::Value| {
        let text =
            serde_json::to_string_pretty(value).map_err(|e| CliError::Internal(e.to_string()))?;
        write_atomically(&out.dir.join(name), text.as_bytes())
            .map_err(|e| CliError::Internal(format!("{name}: {e}")))
    };
    write(
        "relations.json",
        &serde_json::to_value(&relations).unwrap_or_default(),
    )?;
    write("stats.json", &stats)?;
    Ok(stats)
}
