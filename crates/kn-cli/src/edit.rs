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
//! Shared neurons: neurons held by more than `--shared-threshold` (0.1) of the relation's facts
//! are left out, as in the paper's code. That fraction counts the fact itself, so with fewer
//! than 1/threshold facts of the relation in the run every neuron would be "shared"; the
//! threshold used is then raised to 1/facts (a neuron of this fact alone is never shared), and
//! the report says which threshold was used.

use crate::emit::emit;
use crate::exit::CliError;
use crate::options::ModelOptions;
use kn_data::Pararel;
use kn_edit::verify_restored;
use kn_edit::{
    evaluate_update, fact_answer_token, new_answer_token, EvaluationConfig, FactNeurons,
    UpdateConfig, UpdateEvaluation, UpdateMetrics,
};
use kn_model::{EncodedPrompt, KnowledgeModel};
use kn_run::{
    cap_prompts, change_pct, encode_fact, mean, relation_frequencies, seeded_order, RunDir,
    RunSummary,
};
use kn_schema::FactRecord;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
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

/// Relative perplexity changes (%) of one update.
#[derive(Debug, Clone, Default, Serialize)]
struct PerplexityChange {
    /// Other facts of the same relation, after the edit vs before.
    same_relation: Option<f64>,
    /// Facts of other relations, after vs before.
    other_relations: Option<f64>,
    /// Same relation under the random control.
    random_same_relation: Option<f64>,
    /// Other relations under the random control.
    random_other_relations: Option<f64>,
}

impl PerplexityChange {
    /// The table line of these changes.
    fn table_row(&self) -> String {
        format!(
            "  perplexity change: same relation {}, other relations {} (random control {}, {})\n",
            crate::emit::pct(self.same_relation),
            crate::emit::pct(self.other_relations),
            crate::emit::pct(self.random_same_relation),
            crate::emit::pct(self.random_other_relations)
        )
    }

    fn of(evaluation: &UpdateEvaluation) -> Self {
        let ppl = |m: &UpdateMetrics, same: bool| {
            if same {
                m.same_relation.map(|q| q.perplexity)
            } else {
                m.other_relations.map(|q| q.perplexity)
            }
        };
        let change = |after: Option<&UpdateMetrics>, same: bool| match (
            ppl(&evaluation.before, same),
            after.and_then(|a| ppl(a, same)),
        ) {
            (Some(b), Some(a)) => change_pct(b, a),
            _ => None,
        };
        Self {
            same_relation: change(Some(&evaluation.after), true),
            other_relations: change(Some(&evaluation.after), false),
            random_same_relation: change(evaluation.random_control.as_ref(), true),
            random_other_relations: change(evaluation.random_control.as_ref(), false),
        }
    }
}

/// One updated fact in the JSON output.
#[derive(Debug, Serialize)]
struct FactEdit {
    /// The new answer as given or drawn.
    new_answer: String,
    /// The subject and old object of the fact.
    subject: String,
    old_answer: String,
    #[serde(flatten)]
    evaluation: UpdateEvaluation,
    /// The shared threshold actually used (see the module docs).
    shared_threshold_used: f64,
    /// Facts of the relation in the run (the frequencies' denominator).
    relation_facts: usize,
    /// Prompts in the perplexity controls.
    control_prompts: ControlPrompts,
    perplexity_change_pct: PerplexityChange,
    /// The weights were restored bit for bit after measuring.
    weights_restored: bool,
    /// Where the patch was saved (--patch-out).
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct ControlPrompts {
    same_relation: usize,
    other_relations: usize,
}

/// Means of [`UpdateMetrics`] over facts.
#[derive(Debug, Default, Serialize)]
struct MeanMetrics {
    success_rate: Option<f64>,
    change_rate: Option<f64>,
    top5_rate: Option<f64>,
    mrr: Option<f64>,
    mean_old_prob: Option<f64>,
    mean_new_prob: Option<f64>,
    same_relation_perplexity: Option<f64>,
    other_relations_perplexity: Option<f64>,
    same_relation_accuracy: Option<f64>,
    other_relations_accuracy: Option<f64>,
}

impl MeanMetrics {
    fn of<'a>(metrics: impl Iterator<Item = &'a UpdateMetrics> + Clone) -> Self {
        let m = |f: fn(&UpdateMetrics) -> Option<f64>| mean(metrics.clone().map(f));
        Self {
            success_rate: m(|x| Some(x.success_rate)),
            change_rate: m(|x| Some(x.change_rate)),
            top5_rate: m(|x| Some(x.top5_rate)),
            mrr: m(|x| Some(x.mrr)),
            mean_old_prob: m(|x| Some(x.mean_old_prob)),
            mean_new_prob: m(|x| Some(x.mean_new_prob)),
            same_relation_perplexity: m(|x| x.same_relation.map(|q| q.perplexity)),
            other_relations_perplexity: m(|x| x.other_relations.map(|q| q.perplexity)),
            same_relation_accuracy: m(|x| x.same_relation.map(|q| q.accuracy)),
            other_relations_accuracy: m(|x| x.other_relations.map(|q| q.accuracy)),
        }
    }
}

/// The aggregate of `--facts N`.
#[derive(Debug, Serialize)]
struct Aggregate {
    /// Facts updated and measured.
    facts: usize,
    /// Prompts of those facts.
    prompts: usize,
    before: MeanMetrics,
    after: MeanMetrics,
    random_control: Option<MeanMetrics>,
    /// Means over facts of the per-fact relative perplexity changes.
    perplexity_change_pct: PerplexityChange,
}

/// A fact of the sample that could not be updated.
#[derive(Debug, Serialize)]
struct Skipped {
    fact: String,
    reason: String,
}

/// The JSON output of `kn edit --facts N`.
#[derive(Debug, Serialize)]
struct SampleOutput {
    run: RunSummary,
    requested: usize,
    seed: u64,
    aggregate: Aggregate,
    facts: Vec<FactEdit>,
    skipped: Vec<Skipped>,
    seconds: f64,
}

/// The JSON output of `kn edit --fact`.
#[derive(Debug, Serialize)]
struct SingleOutput {
    run: RunSummary,
    #[serde(flatten)]
    edit: FactEdit,
    seconds: f64,
}

/// Everything the per-fact update needs that does not change between facts.
struct Context<'a> {
    run: &'a RunDir,
    encoded: BTreeMap<String, FactNeurons>,
    config: UpdateConfig,
    eval: EvaluationConfig,
    max_control_prompts: usize,
}

/// Runs `kn edit`.
pub fn run(args: EditArgs) -> Result<(), CliError> {
    for (name, value) in [
        ("--lambda-remove", args.lambda_remove),
        ("--lambda-add", args.lambda_add),
        ("--shared-threshold", args.shared_threshold),
    ] {
        if !value.is_finite() || (name == "--shared-threshold" && value < 0.0) {
            return Err(CliError::BadInput(format!(
                "{name} must be a finite number{}",
                if name == "--shared-threshold" {
                    " >= 0"
                } else {
                    ""
                }
            )));
        }
    }
    if args.batch_size == 0 {
        return Err(CliError::BadInput("--batch-size must be at least 1".into()));
    }
    if args.facts == Some(0) {
        return Err(CliError::BadInput("--facts must be at least 1".into()));
    }
    let run = RunDir::load(&args.neurons)?;
    let single = match &args.fact {
        Some(id) => Some(run.find(id)?.clone()),
        None => None,
    };
    let relations = run.select_relations(args.relations.as_deref())?;
    let mut locks = Vec::new();
    for (path, option) in [(&args.out, "--out"), (&args.patch_out, "--patch-out")] {
        if let Some(path) = path {
            kn_run::check_output_file(path, option)?;
            locks.extend(kn_run::lock_run_of(path, "kn edit")?);
        }
    }
    let mut model = args.model.load()?;
    run.check_model(model.info())?;
    let started = Instant::now();
    let mut encoded = BTreeMap::new();
    for record in &run.records {
        encoded.insert(record.fact.clone(), encode_fact(model.as_ref(), record)?);
    }
    let context = Context {
        run: &run,
        encoded,
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
            single_table(&output.edit)
        });
    }
    let requested = args.facts.unwrap_or(1);
    let output = edit_sample(
        model.as_mut(),
        &context,
        &relations,
        requested,
        args.seed,
        started,
    )?;
    emit(&output, args.json, args.out.as_deref(), || {
        sample_table(&output)
    })
}

/// Prompts of the run's facts other than `fact`: of its relation, and of the other relations.
fn control_prompts(
    context: &Context<'_>,
    fact: &FactNeurons,
) -> (Vec<EncodedPrompt>, Vec<EncodedPrompt>) {
    let mut same = Vec::new();
    let mut other = Vec::new();
    for (id, f) in &context.encoded {
        if *id == fact.id {
            continue;
        }
        if f.relation == fact.relation {
            same.extend(f.prompts.iter().cloned())
        } else {
            other.extend(f.prompts.iter().cloned())
        }
    }
    let seed = context.eval.seed;
    (
        cap_prompts(
            same,
            context.max_control_prompts,
            seed,
            &format!("same-relation/{}", fact.id),
        ),
        cap_prompts(
            other,
            context.max_control_prompts,
            seed,
            &format!("other-relations/{}", fact.id),
        ),
    )
}

/// Updates one fact, measures, restores the weights (checked), saves the patch if asked.
fn edit_fact(
    model: &mut dyn KnowledgeModel,
    context: &Context<'_>,
    record: &FactRecord,
    new_answer: &str,
    patch_out: Option<&Path>,
) -> Result<FactEdit, CliError> {
    let fact = context
        .encoded
        .get(&record.fact)
        .ok_or_else(|| CliError::Internal(format!("fact {} was not encoded", record.fact)))?;
    if fact.neurons.is_empty() {
        return Err(CliError::BadInput(format!(
            "fact {} has no knowledge neurons in the run: nothing to edit",
            record.fact
        )));
    }
    let frequencies = relation_frequencies(&context.run.records, &record.relation);
    let relation_facts = frequencies.facts();
    let floor = if relation_facts > 0 {
        1.0 / relation_facts as f64
    } else {
        0.0
    };
    let threshold = context.config.shared_threshold.max(floor);
    if threshold > context.config.shared_threshold {
        crate::log::warn(
            "edit",
            format!(
                "{}: the run has {relation_facts} facts of {}, so --shared-threshold {} is raised to {threshold:.3} (a neuron of this fact alone is not shared)",
                record.fact, record.relation, context.config.shared_threshold
            ),
        );
    }
    let config = UpdateConfig {
        shared_threshold: threshold,
        ..context.config
    };
    let (same, other) = control_prompts(context, fact);
    let (evaluation, outcome) = evaluate_update(
        model,
        fact,
        new_answer,
        &frequencies,
        &same,
        &other,
        &config,
        &context.eval,
    )?;
    outcome.handle.restore(model)?;
    let weights_restored = verify_restored(model, outcome.handle.patch())?;
    if !weights_restored {
        return Err(CliError::Internal(format!(
            "the weights edited for fact {} were not restored exactly",
            record.fact
        )));
    }
    let patch = match patch_out {
        Some(path) => {
            outcome.handle.save(path)?;
            crate::log::progress(
                "edit",
                format!(
                    "patch written to {} (re-apply it with kn_edit::apply_patch)",
                    path.display()
                ),
            );
            Some(path.display().to_string())
        }
        None => None,
    };
    Ok(FactEdit {
        new_answer: new_answer.to_string(),
        subject: record.subject.clone(),
        old_answer: record.object.clone(),
        perplexity_change_pct: PerplexityChange::of(&evaluation),
        evaluation,
        shared_threshold_used: threshold,
        relation_facts,
        control_prompts: ControlPrompts {
            same_relation: same.len(),
            other_relations: other.len(),
        },
        weights_restored,
        patch,
    })
}

/// Candidate new answers of a fact: the objects of its relation's other PARAREL facts (the
/// run's data directory, else the bundled copy, else the run's own facts), in a seeded order.
fn answer_candidates(
    run: &RunDir,
    dataset: Option<&kn_data::Dataset>,
    record: &FactRecord,
    seed: u64,
) -> Vec<String> {
    let mut objects: BTreeSet<String> = BTreeSet::new();
    if let Some(facts) = dataset.and_then(|d| d.facts_of(&record.relation).ok()) {
        objects.extend(facts.iter().map(|f| f.object.clone()));
    }
    if objects.is_empty() {
        objects.extend(
            run.records
                .iter()
                .filter(|r| r.relation == record.relation)
                .map(|r| r.object.clone()),
        );
    }
    objects.remove(&record.object);
    seeded_order(
        objects.into_iter().collect(),
        seed,
        &format!("new-answer/{}", record.fact),
        |o: &String| o.clone(),
    )
}

/// The first candidate that is one token for the model and not the fact's answer token.
fn draw_new_answer(
    model: &dyn KnowledgeModel,
    fact: &FactNeurons,
    candidates: &[String],
) -> Option<String> {
    let old = fact_answer_token(fact).ok()?;
    let first = fact.prompts.first()?;
    candidates
        .iter()
        .find(|c| new_answer_token(model, first, c).is_ok_and(|token| token != old))
        .cloned()
}

/// `--facts N`: the seeded sample, one update at a time, aggregated.
fn edit_sample(
    model: &mut dyn KnowledgeModel,
    context: &Context<'_>,
    relations: &[String],
    requested: usize,
    seed: u64,
    started: Instant,
) -> Result<SampleOutput, CliError> {
    let run = context.run;
    let dataset = kn_data::load_facts(Path::new(&run.config.data))
        .or_else(|_| Pararel::load_bundled())
        .ok();
    if dataset.is_none() {
        crate::log::warn(
            "edit",
            "PARAREL could not be loaded; new answers are drawn from the run's own facts",
        );
    }
    let pool: Vec<&FactRecord> = run
        .records_of(relations)
        .into_iter()
        .filter(|r| !r.neurons.is_empty())
        .collect();
    if pool.is_empty() {
        return Err(CliError::BadInput(
            "no fact of the selected relations has knowledge neurons: nothing to edit".into(),
        ));
    }
    let order = seeded_order(pool, seed, "edit-facts", |r| r.fact.clone());
    let mut edits = Vec::new();
    let mut skipped = Vec::new();
    for record in order {
        if edits.len() >= requested {
            break;
        }
        let Some(fact) = context.encoded.get(&record.fact) else {
            continue;
        };
        let candidates = answer_candidates(run, dataset.as_ref(), record, seed);
        let Some(answer) = draw_new_answer(model, fact, &candidates) else {
            skipped.push(Skipped {
                fact: record.fact.clone(),
                reason: "no other object of the relation is a single token for the model".into(),
            });
            continue;
        };
        match edit_fact(model, context, record, &answer, None) {
            Ok(edit) => {
                crate::log::progress(
                    "edit",
                    format!(
                        "[{}/{requested}] {} {}: {} -> {}: success {:.2}, change {:.2}",
                        edits.len() + 1,
                        record.fact,
                        record.subject,
                        record.object,
                        answer,
                        edit.evaluation.after.success_rate,
                        edit.evaluation.after.change_rate
                    ),
                );
                edits.push(edit);
            }
            Err(CliError::BadInput(reason)) => {
                crate::log::warn("edit", format!("skipping {}: {reason}", record.fact));
                skipped.push(Skipped {
                    fact: record.fact.clone(),
                    reason,
                });
            }
            Err(error) => return Err(error),
        }
    }
    if edits.len() < requested {
        crate::log::warn(
            "edit",
            format!(
                "only {} of the {requested} facts requested could be updated",
                edits.len()
            ),
        );
    }
    let evaluations = || edits.iter().map(|e| &e.evaluation);
    let randoms: Vec<&UpdateMetrics> = evaluations()
        .filter_map(|e| e.random_control.as_ref())
        .collect();
    let aggregate = Aggregate {
        facts: edits.len(),
        prompts: evaluations().map(|e| e.after.prompts).sum(),
        before: MeanMetrics::of(evaluations().map(|e| &e.before)),
        after: MeanMetrics::of(evaluations().map(|e| &e.after)),
        random_control: (!randoms.is_empty()).then(|| MeanMetrics::of(randoms.iter().copied())),
        perplexity_change_pct: PerplexityChange {
            same_relation: mean(edits.iter().map(|e| e.perplexity_change_pct.same_relation)),
            other_relations: mean(
                edits
                    .iter()
                    .map(|e| e.perplexity_change_pct.other_relations),
            ),
            random_same_relation: mean(
                edits
                    .iter()
                    .map(|e| e.perplexity_change_pct.random_same_relation),
            ),
            random_other_relations: mean(
                edits
                    .iter()
                    .map(|e| e.perplexity_change_pct.random_other_relations),
            ),
        },
    };
    Ok(SampleOutput {
        run: run.describe(),
        requested,
        seed,
        aggregate,
        facts: edits,
        skipped,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// A table number: 3 decimals, scientific notation from 100000 on, `-` when absent.
fn num(value: Option<f64>) -> String {
    match value {
        Some(v) if v.abs() >= 1e5 => format!("{v:.3e}"),
        Some(v) => format!("{v:.3}"),
        None => "-".into(),
    }
}

/// Reads one metric of [`MeanMetrics`].
type MetricOf = fn(&MeanMetrics) -> Option<f64>;

/// Rows of metrics: name, before, after, random control.
fn metric_rows(before: &MeanMetrics, after: &MeanMetrics, random: Option<&MeanMetrics>) -> String {
    let mut out = format!(
        "  {:<28} {:>10} {:>10} {:>14}\n",
        "", "before", "after", "random ctrl"
    );
    let rows: [(&str, MetricOf); 8] = [
        ("success rate (new top-1)", |m| m.success_rate),
        ("change rate (old not top-1)", |m| m.change_rate),
        ("top-5 rate of new", |m| m.top5_rate),
        ("MRR of new", |m| m.mrr),
        ("p(old answer)", |m| m.mean_old_prob),
        ("p(new answer)", |m| m.mean_new_prob),
        ("perplexity, same relation", |m| m.same_relation_perplexity),
        ("perplexity, other relations", |m| {
            m.other_relations_perplexity
        }),
    ];
    for (name, get) in rows {
        out.push_str(&format!(
            "  {name:<28} {:>10} {:>10} {:>14}\n",
            num(get(before)),
            num(get(after)),
            num(random.and_then(get))
        ));
    }
    out
}

fn single_table(edit: &FactEdit) -> String {
    let e = &edit.evaluation;
    let one = |m: &UpdateMetrics| MeanMetrics::of(std::iter::once(m));
    let mut out = format!(
        "{} ({}): {} {:?} -> {:?}; {} neurons edited, {} shared left out (threshold {:.3})\n",
        e.fact,
        e.relation,
        edit.subject,
        e.old_text,
        e.new_text,
        e.neurons.len(),
        e.excluded.len(),
        edit.shared_threshold_used
    );
    out.push_str(&metric_rows(
        &one(&e.before),
        &one(&e.after),
        e.random_control.as_ref().map(one).as_ref(),
    ));
    out.push_str(&edit.perplexity_change_pct.table_row());
    out.push_str(&format!(
        "  weights restored: {}{}\n",
        if edit.weights_restored { "yes" } else { "NO" },
        edit.patch
            .as_ref()
            .map(|p| format!("; patch saved to {p}"))
            .unwrap_or_default()
    ));
    out
}

fn sample_table(output: &SampleOutput) -> String {
    let a = &output.aggregate;
    let mut out = format!(
        "{} facts updated ({} requested, {} skipped), {} prompts; means over facts\n",
        a.facts,
        output.requested,
        output.skipped.len(),
        a.prompts
    );
    out.push_str(&metric_rows(&a.before, &a.after, a.random_control.as_ref()));
    out.push_str(&a.perplexity_change_pct.table_row());
    out
}
