//! `edit-sweep.json`: what `kn edit --facts N --sweep L1,L2,...` measured: the update rule's
//! settings against the success of the updates and the damage they do, and where the damage
//! comes from (the update split by layer).
//!
//! Every point updates the same seeded sample of facts to the same new answers, one fact at a
//! time, restoring the weights after each. The settings are the λ2 values given, each without
//! and with norm scaling (the paper's released code), and each with the shared-neuron
//! exclusion of `--shared-threshold` and without any exclusion (threshold 1).

use crate::report::edit::{Aggregate, Locality, PerplexityChange, UpdateConfig};
use crate::report::RunSummary;
use serde::{Deserialize, Serialize};

/// One setting of the update rule and what the sample measured under it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    /// The setting (`shared_threshold` as asked; each fact's own floor of 1/facts applies).
    pub config: UpdateConfig,
    /// Facts of the sample this setting could not update (e.g. every neuron shared).
    pub skipped: usize,
    /// Means over the updated facts, as in `kn edit --facts N`'s aggregate.
    pub aggregate: Aggregate,
    /// Medians over the updated facts of their perplexity changes (%): a few exploding facts
    /// dominate the means.
    pub median_perplexity_change_pct: PerplexityChange,
}

impl SweepPoint {
    /// Success: the mean share of the located prompts whose top-1 is the new answer.
    pub fn success(&self) -> Option<f64> {
        self.aggregate.after.success_rate
    }

    /// Damage: the mean share of other relations' prompts whose top-1 token the update
    /// changed (1 - locality).
    pub fn damage(&self) -> Option<f64> {
        self.aggregate
            .checks
            .locality
            .other_relations
            .map(|kept| 1.0 - kept)
    }
}

/// The update as given, restricted to the edited neurons of one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerDamage {
    /// The layer.
    pub layer: usize,
    /// Facts whose update edits neurons of this layer.
    pub facts: usize,
    /// Their neurons in this layer, summed over those facts.
    pub neurons: usize,
    /// Of those, the ones that are also knowledge neurons of a fact of another relation in the
    /// run (shared across relations).
    pub cross_relation_neurons: usize,
    /// Mean success of the restricted updates.
    pub success: Option<f64>,
    /// Mean locality of the restricted updates (1 - damage).
    pub locality: Locality,
    /// Medians of their perplexity changes (%; the random-control fields are `None`).
    pub median_perplexity_change_pct: PerplexityChange,
}

/// The JSON output of `kn edit --facts N --sweep ...`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepOutput {
    /// The run the facts come from.
    pub run: RunSummary,
    /// Facts asked for.
    pub requested: usize,
    /// Seed of the sample, the new answers and the controls.
    pub seed: u64,
    /// The λ2 values swept.
    pub lambdas: Vec<f64>,
    /// The update as given by the other options (`--lambda-add`, `--scale-by-norm`,
    /// `--shared-threshold`): the setting split by layer in `damage_by_layer`.
    pub given: UpdateConfig,
    /// Every setting, λ2 fastest, then norm scaling, then the exclusion.
    pub points: Vec<SweepPoint>,
    /// The given update of each sampled fact restricted to its edited neurons of one layer
    /// (no further exclusion), by layer.
    pub damage_by_layer: Vec<LayerDamage>,
    /// Wall-clock seconds.
    pub seconds: f64,
}
