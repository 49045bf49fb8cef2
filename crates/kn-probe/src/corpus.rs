//! The BINGREL bags of the relations under study, checked against the facts they describe, and
//! the facts with their knowledge neurons.

use kn_schema::Neuron;
use std::path::Path;

use kn_data::seed::derive_seed;
use kn_data::{
    compare_relations, Bingrel, Dataset, Fact, FactBags, FactId, RelationBags, SentencePool,
};
use kn_model::ModelInfo;
use serde::{Deserialize, Serialize};

use crate::error::{ProbeError, Result};

/// A fact and its knowledge neurons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnowledgeFact {
    /// The fact (id, subject = head, object = tail).
    pub fact: Fact,
    /// Its knowledge neurons.
    pub neurons: Vec<Neuron>,
    /// The prompts its neurons were found with (e.g. its PARAREL prompts, in the model's
    /// prompt style, without the answer); they give each neuron its sign for the
    /// [`crate::SignAligned`] values. May be empty.
    #[serde(default)]
    pub prompts: Vec<String>,
}

impl KnowledgeFact {
    /// Checks that every neuron exists in a model with `info`.
    pub fn validate(&self, info: &ModelInfo) -> Result<()> {
        for &Neuron {
            layer,
            index: neuron,
        } in &self.neurons
        {
            if layer >= info.num_layers {
                return Err(ProbeError::LayerOutOfRange {
                    fact: self.fact.id.to_string(),
                    layer,
                    layers: info.num_layers,
                });
            }
            if neuron >= info.ffn_width {
                return Err(ProbeError::NeuronOutOfRange {
                    fact: self.fact.id.to_string(),
                    layer,
                    neuron,
                    width: info.ffn_width,
                });
            }
        }
        Ok(())
    }

    /// The random control of this fact's neurons: for each knowledge neuron, in order, a neuron
    /// of the same layer drawn uniformly (seeded by `seed` and the fact id, platform-independent)
    /// among those that are neither knowledge neurons of the fact nor already drawn (when the
    /// layer has no such neuron left, any other neuron of the layer).
    pub fn random_neurons(&self, ffn_width: usize, seed: u64) -> Vec<Neuron> {
        let mut drawn: Vec<Neuron> = Vec::with_capacity(self.neurons.len());
        if ffn_width == 0 {
            return drawn;
        }
        for (k, &Neuron { layer, .. }) in self.neurons.iter().enumerate() {
            let taken = |n: usize, drawn: &[Neuron]| {
                let neuron = Neuron::new(layer, n);
                self.neurons.contains(&neuron) || drawn.contains(&neuron)
            };
            let free = (0..ffn_width).filter(|&n| !taken(n, &drawn)).count();
            let key = |attempt: usize| format!("random-neurons:{}:{k}:{attempt}", self.fact.id);
            let pick =
                |attempt: usize| (derive_seed(seed, &key(attempt)) % ffn_width as u64) as usize;
            let neuron = if free == 0 {
                pick(0)
            } else {
                // Rejection sampling; when the free share is tiny, fall back to the free neurons.
                (0..256)
                    .map(pick)
                    .find(|&n| !taken(n, &drawn))
                    .or_else(|| {
                        let free: Vec<usize> =
                            (0..ffn_width).filter(|&n| !taken(n, &drawn)).collect();
                        free.get(pick(256) % free.len()).copied()
                    })
                    .unwrap_or_else(|| pick(0))
            };
            drawn.push(Neuron::new(layer, neuron));
        }
        drawn
    }
}

/// The BINGREL bags of some relations, each checked to line up with the relation's facts.
#[derive(Debug, Clone, Default)]
pub struct Corpus {
    relations: Vec<RelationBags>,
}

impl Corpus {
    /// Loads the bags of `relations` from `dir` (duplicates ignored), checking that each file
    /// holds exactly as many bags as `dataset` has facts of that relation.
    ///
    /// Errors: [`kn_data::DataError::NotFound`] naming a missing file,
    /// [`kn_data::DataError::Json`] for a malformed one, [`kn_data::DataError::MisalignedBags`]
    /// when a count differs, [`kn_data::DataError::UnknownRelation`] for a relation the dataset
    /// lacks (all as [`ProbeError::Data`]).
    pub fn load(dir: &Path, dataset: &Dataset, relations: &[String]) -> Result<Self> {
        let mut bags: Vec<RelationBags> = Vec::new();
        for relation in relations {
            if bags.iter().any(|b| &b.relation == relation) {
                continue;
            }
            bags.push(Bingrel::load_for(dir, dataset, relation)?);
        }
        Ok(Self::from_bags(bags))
    }

    /// A corpus of already loaded (and checked) bags; a relation given twice keeps its first.
    pub fn from_bags(bags: Vec<RelationBags>) -> Self {
        let mut relations: Vec<RelationBags> = Vec::with_capacity(bags.len());
        for b in bags {
            if !relations.iter().any(|r| r.relation == b.relation) {
                relations.push(b);
            }
        }
        relations.sort_by(|a, b| compare_relations(&a.relation, &b.relation));
        Self { relations }
    }

    /// The relations' bags, in natural relation order.
    pub fn relations(&self) -> &[RelationBags] {
        &self.relations
    }

    /// The bags of one relation.
    pub fn relation(&self, relation: &str) -> Option<&RelationBags> {
        self.relations.iter().find(|r| r.relation == relation)
    }

    /// The bags of fact `id`: `Err` if its relation is not loaded, `Ok(None)` if the relation
    /// has no bag at that index.
    pub fn bags(&self, id: &FactId) -> Result<Option<&FactBags>> {
        let relation =
            self.relation(&id.relation)
                .ok_or_else(|| ProbeError::RelationNotLoaded {
                    relation: id.relation.clone(),
                    fact: id.to_string(),
                })?;
        Ok(relation.get(id.index))
    }

    /// Every sentence of the loaded relations, to draw T3 sentences from.
    pub fn pool(&self) -> SentencePool<'_> {
        SentencePool::new(&self.relations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kn_model::ModelKind;

    fn fact(neurons: Vec<(usize, usize)>) -> KnowledgeFact {
        let neurons = neurons.into_iter().map(Neuron::from).collect();
        KnowledgeFact {
            fact: Fact {
                id: FactId::new("P36", 0),
                subject: "Azerbaijan".into(),
                object: "Baku".into(),
            },
            neurons,
            prompts: Vec::new(),
        }
    }

    fn info() -> ModelInfo {
        ModelInfo {
            architecture: "llama".into(),
            kind: ModelKind::Causal,
            num_layers: 3,
            ffn_width: 8,
            hidden_size: 4,
            vocab_size: 10,
            max_positions: 16,
            source: "test".into(),
            fingerprint: "0".into(),
            dtype: Default::default(),
        }
    }

    #[test]
    fn neurons_are_validated() {
        assert!(fact(vec![(2, 7)]).validate(&info()).is_ok());
        assert!(matches!(
            fact(vec![(3, 0)]).validate(&info()),
            Err(ProbeError::LayerOutOfRange { layer: 3, .. })
        ));
        assert!(matches!(
            fact(vec![(0, 8)]).validate(&info()),
            Err(ProbeError::NeuronOutOfRange { neuron: 8, .. })
        ));
    }

    #[test]
    fn random_neurons_share_layers_and_avoid_the_facts_own() {
        let f = fact(vec![(0, 1), (0, 2), (2, 5)]);
        let r = f.random_neurons(8, 3);
        assert_eq!(r.len(), 3);
        assert_eq!(r.iter().map(|n| n.layer).collect::<Vec<_>>(), vec![0, 0, 2]);
        assert!(r.iter().all(|n| !f.neurons.contains(n)));
        assert_ne!(r[0], r[1]);
        assert_eq!(r, f.random_neurons(8, 3), "seeded");
        // A layer nearly full of knowledge neurons: the only free neuron is found.
        let full = fact((0..7).map(|n| (1, n)).collect());
        assert!(full.random_neurons(8, 0).contains(&Neuron::new(1, 7)));
        // No free neuron at all: still one of the layer's.
        let all = fact((0..2).map(|n| (1, n)).collect());
        let r = all.random_neurons(2, 0);
        assert!(r.iter().all(|n| n.layer == 1 && n.index < 2));
        assert!(fact(vec![(0, 0)]).random_neurons(0, 0).is_empty());
    }

    #[test]
    fn the_fixture_corpus_lines_up_with_five_facts() {
        let dir = Bingrel::fixture_dir();
        let bags = Bingrel::load_relation(&dir, "P36", 5).unwrap();
        let corpus = Corpus::from_bags(vec![bags.clone(), bags]);
        assert_eq!(corpus.relations().len(), 1);
        assert!(corpus.bags(&FactId::new("P36", 4)).unwrap().is_some());
        assert!(corpus.bags(&FactId::new("P36", 5)).unwrap().is_none());
        assert!(matches!(
            corpus.bags(&FactId::new("P47", 0)),
            Err(ProbeError::RelationNotLoaded { .. })
        ));
        assert_eq!(corpus.pool().len(), 5 * 7);
    }
}
