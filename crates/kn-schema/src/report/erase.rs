//! `erase-<relation>.json`: what `kn erase --json` measured (kn-edit's relation erasure, the
//! paper's section 5.2). See kn-run's erasure docs for the neurons and the controls.

use crate::neuron::Neuron;
use crate::report::edit::{AnswerQuality, Locality};
use crate::report::{change_pct, RunSummary};
use serde::{Deserialize, Serialize};

/// What an erased value slot becomes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErasureValue {
    /// The output embedding of the model's unknown token (see kn-edit's erasure docs). Default.
    #[default]
    UnknownToken,
    /// Zeros.
    Zero,
    /// The output embedding of this token id.
    Token(i64),
    /// The output embedding of the token with this raw vocabulary string.
    TokenText(String),
}

/// Settings of kn-edit's `erase_relation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EraseConfig {
    /// How many of the most frequent neurons to erase. Default 20.
    pub top_n: usize,
    /// What their value slots become.
    pub value: ErasureValue,
}

impl Default for EraseConfig {
    fn default() -> Self {
        Self {
            top_n: 20,
            value: ErasureValue::UnknownToken,
        }
    }
}

/// Accuracy and perplexity on the erased relation and on the others, at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErasureMetrics {
    /// On the erased relation's prompts.
    pub erased_relation: AnswerQuality,
    /// On other relations' prompts (`None` when none were given).
    pub other_relations: Option<AnswerQuality>,
}

/// What kn-edit's `evaluate_erasure` measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErasureEvaluation {
    /// The relation erased.
    pub relation: String,
    /// The settings.
    pub config: EraseConfig,
    /// The neurons erased.
    pub neurons: Vec<Neuron>,
    /// The token whose embedding was written (`None` for zeros).
    pub token: Option<i64>,
    /// That token as text.
    pub token_text: Option<String>,
    /// Before the erasure.
    pub before: ErasureMetrics,
    /// After it.
    pub after: ErasureMetrics,
    /// The random control's neurons.
    pub random_neurons: Option<Vec<Neuron>>,
    /// After erasing the random neurons instead (undone since).
    pub random_control: Option<ErasureMetrics>,
    /// The editing papers' checks of the erasure (absent in files of earlier versions).
    #[serde(default)]
    pub checks: ErasureChecks,
    /// The same checks of the random control's erasure (absent in files of earlier versions
    /// and without the control).
    #[serde(default)]
    pub random_checks: Option<ErasureChecks>,
}

/// The editing papers' checks (see kn-edit's `EditChecks`) as they apply to erasing a
/// relation. The erasure's goal is that the relation's answers are no longer produced, so
/// reliability and generality are *forgetting* shares: among the prompts whose answer was the
/// top-1 token before the erasure, the share whose answer is no longer top-1 after it.
/// Symmetry does not apply (no fact is given a new answer), so it is not reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ErasureChecks {
    /// Forgetting on the erased relation's prompts that located its neurons (the run's
    /// prompts of its facts); `None` when none was answered before.
    pub reliability: Option<f64>,
    /// Those prompts answered (top-1) before the erasure: the share's denominator.
    pub reliability_prompts: usize,
    /// Forgetting on prompts of the relation held out from localization (its facts the run
    /// did not use, and the run facts' paraphrases it did not use); `None` without any
    /// answered before.
    pub generality: Option<f64>,
    /// Held-out prompts answered before the erasure: the share's denominator.
    pub generality_prompts: usize,
    /// Held-out prompts measured (answered before or not).
    pub held_out_prompts: usize,
    /// Share of other relations' prompts whose top-1 token the erasure leaves unchanged
    /// (`same_relation` is `None`: the relation is what is erased).
    pub locality: Locality,
}

/// Before/after of one group of prompts, with relative changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EraseOutput {
    /// The run.
    pub run: RunSummary,
    /// Facts of the erased relation in the run (the frequencies' denominator).
    pub relation_facts: usize,
    /// Distinct knowledge neurons counted over them.
    pub neurons_counted: usize,
    /// How many facts hold each erased neuron, in the order of `neurons`' ranking.
    pub erased_counts: Vec<(Neuron, usize)>,
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
