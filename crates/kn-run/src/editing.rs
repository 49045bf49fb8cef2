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
use crate::run_dir::{cap_prompts, mean, relation_frequencies, seeded_order, RunDir};
use crate::Message;
use kn_data::Pararel;
use kn_edit::{
    evaluate_update, fact_answer_token, new_answer_token, verify_restored, EncodedFact,
    EvaluationConfig, UpdateConfig, UpdateMetrics,
};
use kn_model::{EncodedPrompt, KnowledgeModel};
pub use kn_schema::report::edit::{
    Aggregate, ControlPrompts, FactEdit, MeanMetrics, PerplexityChange, SampleOutput, SingleOutput,
    Skipped,
};
use kn_schema::FactRecord;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

/// Everything the per-fact update needs that does not change between facts.
pub struct Context<'a> {
    /// Hears progress and warnings.
    pub report: &'a dyn Fn(Message),
    /// The run.
    pub run: &'a RunDir,
    /// Every fact of the run, encoded for the model, by id.
    pub encoded: BTreeMap<String, EncodedFact>,
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
    fact: &EncodedFact,
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
    fact: &EncodedFact,
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
