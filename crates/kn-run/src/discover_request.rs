//! A whole discovery as the front ends run it (`kn discover`, `knowledge_neurons.discover` in
//! Python): the request's checks before any model is loaded ([`DiscoverRequest::prepare`]),
//! then fact selection, resuming, attribution of the facts left and the run's summaries
//! ([`PreparedDiscovery::run`]). See [`crate::discovery`] for the per-fact step.

use crate::discovery::{
    counterfactual_prompts, discover_facts, parse_shard, prompt_style, select_facts, FactSelection,
    FactSteps,
};
use crate::options::{at_least_one, check_thread_count, memory_budget_bytes, parse_layers};
use crate::output_dir::{write_summaries, OutputDir};
use crate::text::shorten;
use crate::{Message, RunError};
use kn_attribution::{AttributionConfig, IntegrationRule, Method, Target};
use kn_data::{Dataset, Fact, Pararel};
use kn_model::KnowledgeModel;
use kn_schema::report::discovery::StatsFile;
use kn_schema::{ModelRecord, RunConfig};
use kn_select::{CoarseRule, RefineConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// Everything a discovery is asked to do (the options of `kn discover`, whose docs say what
/// each means; [`Default`] gives their defaults, with no relations and no output directory).
#[derive(Debug, Clone)]
pub struct DiscoverRequest {
    /// Relations, comma-separated (`P36,P19`), or `all`.
    pub relations: String,
    /// Facts per relation (0: every eligible fact).
    pub facts_per_relation: usize,
    /// Seed of the fact sampling.
    pub seed: u64,
    /// The output directory (created; resumed when it holds a run of the same configuration).
    pub out: PathBuf,
    /// The PARAREL directory or fact file (default: the bundled copy).
    pub data: Option<PathBuf>,
    /// The attribution method of the coarse step.
    pub method: Method,
    /// Integration steps m.
    pub steps: usize,
    /// Layers: `all`, `0-29`, `0,5,7-9`.
    pub layers: String,
    /// Coarse threshold t.
    pub threshold: f32,
    /// Refinement share p.
    pub share: f64,
    /// Adapt p per relation (the paper's code).
    pub adaptive: bool,
    /// Facts with fewer prompts are skipped.
    pub min_prompts: usize,
    /// At most this many prompts per fact (0: all).
    pub max_prompts: usize,
    /// Rank at which an answer counts as correct (0: no filter).
    pub correct_rank: usize,
    /// Prompts that must be correct.
    pub correct_prompts: usize,
    /// Only facts whose answer is one token.
    pub single_token: bool,
    /// `i/n`: only shard i of n.
    pub shard: Option<String>,
    /// Rows in flight (0: the model's suggestion).
    pub batch_size: usize,
    /// Concurrent passes (0: the model's suggestion).
    pub concurrent_passes: usize,
    /// Memory budget of the rows in flight, GiB (0: automatic).
    pub memory_budget: f64,
    /// Facts per relation whose mean score matrix is saved.
    pub save_scores: usize,
}

impl Default for DiscoverRequest {
    fn default() -> Self {
        DiscoverRequest {
            relations: String::new(),
            facts_per_relation: 20,
            seed: 0,
            out: PathBuf::new(),
            data: None,
            method: Method::Ig,
            steps: 20,
            layers: "all".into(),
            threshold: 0.2,
            share: 0.7,
            adaptive: false,
            min_prompts: 3,
            max_prompts: 0,
            correct_rank: 1,
            correct_prompts: 1,
            single_token: true,
            shard: None,
            batch_size: 0,
            concurrent_passes: 0,
            memory_budget: 0.0,
            save_scores: 1,
        }
    }
}

/// A checked request, its data loaded and its output directory prepared: ready to run on a
/// model.
pub struct PreparedDiscovery {
    request: DiscoverRequest,
    shard: Option<(usize, usize)>,
    memory_budget: u64,
    data_dir: PathBuf,
    dataset: Dataset,
    relations: Vec<String>,
    refine: RefineConfig,
    out: OutputDir,
}

impl DiscoverRequest {
    /// Checks the request (shard, relations against the data, thresholds, steps) and prepares
    /// the output directory, before any model is loaded.
    pub fn prepare(self) -> Result<PreparedDiscovery, RunError> {
        let shard = self.shard.as_deref().map(parse_shard).transpose()?;
        check_thread_count("--concurrent-passes", self.concurrent_passes)?;
        let memory_budget = memory_budget_bytes(self.memory_budget)?;
        let data_dir = self.data.clone().unwrap_or_else(Pararel::bundled_dir);
        let dataset =
            kn_data::load_facts(&data_dir).map_err(|e| RunError::BadInput(e.to_string()))?;
        let relations = if self.relations.trim() == "all" {
            dataset.relation_ids()
        } else {
            self.relations
                .split(',')
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty())
                .collect()
        };
        if relations.is_empty() {
            return Err(RunError::BadInput(format!(
                "--relations {:?} names no relation (e.g. P36,P19 or all)",
                shorten(&self.relations)
            )));
        }
        for relation in &relations {
            dataset
                .relation(relation)
                .map_err(|e| RunError::BadInput(e.to_string()))?;
        }
        CoarseRule::Relative {
            ratio: self.threshold,
        }
        .validate()
        .map_err(|e| RunError::BadInput(e.to_string()))?;
        let refine = RefineConfig {
            share: self.share,
            min_prompts: self.min_prompts,
            ..RefineConfig::default()
        };
        refine
            .validate()
            .map_err(|e| RunError::BadInput(e.to_string()))?;
        at_least_one(self.steps, "--steps")?;
        let out = OutputDir::prepare(&self.out, "kn discover")?;
        Ok(PreparedDiscovery {
            request: self,
            shard,
            memory_budget,
            data_dir,
            dataset,
            relations,
            refine,
            out,
        })
    }
}

impl PreparedDiscovery {
    /// Runs the discovery on `model`: records the configuration (refusing a directory of
    /// another one), selects the facts, skips those already written, attributes the others
    /// (asking `stop` before each fact; [`RunError::Interrupted`] keeps every finished fact)
    /// and writes the summaries, which it returns.
    pub fn run(
        self,
        model: &dyn KnowledgeModel,
        stop: &dyn Fn() -> bool,
        report: &dyn Fn(Message),
    ) -> Result<StatsFile, RunError> {
        let request = &self.request;
        let out = &self.out;
        let info = model.info().clone();
        let layers = parse_layers(&request.layers, info.num_layers)?;
        let config = RunConfig {
            version: env!("CARGO_PKG_VERSION").to_string(),
            model: ModelRecord {
                source: info.source.clone(),
                architecture: info.architecture.clone(),
                fingerprint: info.fingerprint.clone(),
                dtype: info.dtype.name().into(),
            },
            relations: self.relations.clone(),
            facts_per_relation: request.facts_per_relation,
            seed: request.seed,
            data: self.data_dir.display().to_string(),
            method: request.method.name().into(),
            steps: request.steps,
            layers: layers.clone(),
            threshold: request.threshold,
            share: request.share,
            adaptive: request.adaptive,
            min_prompts: request.min_prompts,
            max_prompts: request.max_prompts,
            correct_rank: request.correct_rank,
            correct_prompts: request.correct_prompts,
            single_token: request.single_token,
            shard: self.shard,
        };
        out.claim(&config)?;
        let finished = out.read_neurons()?;
        if finished.torn_tail {
            report(Message::Warning(format!(
                "{}: the last line was cut short by an interrupted write; removed it (that fact is attributed again)",
                out.neurons_path().display()
            )));
        }
        let style = prompt_style(model);
        let selection = FactSelection {
            seed: request.seed,
            facts_per_relation: request.facts_per_relation,
            max_prompts: request.max_prompts,
            min_prompts: request.min_prompts,
            single_token: request.single_token,
            correct_rank: request.correct_rank,
            correct_prompts: request.correct_prompts,
            shard: self.shard,
        };
        let progress = |message: String| report(Message::Progress(message));
        progress(format!(
            "selecting facts of {} relation(s)",
            self.relations.len()
        ));
        let facts = select_facts(
            model,
            &self.dataset,
            &self.relations,
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
        .map_err(|e| RunError::BadInput(format!("{e}; refusing to resume this run")))?;
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
        if request.method == Method::Atp {
            for (fact, prompts) in &todo {
                let texts =
                    counterfactual_prompts(&self.dataset, fact, prompts, &style, request.seed)?;
                counterfactuals.insert(fact.id.to_string(), texts);
            }
        }
        let attribution = AttributionConfig {
            steps: request.steps,
            rule: IntegrationRule::Left,
            target: Target::Probability,
            layers: Some(layers),
            batch_size: request.batch_size,
            concurrent_passes: request.concurrent_passes,
            memory_budget: self.memory_budget,
        };
        let rule = CoarseRule::Relative {
            ratio: request.threshold,
        };
        discover_facts(
            model,
            out,
            &todo,
            &FactSteps {
                method: request.method,
                attribution: &attribution,
                rule: &rule,
                refine: &self.refine,
                save_scores: request.save_scores,
                counterfactuals: Some(&counterfactuals),
            },
            stop,
            report,
        )?;
        let records = out.records()?;
        let stats = write_summaries(out, &records, &config)?;
        progress(format!(
            "done: {} facts in {}",
            records.len(),
            out.dir().display()
        ));
        Ok(stats)
    }
}
