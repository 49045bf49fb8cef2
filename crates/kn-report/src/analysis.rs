//! Statistics computed from neurons.jsonl itself, by kn-select (the functions `kn discover`
//! uses for stats.json): the run's facts become [`kn_select::FactNeurons`] ([`fact_neurons`])
//! and [`kn_select::summarize`] gives neurons per fact, exact intra/inter-relation sharing and
//! the layer distribution (overall and per relation, the paper's Figure 3). A fact's neurons
//! count as a set. [`LayerHistogram`] lays that distribution out on the run's layer axis for
//! the layer table and figure.

use crate::input::{neuron_set, FactRecord};
use kn_select::{FactNeurons, LayerCount, LayerDistribution, Summary};
use std::collections::BTreeSet;

/// The facts of neurons.jsonl as kn-select's [`FactNeurons`] (neurons sorted, without
/// duplicates). neurons.jsonl does not record the share `p` of each fact; kn-select's
/// statistics do not read it, and it is left NaN.
pub(crate) fn fact_neurons(facts: &[FactRecord]) -> Vec<FactNeurons> {
    facts
        .iter()
        .map(|f| FactNeurons {
            fact: f.fact.clone(),
            relation: f.relation.clone(),
            prompts: f.prompts.len(),
            share: f64::NAN,
            neurons: neuron_set(f).into_iter().collect(),
        })
        .collect()
}

/// The statistics of a run's facts.
#[derive(Debug, Clone)]
pub(crate) struct Analysis {
    /// kn-select's statistics of neurons.jsonl.
    pub summary: Summary,
    /// The layer distribution of `summary` on the run's layer axis.
    pub histogram: LayerHistogram,
}

impl Analysis {
    /// The statistics of `facts`; `layers` gives the layer axis (see [`LayerHistogram::new`]).
    pub fn of(facts: &[FactRecord], layers: &[usize]) -> Self {
        let summary = kn_select::summarize(&fact_neurons(facts));
        let histogram = LayerHistogram::new(&summary.layers, layers);
        Self { summary, histogram }
    }
}

/// Knowledge-neuron memberships per layer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LayerHistogram {
    /// The layers, ascending (the x axis).
    pub layers: Vec<usize>,
    /// All facts: count per layer of `layers`.
    pub overall: Vec<usize>,
    /// Per relation (natural order): count per layer of `layers`.
    pub per_relation: Vec<(String, Vec<usize>)>,
}

impl LayerHistogram {
    /// kn-select's layer distribution with a count for every layer of the axis: `layers`,
    /// plus any layer holding neurons but missing from it.
    pub fn new(distribution: &LayerDistribution, layers: &[usize]) -> Self {
        let mut axis: BTreeSet<usize> = layers.iter().copied().collect();
        axis.extend(distribution.overall.iter().map(|c| c.layer));
        let layers: Vec<usize> = axis.into_iter().collect();
        let row = |counts: &[LayerCount]| -> Vec<usize> {
            layers
                .iter()
                .map(|&l| counts.iter().find(|c| c.layer == l).map_or(0, |c| c.count))
                .collect()
        };
        Self {
            overall: row(&distribution.overall),
            per_relation: distribution
                .per_relation
                .iter()
                .map(|r| (r.relation.clone(), row(&r.layers)))
                .collect(),
            layers,
        }
    }

    /// How many of the highest layers make up the top 10% of the layers (at least 1).
    pub fn top_layer_count(&self) -> usize {
        self.layers.len().div_ceil(10).max(1).min(self.layers.len())
    }

    /// The top 10% of layers (see [`LayerHistogram::top_layer_count`]) and the share of all
    /// memberships in them (`None` without neurons).
    pub fn top_layers_share(&self) -> (Vec<usize>, Option<f64>) {
        let k = self.top_layer_count();
        let start = self.layers.len() - k;
        let total: usize = self.overall.iter().sum();
        let top: usize = self.overall[start..].iter().sum();
        (
            self.layers[start..].to_vec(),
            (total > 0).then(|| top as f64 / total as f64),
        )
    }

    /// The layer with the most memberships (the lowest such layer on ties).
    pub fn peak_layer(&self) -> Option<usize> {
        let max = self.overall.iter().copied().max().filter(|&m| m > 0)?;
        let index = self.overall.iter().position(|&c| c == max)?;
        self.layers.get(index).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{Neuron, PromptRecord, ScoredNeuron};

    fn fact(id: &str, relation: &str, neurons: &[(usize, usize)]) -> FactRecord {
        FactRecord {
            fact: id.into(),
            relation: relation.into(),
            subject: String::new(),
            object: String::new(),
            prompts: vec![
                PromptRecord {
                    text: String::new(),
                    prob: 0.5,
                    rank: 1,
                    coarse: Vec::new(),
                    counterfactual: None,
                };
                2
            ],
            neurons: neurons
                .iter()
                .map(|&(layer, neuron)| ScoredNeuron {
                    layer,
                    neuron,
                    score: 1.0,
                })
                .collect(),
            seconds: 1.0,
        }
    }

    fn facts() -> Vec<FactRecord> {
        vec![
            fact("P10:1", "P10", &[(2, 5), (2, 6), (0, 1)]),
            fact("P10:2", "P10", &[(2, 5), (1, 9), (2, 5)]), // duplicate counts once
            fact("P2:1", "P2", &[(2, 5)]),
            fact("P2:2", "P2", &[]),
        ]
    }

    #[test]
    fn facts_convert_to_sorted_neuron_sets() {
        let converted = fact_neurons(&facts());
        assert_eq!(converted.len(), 4);
        assert_eq!(
            (converted[1].fact.as_str(), converted[1].relation.as_str()),
            ("P10:2", "P10")
        );
        assert_eq!(converted[1].prompts, 2);
        assert_eq!(converted[1].neurons, [Neuron::new(1, 9), Neuron::new(2, 5)]);
        assert!(converted[3].neurons.is_empty());
    }

    #[test]
    fn histograms_count_each_fact_neuron_once_per_layer() {
        let h = Analysis::of(&facts(), &[0, 1, 2, 3]).histogram;
        assert_eq!(h.layers, vec![0, 1, 2, 3]);
        assert_eq!(h.overall, vec![1, 1, 4, 0]);
        // Relations in natural order (P2 before P10).
        assert_eq!(h.per_relation[0], ("P2".to_string(), vec![0, 0, 1, 0]));
        assert_eq!(h.per_relation[1], ("P10".to_string(), vec![1, 1, 3, 0]));
        assert_eq!(h.peak_layer(), Some(2));
        // 4 layers: the top 10% is the last layer, which holds nothing here.
        assert_eq!(h.top_layers_share(), (vec![3], Some(0.0)));
        // Layers with neurons but missing from the axis are added.
        let h = Analysis::of(&facts(), &[2]).histogram;
        assert_eq!(h.layers, vec![0, 1, 2]);
        assert_eq!(h.overall, vec![1, 1, 4]);
        assert_eq!(h.top_layers_share(), (vec![2], Some(4.0 / 6.0)));
        // A relation without neurons keeps a row of zeros.
        let h = Analysis::of(&facts()[3..], &[0, 1]).histogram;
        assert_eq!(h.overall, vec![0, 0]);
        assert_eq!(h.per_relation, vec![("P2".to_string(), vec![0, 0])]);
    }

    #[test]
    fn top_layers_are_a_tenth_rounded_up() {
        let with = |n: usize| LayerHistogram {
            layers: (0..n).collect(),
            overall: vec![0; n],
            per_relation: Vec::new(),
        };
        assert_eq!(with(30).top_layer_count(), 3);
        assert_eq!(with(12).top_layer_count(), 2);
        assert_eq!(with(3).top_layer_count(), 1);
        assert_eq!(with(30).top_layers_share().1, None);
        assert_eq!(with(30).peak_layer(), None);
    }

    #[test]
    fn counts_and_sharing_are_exact() {
        let summary = Analysis::of(&facts(), &[]).summary;
        let counts = &summary.neurons_per_fact;
        assert_eq!((summary.facts, summary.relations), (4, 2));
        assert_eq!((counts.total, counts.facts_without_neurons()), (6, 1));
        assert!((counts.mean - 1.5).abs() < 1e-12);
        // Intra pairs: (P10:1, P10:2) share (2,5); (P2:1, P2:2) share nothing -> 1/2.
        assert_eq!(summary.sharing.intra.mean, Some(0.5));
        // Inter pairs (4): P10:1-P2:1 and P10:2-P2:1 share (2,5) -> 2/4.
        assert_eq!(summary.sharing.inter.mean, Some(0.5));
        let one = Analysis::of(&facts()[..1], &[]).summary.sharing;
        assert_eq!((one.intra.mean, one.inter.mean), (None, None));
    }
}
