//! Sets of FFN neurons, `(layer, neuron)` pairs, and how often a relation's facts share them.
//!
//! A [`NeuronSet`] is sorted by `(layer, neuron)` and holds each pair once; it is checked
//! against a model with [`NeuronSet::validate`] (every operation of this crate does so before
//! touching anything). [`NeuronFrequencies`] counts, for one relation, how many facts list each
//! neuron among their knowledge neurons: fact updates leave out neurons shared by too many
//! facts, and relation erasure takes the most frequent ones.

use crate::error::{EditError, Result};
use crate::seed::{rng_for, sample};
use kn_model::{ActivationEdit, ActivationOp, ModelInfo};
use kn_schema::Neuron;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A set of FFN neurons ([`Neuron`]: layer, index), sorted and without duplicates.
///
/// Serialized as a JSON array of `[layer, neuron]` pairs; deserializing sorts and deduplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "Vec<Neuron>", into = "Vec<Neuron>")]
pub struct NeuronSet {
    neurons: Vec<Neuron>,
}

impl From<NeuronSet> for Vec<Neuron> {
    fn from(set: NeuronSet) -> Self {
        set.neurons
    }
}

impl From<Vec<Neuron>> for NeuronSet {
    fn from(neurons: Vec<Neuron>) -> Self {
        Self::new(neurons)
    }
}

impl<N: Into<Neuron>> FromIterator<N> for NeuronSet {
    fn from_iter<I: IntoIterator<Item = N>>(iter: I) -> Self {
        Self::new(iter)
    }
}

impl NeuronSet {
    /// The set of the given neurons (or `(layer, neuron)` pairs), sorted, duplicates dropped.
    /// Not checked against any model: see [`NeuronSet::validate`] and [`NeuronSet::for_model`].
    pub fn new(neurons: impl IntoIterator<Item = impl Into<Neuron>>) -> Self {
        let set: BTreeSet<Neuron> = neurons.into_iter().map(Into::into).collect();
        Self {
            neurons: set.into_iter().collect(),
        }
    }

    /// [`NeuronSet::new`] followed by [`NeuronSet::validate`] against `info`.
    pub fn for_model(
        neurons: impl IntoIterator<Item = impl Into<Neuron>>,
        info: &ModelInfo,
    ) -> Result<Self> {
        let set = Self::new(neurons);
        set.validate(info)?;
        Ok(set)
    }

    /// Checks every neuron against the model: layer below `num_layers`, index below
    /// `ffn_width`.
    pub fn validate(&self, info: &ModelInfo) -> Result<()> {
        self.neurons
            .iter()
            .try_for_each(|neuron| check_in_model(neuron, info))
    }

    /// [`EditError::EmptyNeuronSet`] naming `context` when the set is empty.
    pub fn require_non_empty(&self, context: &str) -> Result<()> {
        if self.neurons.is_empty() {
            return Err(EditError::EmptyNeuronSet {
                context: context.to_string(),
            });
        }
        Ok(())
    }

    /// The neurons, sorted by layer, then index.
    pub fn as_slice(&self) -> &[Neuron] {
        &self.neurons
    }

    /// Iterates over the neurons in order.
    pub fn iter(&self) -> impl Iterator<Item = Neuron> + '_ {
        self.neurons.iter().copied()
    }

    /// Number of neurons.
    pub fn len(&self) -> usize {
        self.neurons.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.neurons.is_empty()
    }

    /// Whether the set holds `(layer, neuron)`.
    pub fn contains(&self, layer: usize, neuron: usize) -> bool {
        self.neurons
            .binary_search(&Neuron::new(layer, neuron))
            .is_ok()
    }

    /// The neurons grouped by layer, layers ascending, neurons ascending within a layer.
    pub fn by_layer(&self) -> BTreeMap<usize, Vec<usize>> {
        let mut map: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for neuron in &self.neurons {
            map.entry(neuron.layer).or_default().push(neuron.index);
        }
        map
    }

    /// The layers that hold at least one neuron, ascending.
    pub fn layers(&self) -> Vec<usize> {
        self.by_layer().into_keys().collect()
    }

    /// The activation edits applying `op` to every neuron of the set.
    pub fn edits(&self, op: ActivationOp) -> Vec<ActivationEdit> {
        self.neurons
            .iter()
            .map(|n| ActivationEdit {
                layer: n.layer,
                neuron: n.index,
                op,
            })
            .collect()
    }

    /// The set without the neurons of `other`.
    pub fn difference(&self, other: &NeuronSet) -> NeuronSet {
        NeuronSet {
            neurons: self
                .iter()
                .filter(|n| !other.contains(n.layer, n.index))
                .collect(),
        }
    }

    /// A random set with as many neurons as this one in each of its layers (seeded by `seed`
    /// and `key`, see [`crate::derive_seed`]).
    ///
    /// Neurons of this set are avoided when the layer has enough other neurons; otherwise the
    /// draw is from the whole layer. Checks this set against `info` first.
    pub fn random_like(&self, info: &ModelInfo, seed: u64, key: &str) -> Result<NeuronSet> {
        self.validate(info)?;
        let mut rng = rng_for(seed, key);
        let mut out = Vec::with_capacity(self.len());
        for (layer, own) in self.by_layer() {
            let others: Vec<usize> = (0..info.ffn_width)
                .filter(|n| own.binary_search(n).is_err())
                .collect();
            let pool = if others.len() >= own.len() {
                others
            } else {
                (0..info.ffn_width).collect()
            };
            out.extend(
                sample(&mut rng, pool, own.len())
                    .into_iter()
                    .map(|n| (layer, n)),
            );
        }
        Ok(NeuronSet::new(out))
    }
}

/// Refuses a neuron outside the model: [`EditError::LayerOutOfRange`] or
/// [`EditError::NeuronOutOfRange`].
pub(crate) fn check_in_model(neuron: &Neuron, info: &ModelInfo) -> Result<()> {
    if neuron.layer >= info.num_layers {
        return Err(EditError::LayerOutOfRange {
            layer: neuron.layer,
            layers: info.num_layers,
        });
    }
    if neuron.index >= info.ffn_width {
        return Err(EditError::NeuronOutOfRange {
            layer: neuron.layer,
            neuron: neuron.index,
            width: info.ffn_width,
        });
    }
    Ok(())
}

/// How many facts of one relation list each neuron among their knowledge neurons.
///
/// Serialized as `{"facts": n, "counts": [[layer, neuron, count], ...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "FrequencyRepr", into = "FrequencyRepr")]
pub struct NeuronFrequencies {
    facts: usize,
    counts: BTreeMap<Neuron, usize>,
}

#[derive(Serialize, Deserialize)]
struct FrequencyRepr {
    facts: usize,
    counts: Vec<(usize, usize, usize)>,
}

impl From<NeuronFrequencies> for FrequencyRepr {
    fn from(f: NeuronFrequencies) -> Self {
        FrequencyRepr {
            facts: f.facts,
            counts: f
                .counts
                .into_iter()
                .map(|(n, c)| (n.layer, n.index, c))
                .collect(),
        }
    }
}

impl TryFrom<FrequencyRepr> for NeuronFrequencies {
    type Error = EditError;
    fn try_from(repr: FrequencyRepr) -> Result<Self> {
        NeuronFrequencies::from_counts(
            repr.facts,
            repr.counts
                .into_iter()
                .map(|(l, n, c)| (Neuron::new(l, n), c)),
        )
    }
}

impl NeuronFrequencies {
    /// Counts over the knowledge-neuron sets of a relation's facts (one set per fact).
    pub fn from_sets<'a>(sets: impl IntoIterator<Item = &'a NeuronSet>) -> Self {
        let mut facts = 0;
        let mut counts: BTreeMap<Neuron, usize> = BTreeMap::new();
        for set in sets {
            facts += 1;
            for neuron in set.iter() {
                *counts.entry(neuron).or_default() += 1;
            }
        }
        Self { facts, counts }
    }

    /// From ready counts: `facts` facts, and how many of them hold each neuron. A neuron listed
    /// twice has its counts added; a count above `facts` is an error.
    pub fn from_counts(
        facts: usize,
        counts: impl IntoIterator<Item = (Neuron, usize)>,
    ) -> Result<Self> {
        let mut map: BTreeMap<Neuron, usize> = BTreeMap::new();
        for (neuron, count) in counts {
            let entry = map.entry(neuron).or_default();
            *entry = entry.saturating_add(count);
            if *entry > facts {
                return Err(EditError::InvalidParameter {
                    name: "counts",
                    reason: format!(
                        "neuron {neuron} is counted {} times but there are only {facts} facts",
                        *entry
                    ),
                });
            }
        }
        map.retain(|_, c| *c > 0);
        Ok(Self { facts, counts: map })
    }

    /// Number of facts counted.
    pub fn facts(&self) -> usize {
        self.facts
    }

    /// How many facts hold `(layer, neuron)`.
    pub fn count(&self, layer: usize, neuron: usize) -> usize {
        self.counts
            .get(&Neuron::new(layer, neuron))
            .copied()
            .unwrap_or(0)
    }

    /// The fraction of facts that hold `(layer, neuron)` (0 when no facts were counted).
    pub fn frequency(&self, layer: usize, neuron: usize) -> f64 {
        if self.facts == 0 {
            return 0.0;
        }
        self.count(layer, neuron) as f64 / self.facts as f64
    }

    /// Every counted neuron with its count, most frequent first (ties by `(layer, neuron)`).
    pub fn ranked(&self) -> Vec<(Neuron, usize)> {
        let mut ranked: Vec<(Neuron, usize)> = self.counts.iter().map(|(&p, &c)| (p, c)).collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked
    }

    /// The `n` most frequent neurons (fewer if fewer were counted), ties by `(layer, neuron)`.
    pub fn top(&self, n: usize) -> NeuronSet {
        NeuronSet::new(self.ranked().into_iter().take(n).map(|(p, _)| p))
    }

    /// Splits `set` into the neurons whose frequency is at most `threshold` (kept) and those
    /// above it (left out), as the paper's editing code does with 0.1. Empty frequencies
    /// (no facts counted) leave nothing out.
    pub fn split_shared(&self, set: &NeuronSet, threshold: f64) -> (NeuronSet, NeuronSet) {
        let (shared, kept): (Vec<_>, Vec<_>) = set
            .iter()
            .partition(|n| self.frequency(n.layer, n.index) > threshold);
        (NeuronSet::new(kept), NeuronSet::new(shared))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kn_model::ModelKind;

    pub(crate) fn info(layers: usize, width: usize) -> ModelInfo {
        ModelInfo {
            architecture: "test".into(),
            kind: ModelKind::Causal,
            num_layers: layers,
            ffn_width: width,
            hidden_size: 4,
            vocab_size: 10,
            max_positions: 16,
            source: "memory".into(),
            fingerprint: "0".into(),
            dtype: Default::default(),
        }
    }

    #[test]
    fn sets_are_sorted_and_deduplicated() {
        let set = NeuronSet::new([(2, 5), (0, 3), (2, 5), (0, 1)]);
        assert_eq!(set.as_slice(), &[(0, 1), (0, 3), (2, 5)]);
        assert_eq!(set.len(), 3);
        assert!(set.contains(0, 3) && !set.contains(1, 3));
        assert_eq!(set.layers(), vec![0, 2]);
        assert_eq!(set.by_layer()[&0], vec![1, 3]);
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(json, "[[0,1],[0,3],[2,5]]");
        let back: NeuronSet = serde_json::from_str("[[2,5],[0,1],[0,3],[0,1]]").unwrap();
        assert_eq!(back, set);
    }

    #[test]
    fn validation_names_the_bad_pair() {
        let info = info(3, 8);
        assert!(NeuronSet::for_model([(2, 7)], &info).is_ok());
        assert!(matches!(
            NeuronSet::for_model([(3, 0)], &info),
            Err(EditError::LayerOutOfRange {
                layer: 3,
                layers: 3
            })
        ));
        assert!(matches!(
            NeuronSet::for_model([(1, 8)], &info),
            Err(EditError::NeuronOutOfRange {
                layer: 1,
                neuron: 8,
                width: 8
            })
        ));
        assert!(matches!(
            NeuronSet::default().require_non_empty("x"),
            Err(EditError::EmptyNeuronSet { .. })
        ));
    }

    #[test]
    fn edits_cover_the_set() {
        let set = NeuronSet::new([(0, 1), (1, 2)]);
        let edits = set.edits(ActivationOp::Scale(0.0));
        assert_eq!(edits.len(), 2);
        assert_eq!((edits[1].layer, edits[1].neuron), (1, 2));
    }

    #[test]
    fn random_like_keeps_layer_counts_and_avoids_own_neurons() {
        let info = info(4, 10);
        let set = NeuronSet::new([(0, 1), (0, 2), (3, 9)]);
        let random = set.random_like(&info, 5, "f").unwrap();
        assert_eq!(random.len(), 3);
        assert_eq!(random.by_layer()[&0].len(), 2);
        assert_eq!(random.by_layer()[&3].len(), 1);
        assert!(random.iter().all(|n| !set.contains(n.layer, n.index)));
        assert_eq!(random, set.random_like(&info, 5, "f").unwrap());
        // A layer too full to avoid its own neurons draws from all of them.
        let full = NeuronSet::new((0..8).map(|n| (1, n)));
        let random = full.random_like(&info, 1, "g").unwrap();
        assert_eq!(random.len(), 8);
        assert!(set.random_like(&super::tests::info(2, 10), 0, "x").is_err());
    }

    #[test]
    fn frequencies_rank_and_split() {
        let sets = [
            NeuronSet::new([(0, 1), (1, 1)]),
            NeuronSet::new([(0, 1)]),
            NeuronSet::new([(0, 1), (2, 2)]),
        ];
        let freq = NeuronFrequencies::from_sets(sets.iter());
        assert_eq!(freq.facts(), 3);
        assert_eq!(freq.count(0, 1), 3);
        assert!((freq.frequency(1, 1) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(freq.top(2).as_slice(), &[(0, 1), (1, 1)]);
        let (kept, shared) = freq.split_shared(&sets[0], 0.5);
        assert_eq!(kept.as_slice(), &[(1, 1)]);
        assert_eq!(shared.as_slice(), &[(0, 1)]);
        let json = serde_json::to_string(&freq).unwrap();
        let back: NeuronFrequencies = serde_json::from_str(&json).unwrap();
        assert_eq!(back, freq);
        assert!(NeuronFrequencies::from_counts(1, [(Neuron::new(0, 0), 2)]).is_err());
        assert!(
            serde_json::from_str::<NeuronFrequencies>(r#"{"facts":1,"counts":[[0,0,3]]}"#).is_err()
        );
        assert_eq!(NeuronFrequencies::default().frequency(0, 0), 0.0);
    }
}
