//! The error type of the activation probes: every failure a caller can cause (neurons out of
//! range, facts the data does not know, a corpus that does not line up with the facts, a bad
//! configuration) is a typed variant naming the problem. Errors of the model and data layers
//! pass through as [`ProbeError::Model`] and [`ProbeError::Data`].

use kn_data::DataError;
use kn_model::ModelError;

/// Errors of `kn-probe`.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The model layer failed (libtorch error, bad batch, ...).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The data layer failed (missing or malformed corpus file, misaligned bags, ...).
    #[error(transparent)]
    Data(#[from] DataError),
    /// A knowledge neuron's layer is past the model's last layer.
    #[error("fact {fact}: layer {layer} is out of range: the model has {layers} layers")]
    LayerOutOfRange {
        /// The fact id.
        fact: String,
        /// The layer given.
        layer: usize,
        /// Number of layers of the model.
        layers: usize,
    },
    /// A knowledge neuron's index is past the FFN width.
    #[error("fact {fact}: neuron {neuron} of layer {layer} is out of range: the FFN has {width} neurons per layer")]
    NeuronOutOfRange {
        /// The fact id.
        fact: String,
        /// Its layer.
        layer: usize,
        /// The neuron index given.
        neuron: usize,
        /// FFN width of the model.
        width: usize,
    },
    /// The corpus holds no bags for a relation that a fact belongs to.
    #[error(
        "the corpus has no bags for relation {relation} (fact {fact}); load that relation's file"
    )]
    RelationNotLoaded {
        /// The relation id.
        relation: String,
        /// The fact that needed it.
        fact: String,
    },
    /// A configuration value is unusable.
    #[error("invalid configuration: {0}")]
    BadConfig(String),
}

/// Result type of `kn-probe`.
pub type Result<T> = std::result::Result<T, ProbeError>;
