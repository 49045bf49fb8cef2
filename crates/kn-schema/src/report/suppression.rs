//! suppression.json: what `kn suppress` measured (kn-edit's `suppress_amplify_experiment`, the
//! paper's section 4.3) and the run it came from. See kn-edit's docs for the experiment and
//! the numbers.

use crate::neuron::Neuron;
use crate::report::RunSummary;
use crate::DEFAULT_BATCH_SIZE;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Settings of kn-edit's `suppress_amplify_experiment`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExperimentConfig {
    /// Prompts per forward pass. Default 16.
    pub batch_size: usize,
    /// Factor of suppression. Default 0.
    pub suppress_factor: f64,
    /// Factor of amplification. Default 2.
    pub amplify_factor: f64,
    /// How many facts of other relations each fact's neurons are tried on (up to). Default 1.
    pub other_relation_facts: usize,
    /// Whether to run the random-neuron control. Default true.
    pub random_control: bool,
    /// Seed of every random draw. Default 0.
    pub seed: u64,
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        Self {
            batch_size: DEFAULT_BATCH_SIZE,
            suppress_factor: 0.0,
            amplify_factor: 2.0,
            other_relation_facts: 1,
            random_control: true,
            seed: 0,
        }
    }
}

/// Change of the correct answer's probability in one group of prompts (see kn-edit's experiment docs).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChangeSummary {
    /// Facts that contributed prompts.
    pub facts: usize,
    /// Prompts pooled.
    pub prompts: usize,
    /// Mean probability before the intervention.
    pub mean_prob_before: Option<f64>,
    /// Mean probability after.
    pub mean_prob_after: Option<f64>,
    /// Mean of `after - before`.
    pub mean_change: Option<f64>,
    /// The paper's number: `100 * mean_change / mean_prob_before`.
    pub change_pct: Option<f64>,
    /// `100 * mean((after - before) / before)` over prompts with `before > 0`.
    pub mean_relative_change_pct: Option<f64>,
    /// Prompts in `mean_relative_change_pct`.
    pub relative_prompts: usize,
}

/// Suppression and amplification results of one condition.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OpEffects {
    /// Activations scaled by `suppress_factor`.
    pub suppress: ChangeSummary,
    /// Activations scaled by `amplify_factor`.
    pub amplify: ChangeSummary,
}

/// The four conditions of the experiment.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ConditionTable {
    /// Own knowledge neurons on the fact's prompts.
    pub own: OpEffects,
    /// Own knowledge neurons on facts of other relations.
    pub other_relations: OpEffects,
    /// Random neurons (same count, same layers) on the fact's prompts.
    pub random: OpEffects,
    /// The caller's activation-chosen neurons on the fact's prompts.
    pub activation_baseline: OpEffects,
}

/// Results of a relation, or of all facts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GroupReport {
    /// Facts given.
    pub facts: usize,
    /// Facts with knowledge neurons, evaluated.
    pub facts_evaluated: usize,
    /// Facts skipped for having no knowledge neurons.
    pub facts_without_neurons: usize,
    /// Prompts of the evaluated facts.
    pub prompts: usize,
    /// The results per condition.
    pub conditions: ConditionTable,
}

/// Results of one fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FactReport {
    /// The fact id.
    pub id: String,
    /// Its relation.
    pub relation: String,
    /// Its prompts.
    pub prompts: usize,
    /// Its knowledge neurons.
    pub neurons: usize,
    /// False when skipped (no knowledge neurons).
    pub evaluated: bool,
    /// Ids of the other-relation facts its neurons were tried on.
    pub other_relation_facts: Vec<String>,
    /// The random control neurons drawn for it.
    pub random_neurons: Option<Vec<Neuron>>,
    /// Its results (all zero counts when skipped).
    pub conditions: ConditionTable,
}

/// Everything kn-edit's `suppress_amplify_experiment` measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentReport {
    /// The model's architecture.
    pub architecture: String,
    /// The model's weights fingerprint.
    pub fingerprint: String,
    /// The settings used.
    pub config: ExperimentConfig,
    /// All facts together.
    pub overall: GroupReport,
    /// Per relation (of the fact whose neurons are edited).
    pub relations: BTreeMap<String, GroupReport>,
    /// Per fact, in input order.
    pub facts: Vec<FactReport>,
}

/// suppression.json: the experiment's report with the run it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuppressionFile {
    /// The run the facts come from.
    pub run: RunSummary,
    /// Whether the activation-baseline control ran, and over which layers.
    pub activation_baseline_layers: Option<Vec<usize>>,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// The experiment's report.
    #[serde(flatten)]
    pub report: ExperimentReport,
}
