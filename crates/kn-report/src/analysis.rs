//! Statistics computed from neurons.jsonl itself: neurons per fact, intra/inter-relation
//! sharing (exact, as kn-select's `sharing`), and the layer distribution of knowledge neurons
//! (overall and per relation, the paper's Figure 3). A fact's neurons count as a set.

use crate::input::{compare_relations, FactRecord};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A `(layer, neuron)` pair.
type Neuron = (usize, usize);

/// Neurons per fact: mean and total memberships.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct NeuronCounts {
    pub facts: usize,
    pub total: usize,
    pub mean: f64,
    pub without_neurons: usize,
}

/// Counts of knowledge neurons per fact.
pub(crate) fn neuron_counts(facts: &[FactRecord]) -> NeuronCounts {
    let sizes: Vec<usize> = facts.iter().map(|f| f.neuron_set().len()).collect();
    let total: usize = sizes.iter().sum();
    NeuronCounts {
        facts: facts.len(),
        total,
        mean: if facts.is_empty() {
            0.0
        } else {
            total as f64 / facts.len() as f64
        },
        without_neurons: sizes.iter().filter(|&&s| s == 0).count(),
    }
}

/// Mean number of neurons shared by two facts of the same relation (`intra`) and of different
/// relations (`inter`), over all unordered pairs; `None` without such pairs.
pub(crate) fn sharing(facts: &[FactRecord]) -> (Option<f64>, Option<f64>) {
    fn pairs(n: u64) -> u64 {
        n * n.saturating_sub(1) / 2
    }
    // Per relation: its number of facts and how many of them hold each neuron.
    let mut per_relation: HashMap<&str, (u64, HashMap<Neuron, u64>)> = HashMap::new();
    let mut global: HashMap<Neuron, u64> = HashMap::new();
    for fact in facts {
        let entry = per_relation.entry(fact.relation.as_str()).or_default();
        entry.0 += 1;
        for neuron in fact.neuron_set() {
            *entry.1.entry(neuron).or_default() += 1;
            *global.entry(neuron).or_default() += 1;
        }
    }
    let mut intra_pairs = 0;
    let mut intra_shared = 0;
    for (count, neurons) in per_relation.values() {
        intra_pairs += pairs(*count);
        intra_shared += neurons.values().map(|&c| pairs(c)).sum::<u64>();
    }
    let all_shared: u64 = global.values().map(|&c| pairs(c)).sum();
    let inter_pairs = pairs(facts.len() as u64) - intra_pairs;
    let inter_shared = all_shared - intra_shared;
    let mean = |shared: u64, pairs: u64| (pairs > 0).then(|| shared as f64 / pairs as f64);
    (
        mean(intra_shared, intra_pairs),
        mean(inter_shared, inter_pairs),
    )
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
    /// Counts the neurons of `facts` per layer. `layers` gives the x axis; layers holding
    /// neurons but missing from it are added.
    pub fn of(facts: &[FactRecord], layers: &[usize]) -> Self {
        let mut all_layers: BTreeSet<usize> = layers.iter().copied().collect();
        let mut counts: BTreeMap<&str, BTreeMap<usize, usize>> = BTreeMap::new();
        for fact in facts {
            let entry = counts.entry(fact.relation.as_str()).or_default();
            for (layer, _) in fact.neuron_set() {
                all_layers.insert(layer);
                *entry.entry(layer).or_default() += 1;
            }
        }
        let layers: Vec<usize> = all_layers.into_iter().collect();
        let row = |map: &BTreeMap<usize, usize>| -> Vec<usize> {
            layers
                .iter()
                .map(|l| map.get(l).copied().unwrap_or(0))
                .collect()
        };
        let mut per_relation: Vec<(String, Vec<usize>)> = counts
            .iter()
            .map(|(r, m)| (r.to_string(), row(m)))
            .collect();
        per_relation.sort_by(|a, b| compare_relations(&a.0, &b.0));
        let overall = (0..layers.len())
            .map(|i| per_relation.iter().map(|(_, c)| c[i]).sum())
            .collect();
        Self {
            layers,
            overall,
            per_relation,
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
    use crate::input::ScoredNeuron;

    fn fact(id: &str, relation: &str, neurons: &[(usize, usize)]) -> FactRecord {
        FactRecord {
            fact: id.into(),
            relation: relation.into(),
            subject: String::new(),
            object: String::new(),
            prompts: Vec::new(),
            neurons: neurons
                .iter()
                .map(|&(layer, neuron)| ScoredNeuron { layer, neuron })
                .collect(),
            seconds: None,
        }
    }

    fn facts() -> Vec<FactRecord> {
        vec![
            fact("P1:1", "P1", &[(2, 5), (2, 6), (0, 1)]),
            fact("P1:2", "P1", &[(2, 5), (1, 9), (2, 5)]), // duplicate counts once
            fact("P2:1", "P2", &[(2, 5)]),
            fact("P2:2", "P2", &[]),
        ]
    }

    #[test]
    fn histograms_count_each_fact_neuron_once_per_layer() {
        let h = LayerHistogram::of(&facts(), &[0, 1, 2, 3]);
        assert_eq!(h.layers, vec![0, 1, 2, 3]);
        assert_eq!(h.overall, vec![1, 1, 4, 0]);
        assert_eq!(h.per_relation[0], ("P1".to_string(), vec![1, 1, 3, 0]));
        assert_eq!(h.per_relation[1], ("P2".to_string(), vec![0, 0, 1, 0]));
        assert_eq!(h.peak_layer(), Some(2));
        // 4 layers: the top 10% is the last layer, which holds nothing here.
        assert_eq!(h.top_layers_share(), (vec![3], Some(0.0)));
        // Layers with neurons but missing from the axis are added.
        let h = LayerHistogram::of(&facts(), &[2]);
        assert_eq!(h.layers, vec![0, 1, 2]);
        assert_eq!(h.overall, vec![1, 1, 4]);
        assert_eq!(h.top_layers_share(), (vec![2], Some(4.0 / 6.0)));
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
        let counts = neuron_counts(&facts());
        assert_eq!((counts.total, counts.without_neurons), (6, 1));
        assert!((counts.mean - 1.5).abs() < 1e-12);
        let (intra, inter) = sharing(&facts());
        // Intra pairs: (P1:1, P1:2) share (2,5); (P2:1, P2:2) share nothing -> 1/2.
        assert_eq!(intra, Some(0.5));
        // Inter pairs (4): P1:1-P2:1 and P1:2-P2:1 share (2,5) -> 2/4.
        assert_eq!(inter, Some(0.5));
        assert_eq!(sharing(&facts()[..1]), (None, None));
    }
}
