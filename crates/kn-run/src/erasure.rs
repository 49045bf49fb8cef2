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

use crate::error::RunError;
use crate::run_dir::{encode_facts, relation_frequencies, RunDir};
use crate::Message;
use kn_edit::{evaluate_erasure, verify_restored, EraseConfig, ErasureValue, EvaluationConfig};
use kn_model::KnowledgeModel;
pub use kn_schema::report::erase::{EraseOutput, QualityChange, Summary};
use std::time::Instant;

/// Erases `relation` of `run` in `model` through its `top` most frequent knowledge neurons set
/// to `value`, measures as the module docs say, restores the weights (checked bit for bit)
/// and returns the report (`kn erase --json`).
pub fn erase_relation(
    model: &mut dyn KnowledgeModel,
    run: &RunDir,
    relation: &str,
    top: usize,
    value: ErasureValue,
    eval: &EvaluationConfig,
    report: &dyn Fn(Message),
) -> Result<EraseOutput, RunError> {
    let started = Instant::now();
    let frequencies = relation_frequencies(&run.records, &relation);
    if frequencies.ranked().is_empty() {
        return Err(RunError::BadInput(format!(
            "no fact of {relation} has knowledge neurons in the run: nothing to erase"
        )));
    }
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
    report(Message::Progress(format!(
        "{relation}: {} facts, {} distinct neurons, erasing the top {}; {} prompts of the relation, {} of {} other relation(s)",
        frequencies.facts(),
        frequencies.ranked().len(),
        erased_counts.len(),
        relation_prompts.len(),
        other_prompts.len(),
        others.len()
    )));
    let config = EraseConfig { top_n: top, value };
    let (evaluation, outcome) = evaluate_erasure(
        model,
        relation,
        &frequencies,
        &relation_prompts,
        &other_prompts,
        &config,
        &eval,
    )?;
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
