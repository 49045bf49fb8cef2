//! Updating facts through their knowledge neurons (Dai et al. 2022, section 5.1) on the facts
//! of a discovery run, with the paper's metrics: one fact ([`edit_fact`]: update, measure,
//! restore the weights and check the restoration bit for bit, keep the patch if asked) or a
//! seeded sample ([`edit_sample`]: each fact's new answer drawn from the objects of other facts
//! of its relation that are one token for the model), aggregated over facts.
//!
//! Beyond the paper's metrics, every update reports the checks editing papers use
//! (`kn_edit::EditChecks`): reliability (the new answer on the localization prompts),
//! generality (on paraphrases held out from localization: the fact's PARAREL prompts the run
//! did not use, and with `holdout` > 0 a seeded share of its run prompts, whose neurons are
//! then re-refined from the other prompts' coarse selections with the run's p), locality (other
//! facts' prompts keep their top-1 token) and, for the symmetric relations P47 and P530,
//! symmetry (Niu et al., ICLR 2024: after X -> Y', does (Y', r, X) hold?).
//!
//! Shared neurons: neurons held by more than `shared_threshold` (0.1) of the relation's facts
//! are left out, as in the paper's code. That fraction counts the fact itself, so with fewer
//! than 1/threshold facts of the relation in the run every neuron would be "shared"; the
//! threshold used is then raised to 1/facts (a neuron of this fact alone is never shared), and
//! the result says which threshold was used.

use crate::error::RunError;
use crate::output_dir::refine_config;
use crate::run_dir::{cap_prompts, relation_frequencies, seeded_order, RunDir};
use crate::Message;
use kn_data::Pararel;
use kn_edit::{
    evaluate_update, fact_answer_token, new_answer_token, update_fact, verify_restored,
    CheckPrompts, EncodedFact, EvaluationConfig, NeuronFrequencies, UpdateConfig, UpdateOutcome,
};
use kn_model::{AnswerPolicy, EncodedPrompt, KnowledgeModel, ModelError};
pub use kn_schema::report::edit::{
    Aggregate, ControlPrompts, FactEdit, MeanMetrics, PerplexityChange, SampleOutput, SingleOutput,
    Skipped,
};
use kn_schema::FactRecord;
use kn_select::{refine_fact, RefineConfig};
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
    /// PARAREL as the run read it (held-out paraphrases, reversed facts, new answers); `None`
    /// when it cannot be loaded.
    pub dataset: Option<kn_data::Dataset>,
    /// Share of a fact's run prompts held out of localization for the generality check, in
    /// [0, 1) (0: every run prompt locates, the paper's rule).
    pub holdout: f64,
}

/// The relations whose facts hold both ways, for the symmetry check: P47 "shares border with"
/// and P530 "diplomatic relation".
pub const SYMMETRIC_RELATIONS: [&str; 2] = ["P47", "P530"];

/// PARAREL as `run` read it (its data directory), else the bundled copy; `None` when neither
/// loads.
pub fn load_dataset(run: &RunDir) -> Option<kn_data::Dataset> {
    kn_data::load_facts(Path::new(&run.config.data))
        .or_else(|_| Pararel::load_bundled())
        .ok()
}

/// The prompts of `fact` (as `dataset` has it: its own prompts, else its relation's templates)
/// whose text is not in `used`: paraphrases held out from a localization that used `used`.
pub fn unused_prompts(
    dataset: &kn_data::Dataset,
    fact: &kn_data::Fact,
    used: &BTreeSet<&str>,
    style: &kn_data::PromptStyle,
) -> Vec<String> {
    dataset
        .prompts(fact, style)
        .into_iter()
        .map(|p| p.text)
        .filter(|text| !used.contains(text.as_str()))
        .collect()
}

/// Prompts encoded with `answer`, leaving out those the model cannot encode (too long, an
/// answer it cannot score); a failure inside libtorch is an error.
pub(crate) fn encode_with(
    model: &dyn KnowledgeModel,
    texts: impl IntoIterator<Item = String>,
    answer: &str,
) -> Result<Vec<EncodedPrompt>, RunError> {
    let mut out = Vec::new();
    for text in texts {
        match model.encode(&text, Some(answer), AnswerPolicy::FirstToken) {
            Ok(prompt) => out.push(prompt),
            Err(error @ (ModelError::Torch(_) | ModelError::OutOfMemory(_))) => {
                return Err(error.into())
            }
            Err(_) => {}
        }
    }
    Ok(out)
}

/// The fact to edit with its localization prompts, and the check prompts: with `holdout` > 0
/// a seeded share of the run prompts is held out and the neurons are re-refined from the
/// others' coarse selections (the run's p).
fn split_for_checks(
    model: &dyn KnowledgeModel,
    context: &Context<'_>,
    record: &FactRecord,
    fact: &EncodedFact,
    new_answer: &str,
) -> Result<(EncodedFact, CheckPrompts), RunError> {
    let n = record.prompts.len().min(fact.prompts.len());
    let held = if context.holdout > 0.0 && n >= 2 {
        ((context.holdout * n as f64).floor() as usize).clamp(1, n - 1)
    } else {
        0
    };
    let mut located = fact.clone();
    let mut held_texts: Vec<String> = Vec::new();
    if held > 0 {
        let order = seeded_order(
            (0..n).collect(),
            context.eval.seed,
            &format!("holdout/{}", record.fact),
            |i: &usize| i.to_string(),
        );
        let held_out: BTreeSet<usize> = order.into_iter().take(held).collect();
        let kept: Vec<usize> = (0..n).filter(|i| !held_out.contains(i)).collect();
        let coarse: Vec<Vec<kn_schema::Neuron>> = kept
            .iter()
            .map(|&i| record.prompts[i].coarse.clone())
            .collect();
        // The run's refinement, but any number of located prompts is enough.
        let refine = RefineConfig {
            min_prompts: 1,
            ..refine_config(&context.run.config)
        };
        let refined = refine_fact(&record.fact, &record.relation, &coarse, &refine)
            .map_err(|e| RunError::BadInput(format!("fact {}: {e}", record.fact)))?;
        located.prompts = kept.iter().map(|&i| fact.prompts[i].clone()).collect();
        located.neurons = refined.neurons.into();
        held_texts.extend(held_out.iter().map(|&i| record.prompts[i].text.clone()));
    }
    let style = crate::discovery::prompt_style(model);
    let used: BTreeSet<&str> = record.prompts.iter().map(|p| p.text.as_str()).collect();
    let mut reversed = None;
    if let Some(dataset) = &context.dataset {
        // The fact as the data has it (its own prompts, if the data gives some).
        let known = record
            .fact
            .parse::<kn_data::FactId>()
            .ok()
            .and_then(|id| dataset.fact(&id));
        if let Some(known) = known {
            held_texts.extend(unused_prompts(dataset, known, &used, &style));
        }
        if SYMMETRIC_RELATIONS.contains(&record.relation.as_str()) {
            let texts = dataset
                .templates(&record.relation)
                .iter()
                .filter_map(|t| t.prompt(new_answer, &style));
            reversed = Some(encode_with(model, texts, &record.subject)?);
        }
    }
    let checks = CheckPrompts {
        held_out: encode_with(model, held_texts, new_answer)?,
        reversed,
    };
    Ok((located, checks))
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
    edit_encoded(model, context, record, fact, new_answer, patch_out)
}

/// [`edit_fact`] with the fact as given (its neurons possibly a subset of the run's).
pub(crate) fn edit_encoded(
    model: &mut dyn KnowledgeModel,
    context: &Context<'_>,
    record: &FactRecord,
    fact: &EncodedFact,
    new_answer: &str,
    patch_out: Option<&Path>,
) -> Result<FactEdit, RunError> {
    if fact.neurons.is_empty() {
        return Err(RunError::BadInput(format!(
            "fact {} has no knowledge neurons in the run: nothing to edit",
            record.fact
        )));
    }
    let (config, frequencies) =
        relation_update_config(context.run, record, &context.config, context.report);
    let threshold = config.shared_threshold;
    let relation_facts = frequencies.facts();
    let (same, other) = control_prompts(context, fact);
    let (located, checks) = split_for_checks(model, context, record, fact, new_answer)?;
    if located.neurons.is_empty() {
        return Err(RunError::BadInput(format!(
            "fact {} has no knowledge neurons when located on {} of its prompts (--holdout {})",
            record.fact,
            located.prompts.len(),
            context.holdout
        )));
    }
    let (evaluation, outcome) = evaluate_update(
        model,
        &located,
        new_answer,
        &frequencies,
        &same,
        &other,
        &config,
        &context.eval,
        &checks,
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

/// The update settings for `record` in `run` and its relation's neuron frequencies: the shared
/// threshold of `config`, raised to 1/facts when the run has fewer than 1/threshold facts of
/// the relation (a neuron of this fact alone is never shared; `report` hears the warning).
pub fn relation_update_config(
    run: &RunDir,
    record: &FactRecord,
    config: &UpdateConfig,
    report: &dyn Fn(Message),
) -> (UpdateConfig, NeuronFrequencies) {
    let frequencies = relation_frequencies(&run.records, &record.relation);
    let relation_facts = frequencies.facts();
    let floor = if relation_facts > 0 {
        1.0 / relation_facts as f64
    } else {
        0.0
    };
    let threshold = config.shared_threshold.max(floor);
    if threshold > config.shared_threshold {
        report(Message::Warning(format!(
            "{}: the run has {relation_facts} facts of {}, so --shared-threshold {} is raised to {threshold:.3} (a neuron of this fact alone is not shared)",
            record.fact, record.relation, config.shared_threshold
        )));
    }
    let config = UpdateConfig {
        shared_threshold: threshold,
        ..*config
    };
    (config, frequencies)
}

/// Updates fact `fact_id` of `run` to `new_answer` in `model` and leaves it updated: the
/// returned outcome's handle restores the weights (`kn_edit::EditHandle::restore`). The same
/// neurons and rule as [`edit_fact`] (shared neurons left out), without the measurements.
pub fn apply_update(
    model: &mut dyn KnowledgeModel,
    run: &RunDir,
    fact_id: &str,
    new_answer: &str,
    config: &UpdateConfig,
    report: &dyn Fn(Message),
) -> Result<UpdateOutcome, RunError> {
    run.check_model(model.info())?;
    let record = run.find(fact_id)?;
    let fact = crate::run_dir::encode_fact(model, record)?;
    if fact.neurons.is_empty() {
        return Err(RunError::BadInput(format!(
            "fact {} has no knowledge neurons in the run: nothing to edit",
            record.fact
        )));
    }
    let (config, frequencies) = relation_update_config(run, record, config, report);
    Ok(update_fact(
        model,
        &fact,
        new_answer,
        &frequencies,
        &config,
    )?)
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

/// `--facts N`: the sample seeded by the context's seed, one update at a time, aggregated.
pub fn edit_sample(
    model: &mut dyn KnowledgeModel,
    context: &Context<'_>,
    relations: &[String],
    requested: usize,
    started: Instant,
) -> Result<SampleOutput, RunError> {
    let run = context.run;
    let seed = context.eval.seed;
    let dataset = context.dataset.as_ref();
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
        let candidates = answer_candidates(run, dataset, record, seed);
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
    let aggregate = Aggregate::of(&edits);
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
