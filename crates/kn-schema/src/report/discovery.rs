//! stats.json and relations.json: the statistics of a discovery run's knowledge neurons (paper
//! section 4.2) and each relation's refinement, as `kn discover` writes them (kn-select
//! computes them).

use crate::neuron::Neuron;
use crate::run::RunConfig;
use serde::{Deserialize, Serialize};

/// Neurons per fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CountStats {
    /// The number of facts.
    pub facts: usize,
    /// The number of (fact, neuron) memberships.
    pub total: usize,
    /// Mean neurons per fact (0 without facts).
    pub mean: f64,
    /// Population standard deviation (0 without facts).
    pub std: f64,
    /// The fewest neurons of a fact.
    pub min: usize,
    /// The most neurons of a fact.
    pub max: usize,
    /// `histogram[k]` = number of facts with exactly `k` neurons (length `max + 1`).
    pub histogram: Vec<usize>,
}

impl CountStats {
    /// The number of facts without any knowledge neuron (`histogram[0]`; 0 when the histogram
    /// is empty).
    pub fn facts_without_neurons(&self) -> usize {
        self.histogram.first().copied().unwrap_or(0)
    }
}

/// The number of knowledge neurons in one layer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LayerCount {
    /// The layer.
    pub layer: usize,
    /// Knowledge-neuron memberships in that layer (a neuron of 3 facts counts 3).
    pub count: usize,
    /// `count` / all memberships of the group.
    pub fraction: f64,
}

/// The layer distribution of one relation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationLayers {
    /// The relation id.
    pub relation: String,
    /// Counts per layer, ascending layers (only layers with neurons).
    pub layers: Vec<LayerCount>,
}

/// Knowledge neurons per layer, overall and per relation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerDistribution {
    /// All facts together, ascending layers.
    pub overall: Vec<LayerCount>,
    /// Per relation, in natural relation order.
    pub per_relation: Vec<RelationLayers>,
}

/// A mean over pairs of facts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairMean {
    /// The number of pairs (all of them, or the number drawn).
    pub pairs: u64,
    /// The sum of `|N(f) ∩ N(g)|` over those pairs.
    pub shared: u64,
    /// `shared / pairs`; `None` when there is no pair.
    pub mean: Option<f64>,
}

impl PairMean {
    /// The mean of `shared` over `pairs`.
    pub fn new(pairs: u64, shared: u64) -> Self {
        Self {
            pairs,
            shared,
            mean: (pairs > 0).then(|| shared as f64 / pairs as f64),
        }
    }
}

/// Neurons shared by pairs of facts of the same relation and of different relations.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SharingStats {
    /// Pairs of distinct facts of the same relation.
    pub intra: PairMean,
    /// Pairs of facts of different relations.
    pub inter: PairMean,
}

/// Every statistic at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The number of facts.
    pub facts: usize,
    /// The number of relations.
    pub relations: usize,
    /// Neurons per fact.
    pub neurons_per_fact: CountStats,
    /// Layer distribution.
    pub layers: LayerDistribution,
    /// Exact intra/inter sharing.
    pub sharing: SharingStats,
}

/// A fact left out of refinement, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedFact {
    /// The fact id.
    pub fact: String,
    /// The reason, in words.
    pub reason: String,
}

/// A relation-level neuron: shared by many facts of a relation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RelationNeuron {
    /// The neuron.
    pub neuron: Neuron,
    /// How many of the relation's facts have it.
    pub facts: usize,
    /// `facts` / number of facts.
    pub frequency: f64,
}

/// One relation of relations.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationSummary {
    /// Refined facts of the relation.
    pub facts: usize,
    /// Facts refused by the refinement (too few prompts).
    pub skipped: Vec<SkippedFact>,
    /// The sharing fraction `p` used.
    pub share: f64,
    /// Mean knowledge neurons per refined fact.
    pub mean_neurons_per_fact: f64,
    /// Neurons of at least a tenth of the relation's facts, most frequent first.
    pub neurons: Vec<RelationNeuron>,
}

/// stats.json: the statistics of every finished fact of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsFile {
    /// Neurons per fact, layers and sharing.
    pub summary: Summary,
    /// Mean attribution seconds per fact.
    pub seconds_per_fact: f64,
    /// Mean prompts per fact.
    pub prompts_per_fact: f64,
    /// The run's configuration.
    pub config: RunConfig,
}
