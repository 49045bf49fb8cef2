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
use crate::run_dir::{change_pct, encode_facts, relation_frequencies, RunDir, RunSummary};
use crate::Message;
use kn_edit::{
    evaluate_erasure, verify_restored, AnswerQuality, EraseConfig, ErasureEvaluation,
    ErasureMetrics, ErasureValue, EvaluationConfig,
};
use kn_model::KnowledgeModel;
use serde::Serialize;
use std::time::Instant;

/// Before/after of one group of prompts, with relative changes.
#[derive(Debug, Serialize)]
pub struct QualityChange {
    /// Prompts measured.
    pub prompts: usize,
    /// Top-1 accuracy before the erasure.
    pub accuracy_before: f64,
    /// Top-1 accuracy after it.
    pub accuracy_after: f64,
    /// Perplexity of the answers before the erasure.
    pub perplexity_before: f64,
    /// Perplexity after it.
    pub perplexity_after: f64,
    /// `100 * (after / before - 1)`.
    pub perplexity_change_pct: Option<f64>,
    /// Under the random control.
    pub random_accuracy: Option<f64>,
    /// Perplexity under the random control.
    pub random_perplexity: Option<f64>,
    /// Its change against before (%).
    pub random_perplexity_change_pct: Option<f64>,
}

impl QualityChange {
    /// The changes from `before` to `after` (and to the random control's).
    pub fn of(
        before: &AnswerQuality,
        after: &AnswerQuality,
        random: Option<&AnswerQuality>,
    ) -> Self {
        Self {
            prompts: before.prompts,
            accuracy_before: before.accuracy,
            accuracy_after: after.accuracy,
            perplexity_before: before.perplexity,
            perplexity_after: after.perplexity,
            perplexity_change_pct: change_pct(before.perplexity, after.perplexity),
            random_accuracy: random.map(|r| r.accuracy),
            random_perplexity: random.map(|r| r.perplexity),
            random_perplexity_change_pct: random
                .and_then(|r| change_pct(before.perplexity, r.perplexity)),
        }
    }
}

/// The summary of an erasure: the erased relation and the others.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// On the erased relation's prompts.
    pub erased_relation: QualityChange,
    /// On the other relations' prompts of the run.
    pub other_relations: Option<QualityChange>,
}

impl Summary {
    /// The changes of an erasure's evaluation.
    pub fn of(
        before: &ErasureMetrics,
        after: &ErasureMetrics,
        random: Option<&ErasureMetrics>,
    ) -> Self {
        Self {
            erased_relation: QualityChange::of(
                &before.erased_relation,
                &after.erased_relation,
                random.map(|r| &r.erased_relation),
            ),
            other_relations: match (&before.other_relations, &after.other_relations) {
                (Some(b), Some(a)) => Some(QualityChange::of(
                    b,
                    a,
                    random.and_then(|r| r.other_relations.as_ref()),
                )),
                _ => None,
            },
        }
    }
}

/// The JSON output of `kn erase`.
#[derive(Debug, Serialize)]
pub struct EraseOutput {
    /// The run.
    pub run: RunSummary,
    /// Facts of the erased relation in the run (the frequencies' denominator).
    pub relation_facts: usize,
    /// Distinct knowledge neurons counted over them.
    pub neurons_counted: usize,
    /// How many facts hold each erased neuron, in the order of `neurons`' ranking.
    pub erased_counts: Vec<((usize, usize), usize)>,
    /// The metrics before, after and under the random control.
    #[serde(flatten)]
    pub evaluation: ErasureEvaluation,
    /// Before/after changes of both groups.
    pub summary: Summary,
    /// The weights were restored bit for bit after measuring.
    pub weights_restored: bool,
    /// Wall-clock seconds.
    pub seconds: f64,
}

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
    let erased_counts: Vec<((usize, usize), usize)> =
        frequencies.ranked().into_iter().take(top).collect();
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
