//! The one identifier of an FFN neuron: (layer, index within the layer), with the model's own
//! layer numbering (0-based). In JSON it is the pair `[layer, index]`, as in the authors'
//! result files.

use serde::{Deserialize, Serialize};

/// An FFN neuron: layer and index within the layer. Ordered by layer, then index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(from = "(usize, usize)", into = "(usize, usize)")]
pub struct Neuron {
    /// The layer (the model's numbering, 0-based).
    pub layer: usize,
    /// The index within the layer's intermediate units.
    pub index: usize,
}

impl Neuron {
    /// Builds a neuron.
    pub const fn new(layer: usize, index: usize) -> Self {
        Self { layer, index }
    }
}

impl From<(usize, usize)> for Neuron {
    fn from((layer, index): (usize, usize)) -> Self {
        Self { layer, index }
    }
}

impl From<Neuron> for (usize, usize) {
    fn from(n: Neuron) -> Self {
        (n.layer, n.index)
    }
}

impl PartialEq<(usize, usize)> for Neuron {
    fn eq(&self, &(layer, index): &(usize, usize)) -> bool {
        self.layer == layer && self.index == index
    }
}

impl std::fmt::Display for Neuron {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "L{}.{}", self.layer, self.index)
    }
}
