//! edit.json: what `kn edit --json` measured (kn-edit's update rule, the paper's section 5.1)
//! on one fact (`--fact`: [`SingleOutput`]) or a seeded sample (`--facts N`: [`SampleOutput`]).
//! See kn-run's editing docs for how facts, new answers and controls are chosen.

use crate::neuron::Neuron;
use crate::report::{change_pct, mean, RunSummary};
use serde::{Deserialize, Serialize};

/// Settings of a fact update.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpdateConfig {
    /// λ1, weight of the old answer's embedding removed. Default 1.
    pub lambda_remove: f64,
    /// λ2, weight of the new answer's embedding added. Default 8.
    pub lambda_add: f64,
    /// Scale both embeddings to the slot's norm (the paper's code); off by default.
    pub scale_by_norm: bool,
    /// Neurons held by more than this fraction of the relation's facts are left out. Default 0.1.
    pub shared_threshold: f64,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        Self {
            lambda_remove: 1.0,
            lambda_add: 8.0,
            scale_by_norm: false,
            shared_threshold: 0.1,
        }
    }
}

/// Accuracy and perplexity of the answers of a set of prompts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AnswerQuality {
    /// Number of prompts scored.
    pub prompts: usize,
    /// Fraction of prompts whose answer token is top-1.
    pub accuracy: f64,
    /// `exp(mean negative log-probability of the answer token)` over the prompts.
    pub perplexity: f64,
    /// Mean probability of the answer token.
    pub mean_prob: f64,
}

/// Metrics of a fact update at one moment (before, after, or under the random control).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateMetrics {
    /// Prompts of the fact scored.
    pub prompts: usize,
    /// Fraction of prompts where t′ is top-1.
    pub success_rate: f64,
    /// Fraction of prompts where t is not top-1.
    pub change_rate: f64,
    /// Fraction of prompts where t′ is in the top 5.
    pub top5_rate: f64,
    /// Mean reciprocal rank of t′.
    pub mrr: f64,
    /// Mean probability of t.
    pub mean_old_prob: f64,
    /// Mean probability of t′.
    pub mean_new_prob: f64,
    /// Accuracy and perplexity of the correct answers of other facts of the same relation
    /// (`None` when none were given).
    pub same_relation: Option<AnswerQuality>,
    /// The same on facts of other relations.
    pub other_relations: Option<AnswerQuality>,
}

/// What kn-edit's `evaluate_update` measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateEvaluation {
    /// The fact id.
    pub fact: String,
    /// Its relation.
    pub relation: String,
    /// t.
    pub old_token: i64,
    /// t as text.
    pub old_text: String,
    /// t′.
    pub new_token: i64,
    /// t′ as text.
    pub new_text: String,
    /// The settings of the edit.
    pub config: UpdateConfig,
    /// Neurons edited.
    pub neurons: Vec<Neuron>,
    /// Neurons left out as shared.
    pub excluded: Vec<Neuron>,
    /// Before the edit.
    pub before: UpdateMetrics,
    /// After the edit.
    pub after: UpdateMetrics,
    /// The random control's neurons.
    pub random_neurons: Option<Vec<Neuron>>,
    /// After the same edit on the random neurons instead (undone since).
    pub random_control: Option<UpdateMetrics>,
    /// The editing papers' checks of the update (absent in files of earlier versions).
    #[serde(default)]
    pub checks: EditChecks,
}

/// How an update carries over and what it leaves alone: the metrics editing papers report
/// (reliability, generality, locality) and Niu et al.'s (ICLR 2024) symmetry test.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EditChecks {
    /// Share of the localization prompts (those the edited neurons were found with) whose
    /// top-1 token is the new answer after the edit (`after.success_rate`).
    pub reliability: Option<f64>,
    /// The same on paraphrases held out from localization; `None` without any.
    pub generality: Option<f64>,
    /// Held-out paraphrases measured.
    pub generality_prompts: usize,
    /// Share of other facts' prompts whose top-1 token the edit leaves unchanged.
    pub locality: Locality,
    /// Symmetric relations only (P47 "shares border with", P530 "diplomatic relation"): share
    /// of the reversed fact's prompts (the new answer as subject) whose top-1 token is the
    /// fact's subject after the edit; `None` for other relations.
    pub symmetry: Option<f64>,
    /// The same before the edit.
    pub symmetry_before: Option<f64>,
    /// Reversed prompts measured.
    pub symmetry_prompts: usize,
}

/// Share of control prompts whose top-1 token is the same after an edit as before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Locality {
    /// Other facts of the edited fact's relation (`None` without such prompts).
    pub same_relation: Option<f64>,
    /// Facts of other relations.
    pub other_relations: Option<f64>,
}

impl EditChecks {
    /// The means over `checks` (each over the facts that have it), with summed counts.
    pub fn mean<'a>(checks: impl Iterator<Item = &'a EditChecks> + Clone) -> Self {
        let m = |f: fn(&EditChecks) -> Option<f64>| mean(checks.clone().map(f));
        Self {
            reliability: m(|c| c.reliability),
            generality: m(|c| c.generality),
            generality_prompts: checks.clone().map(|c| c.generality_prompts).sum(),
            locality: Locality {
                same_relation: m(|c| c.locality.same_relation),
                other_relations: m(|c| c.locality.other_relations),
            },
            symmetry: m(|c| c.symmetry),
            symmetry_before: m(|c| c.symmetry_before),
            symmetry_prompts: checks.map(|c| c.symmetry_prompts).sum(),
        }
    }
}

/// Relative perplexity changes (%) of one update.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// Each change summarized over `changes` by `summary` (e.g. `mean` or `median`).
    pub fn over<'a>(
        changes: impl Iterator<Item = &'a PerplexityChange> + Clone,
        summary: fn(Vec<Option<f64>>) -> Option<f64>,
    ) -> Self {
        let of =
            |f: fn(&PerplexityChange) -> Option<f64>| summary(changes.clone().map(f).collect());
        Self {
            same_relation: of(|c| c.same_relation),
            other_relations: of(|c| c.other_relations),
            random_same_relation: of(|c| c.random_same_relation),
            random_other_relations: of(|c| c.random_other_relations),
        }
    }

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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ControlPrompts {
    /// Of other facts of the same relation.
    pub same_relation: usize,
    /// Of facts of other relations.
    pub other_relations: usize,
}

/// Means of [`UpdateMetrics`] over facts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Means over facts of their edit checks (absent in files of earlier versions).
    #[serde(default)]
    pub checks: EditChecks,
}

impl Aggregate {
    /// The means over `edits`.
    pub fn of(edits: &[FactEdit]) -> Self {
        let evaluations = || edits.iter().map(|e| &e.evaluation);
        let randoms: Vec<&UpdateMetrics> = evaluations()
            .filter_map(|e| e.random_control.as_ref())
            .collect();
        Self {
            facts: edits.len(),
            prompts: evaluations().map(|e| e.after.prompts).sum(),
            before: MeanMetrics::of(evaluations().map(|e| &e.before)),
            after: MeanMetrics::of(evaluations().map(|e| &e.after)),
            random_control: (!randoms.is_empty()).then(|| MeanMetrics::of(randoms.iter().copied())),
            perplexity_change_pct: PerplexityChange::over(
                edits.iter().map(|e| &e.perplexity_change_pct),
                mean,
            ),
            checks: EditChecks::mean(evaluations().map(|e| &e.checks)),
        }
    }
}

/// A fact of the sample that could not be updated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    /// The fact id.
    pub fact: String,
    /// Why it was skipped.
    pub reason: String,
}

/// The JSON output of `kn edit --facts N`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SingleOutput {
    /// The run the facts come from.
    pub run: RunSummary,
    /// The update.
    #[serde(flatten)]
    pub edit: FactEdit,
    /// Wall-clock seconds.
    pub seconds: f64,
}
