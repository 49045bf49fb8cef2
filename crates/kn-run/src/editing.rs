//! Updating facts through their knowledge neurons (Dai et al. 2022, section 5.1) on the facts
//! of a discovery run, with the paper's metrics: one fact ([`edit_fact`]: update, measure,
//! restore the weights and check the restoration bit for bit, keep the patch if asked) or a
//! seeded sample ([`edit_sample`]: each fact's new answer drawn from the objects of other facts
//! of its relation that are one token for the model), aggregated over facts.
//!
//! Shared neurons: neurons held by more than `shared_threshold` (0.1) of the relation's facts
//! are left out, as in the paper's code. That fraction counts the fact itself, so with fewer
//! than 1/threshold facts of the relation in the run every neuron would be "shared"; the
//! threshold used is then raised to 1/facts (a neuron of this fact alone is never shared), and
//! the result says which threshold was used.

use crate::error::RunError;
use crate::run_dir::{
    cap_prompts, change_pct, mean, relation_frequencies, seeded_order, RunDir, RunSummary,
};
use crate::Message;
use kn_data::Pararel;
use kn_edit::{
    evaluate_update, fact_answer_token, new_answer_token, verify_restored, EvaluationConfig,
    FactNeurons, UpdateConfig, UpdateEvaluation, UpdateMetrics,
};
use kn_model::{EncodedPrompt, KnowledgeModel};
use kn_schema::FactRecord;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

/// Relative perplexity changes (%) of one update.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PerplexityChange {
    /// Other facts of the same relation, after the edit vs before.
    pub same_relation: Option<f64>,
    /// Facts of other relations, after vs before.
    pub other_relations: Option<f64>,
    /// Same relation under the random control.
    pub random_same_relation: Option<f64>,
    /// Other relations under the random control.
    pub random_other_relations: Option<f64>,
}

impl PerplexityChange {
    /// The changes of one update's evaluation.
    pub fn of(evaluation: &UpdateEvaluation) -> Self {
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
pub struct FactEdit {
    /// The new answer as given or drawn.
    pub new_answer: String,
    /// The subject and old object of the fact.
    pub subject: String,
    /// The fact's old object.
    pub old_answer: String,
    /// The metrics before and after the update and under the random control.
    #[serde(flatten)]
    pub evaluation: UpdateEvaluation,
    /// The shared threshold actually used (see the module docs).
    pub shared_threshold_used: f64,
    /// Facts of the relation in the run (the frequencies' denominator).
    pub relation_facts: usize,
    /// Prompts in the perplexity controls.
    pub control_prompts: ControlPrompts,
    /// Relative perplexity changes of the controls (%).
    pub perplexity_change_pct: PerplexityChange,
    /// The weights were restored bit for bit after measuring.
    pub weights_restored: bool,
    /// Where the patch was saved (--patch-out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
}

/// Prompts of the perplexity controls.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ControlPrompts {
    /// Of other facts of the same relation.
    pub same_relation: usize,
    /// Of facts of other relations.
    pub other_relations: usize,
}

/// Means of [`UpdateMetrics`] over facts.
#[derive(Debug, Default, Serialize)]
pub struct MeanMetrics {
    /// Share of prompts whose top-1 is the new answer.
    pub success_rate: Option<f64>,
    /// Share of prompts whose top-1 is no longer the old answer.
    pub change_rate: Option<f64>,
    /// Share of prompts with the new answer in the top 5.
    pub top5_rate: Option<f64>,
    /// Mean reciprocal rank of the new answer.
    pub mrr: Option<f64>,
    /// Mean probability of the old answer.
    pub mean_old_prob: Option<f64>,
    /// Mean probability of the new answer.
    pub mean_new_prob: Option<f64>,
    /// Perplexity of other facts' answers, same relation.
    pub same_relation_perplexity: Option<f64>,
    /// Perplexity of other facts' answers, other relations.
    pub other_relations_perplexity: Option<f64>,
    /// Top-1 accuracy of other facts' answers, same relation.
    pub same_relation_accuracy: Option<f64>,
    /// Top-1 accuracy of other facts' answers, other relations.
    pub other_relations_accuracy: Option<f64>,
}

impl MeanMetrics {
    /// The means of `metrics` (each `None` when no fact has it).
    pub fn of<'a>(metrics: impl Iterator<Item = &'a UpdateMetrics> + Clone) -> Self {
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
pub struct Aggregate {
    /// Facts updated and measured.
    pub facts: usize,
    /// Prompts of those facts.
    pub prompts: usize,
    /// Before the updates.
    pub before: MeanMetrics,
    /// After each update.
    pub after: MeanMetrics,
    /// Under the random-neuron control.
    pub random_control: Option<MeanMetrics>,
    /// Means over facts of the per-fact relative perplexity changes.
    pub perplexity_change_pct: PerplexityChange,
}

/// A fact of the sample that could not be updated.
#[derive(Debug, Serialize)]
pub struct Skipped {
    /// The fact id.
    pub fact: String,
    /// Why it was skipped.
    pub reason: String,
}

/// The JSON output of `kn edit --facts N`.
#[derive(Debug, Serialize)]
pub struct SampleOutput {
    /// The run the facts come from.
    pub run: RunSummary,
    /// Facts asked for.
    pub requested: usize,
    /// Seed of the sample, the new answers and the controls.
    pub seed: u64,
    /// Means over the updated facts.
    pub aggregate: Aggregate,
    /// Each updated fact.
    pub facts: Vec<FactEdit>,
    /// Facts of the sample that could not be updated.
    pub skipped: Vec<Skipped>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// The JSON output of `kn edit --fact`.
#[derive(Debug, Serialize)]
pub struct SingleOutput {
    /// The run the facts come from.
    pub run: RunSummary,
    /// The update.
    #[serde(flatten)]
    pub edit: FactEdit,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Everything the per-fact update needs that does not change between facts.
pub struct Context<'a> {
    /// Hears progress and warnings.
    pub report: &'a dyn Fn(Message),
    /// The run.
    pub run: &'a RunDir,
    /// Every fact of the run, encoded for the model, by id.
    pub encoded: BTreeMap<String, FactNeurons>,
    /// The update rule's settings.
    pub config: UpdateConfig,
    /// The measurement's settings.
    pub eval: EvaluationConfig,
    /// Prompts kept per perplexity control (0: all).
    pub max_control_prompts: usize,
}

/// Prompts of the run's facts other than `fact`: of its relation, and of the other relations.
pub fn control_prompts(
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
pub fn edit_fact(
    model: &mut dyn KnowledgeModel,
    context: &Context<'_>,
    record: &FactRecord,
    new_answer: &str,
    patch_out: Option<&Path>,
) -> Result<FactEdit, RunError> {
    let fact = context
        .encoded
        .get(&record.fact)
        .ok_or_else(|| RunError::Internal(format!("fact {} was not encoded", record.fact)))?;
    if fact.neurons.is_empty() {
        return Err(RunError::BadInput(format!(
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
        (context.report)(Message::Warning(format!(
            "{}: the run has {relation_facts} facts of {}, so --shared-threshold {} is raised to {threshold:.3} (a neuron of this fact alone is not shared)",
            record.fact, record.relation, context.config.shared_threshold
        )));
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
        return Err(RunError::Internal(format!(
            "the weights edited for fact {} were not restored exactly",
            record.fact
        )));
    }
    let patch = match patch_out {
        Some(path) => {
            outcome.handle.save(path)?;
            (context.report)(Message::Progress(format!(
                "patch written to {} (re-apply it with kn_edit::apply_patch)",
                path.display()
            )));
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
pub fn answer_candidates(
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
pub fn draw_new_answer(
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
pub fn edit_sample(
    model: &mut dyn KnowledgeModel,
    context: &Context<'_>,
    relations: &[String],
    requested: usize,
    seed: u64,
    started: Instant,
) -> Result<SampleOutput, RunError> {
    let run = context.run;
    let dataset = kn_data::load_facts(Path::new(&run.config.data))
        .or_else(|_| Pararel::load_bundled())
        .ok();
    if dataset.is_none() {
        (context.report)(Message::Warning(
            "PARAREL could not be loaded; new answers are drawn from the run's own facts".into(),
        ));
    }
    let pool: Vec<&FactRecord> = run
        .records_of(relations)
        .into_iter()
        .filter(|r| !r.neurons.is_empty())
        .collect();
    if pool.is_empty() {
        return Err(RunError::BadInput(
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
                (context.report)(Message::Progress(format!(
                    "[{}/{requested}] {} {}: {} -> {}: success {:.2}, change {:.2}",
                    edits.len() + 1,
                    record.fact,
                    record.subject,
                    record.object,
                    answer,
                    edit.evaluation.after.success_rate,
                    edit.evaluation.after.change_rate
                )));
                edits.push(edit);
            }
            Err(RunError::BadInput(reason)) => {
                (context.report)(Message::Warning(format!(
                    "skipping {}: {reason}",
                    record.fact
                )));
                skipped.push(Skipped {
                    fact: record.fact.clone(),
                    reason,
                });
            }
            Err(error) => return Err(error),
        }
    }
    if edits.len() < requested {
        (context.report)(Message::Warning(format!(
            "only {} of the {requested} facts requested could be updated",
            edits.len()
        )));
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
