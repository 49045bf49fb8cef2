//! Erasing a relation through its most frequent knowledge neurons (Dai et al. 2022, section
//! 5.2) on a discovery run, with the paper's metrics.
//!
//! The relation-level neuron frequencies are counted over the knowledge neurons of the run's
//! facts of that relation (`kn_edit::NeuronFrequencies`); the `top` most frequent get their
//! value slots overwritten (`kn_edit::ErasureValue`: the unknown token's output embedding,
//! zeros, or a token of the vocabulary). Accuracy (answer top-1) and perplexity of the first
//! answer token are measured on the erased relation's prompts and on the other relations'
//! prompts of the run, before and after, and under a random-neuron control (as many random
//! neurons, same layers). The weights are restored afterwards and the restoration is checked
//! bit for bit ([`erase_relation`]).
//!
//! The editing papers' checks, as they apply to an erasure (`kn_edit::ErasureChecks`):
//! reliability is the forgetting on the run's prompts of the relation (answered top-1 before,
//! not after), generality the same on prompts held out from localization (PARAREL's prompts of
//! the relation's facts the run did not use, and the run facts' paraphrases it did not use: at
//! most `max_held_out`, a seeded choice), locality the share of other relations' prompts whose
//! top-1 token stays. The random control gets the same checks.

use crate::editing::{encode_with, load_dataset, unused_prompts};
use crate::error::RunError;
use crate::run_dir::{encode_facts, relation_frequencies, seeded_order, RunDir};
use crate::Message;
use kn_edit::{
    evaluate_erasure, verify_restored, EraseConfig, EraseOutcome, ErasurePrompts, EvaluationConfig,
    NeuronFrequencies,
};
use kn_model::{EncodedPrompt, KnowledgeModel};
pub use kn_schema::report::erase::{EraseOutput, QualityChange, Summary};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// Default of `kn erase --max-held-out`: held-out prompts measured for generality.
pub const DEFAULT_MAX_HELD_OUT: usize = 200;

/// Prompts of `relation` held out from the run's localization, encoded with their facts'
/// objects (see the module docs): at most `max` (0: all) in a seeded order (key
/// `erase-held-out/<relation>`), none when PARAREL cannot be loaded.
fn held_out_prompts(
    model: &dyn KnowledgeModel,
    run: &RunDir,
    relation: &str,
    max: usize,
    seed: u64,
) -> Result<Vec<EncodedPrompt>, RunError> {
    let Some(dataset) = load_dataset(run) else {
        return Ok(Vec::new());
    };
    let Ok(facts) = dataset.facts_of(relation) else {
        return Ok(Vec::new());
    };
    let used: BTreeMap<&str, BTreeSet<&str>> = run
        .records
        .iter()
        .filter(|r| r.relation == relation)
        .map(|r| {
            let texts = r.prompts.iter().map(|p| p.text.as_str()).collect();
            (r.fact.as_str(), texts)
        })
        .collect();
    let style = crate::discovery::prompt_style(model);
    let no_prompt_used = BTreeSet::new();
    let mut candidates: Vec<(String, String)> = Vec::new();
    for fact in facts {
        let id = fact.id.to_string();
        let used = used.get(id.as_str()).unwrap_or(&no_prompt_used);
        for text in unused_prompts(&dataset, fact, used, &style) {
            candidates.push((text, fact.object.clone()));
        }
    }
    let order = seeded_order(
        candidates,
        seed,
        &format!("erase-held-out/{relation}"),
        |(text, answer)| format!("{text}/{answer}"),
    );
    let take = if max == 0 { order.len() } else { max };
    let mut prompts = Vec::new();
    for (text, answer) in order {
        if prompts.len() == take {
            break;
        }
        prompts.extend(encode_with(model, [text], &answer)?);
    }
    Ok(prompts)
}

/// The neuron frequencies of `relation`'s facts in `run`; an error when none has neurons.
fn erasable_frequencies(run: &RunDir, relation: &str) -> Result<NeuronFrequencies, RunError> {
    let frequencies = relation_frequencies(&run.records, relation);
    if frequencies.ranked().is_empty() {
        return Err(RunError::BadInput(format!(
            "no fact of {relation} has knowledge neurons in the run: nothing to erase"
        )));
    }
    Ok(frequencies)
}

/// Erases `relation` of `run` in `model` as `config` says and leaves it erased: the returned
/// outcome's handle restores the weights (`kn_edit::EditHandle::restore`). The same neurons as
/// [`erase_relation`], without the measurements.
pub fn apply_erasure(
    model: &mut dyn KnowledgeModel,
    run: &RunDir,
    relation: &str,
    config: &EraseConfig,
) -> Result<EraseOutcome, RunError> {
    run.check_model(model.info())?;
    let relation = run.select_relation(relation)?;
    let frequencies = erasable_frequencies(run, &relation)?;
    Ok(kn_edit::erase_relation(
        model,
        &relation,
        &frequencies,
        config,
    )?)
}

/// Erases `relation` of `run` in `model` as `config` says (its `top_n` most frequent
/// knowledge neurons set to its value), measures as the module docs say (generality on at most
/// `max_held_out` held-out prompts, 0: all), restores the weights (checked bit for bit) and
/// returns the report (`kn erase --json`).
pub fn erase_relation(
    model: &mut dyn KnowledgeModel,
    run: &RunDir,
    relation: &str,
    config: &EraseConfig,
    max_held_out: usize,
    eval: &EvaluationConfig,
    report: &dyn Fn(Message),
) -> Result<EraseOutput, RunError> {
    let top = config.top_n;
    let started = Instant::now();
    let frequencies = erasable_frequencies(run, relation)?;
    let erased_counts: Vec<(kn_schema::Neuron, usize)> = frequencies
        .ranked()
        .into_iter()
        .take(top)
        .map(|(neuron, facts)| (neuron.into(), facts))
        .collect();
    let others: Vec<String> = run
        .relations()
        .into_iter()
        .filter(|r| r != relation)
        .collect();
    let relation_prompts: Vec<_> = encode_facts(
        model,
        &run.records_of(std::slice::from_ref(&relation.to_string())),
    )?
    .into_iter()
    .flat_map(|f| f.prompts)
    .collect();
    let other_prompts: Vec<_> = encode_facts(model, &run.records_of(&others))?
        .into_iter()
        .flat_map(|f| f.prompts)
        .collect();
    let held_out = held_out_prompts(model, run, relation, max_held_out, eval.seed)?;
    report(Message::Progress(format!(
        "{relation}: {} facts, {} distinct neurons, erasing the top {}; {} prompts of the relation ({} held out from localization), {} of {} other relation(s)",
        frequencies.facts(),
        frequencies.ranked().len(),
        erased_counts.len(),
        relation_prompts.len(),
        held_out.len(),
        other_prompts.len(),
        others.len()
    )));
    let prompts = ErasurePrompts {
        relation: relation_prompts,
        held_out,
        other_relations: other_prompts,
    };
    let (evaluation, outcome) =
        evaluate_erasure(model, relation, &frequencies, &prompts, config, eval)?;
    outcome.handle.restore(model)?;
    let weights_restored = verify_restored(model, outcome.handle.patch())?;
    if !weights_restored {
        return Err(RunError::Internal(format!(
            "the weights erased for {relation} were not restored exactly"
        )));
    }
    let summary = Summary::of(
        &evaluation.before,
        &evaluation.after,
        evaluation.random_control.as_ref(),
    );
    let output = EraseOutput {
        run: run.describe(),
        relation_facts: frequencies.facts(),
        neurons_counted: frequencies.ranked().len(),
        erased_counts,
        evaluation,
        summary,
        weights_restored,
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok(output)
}
