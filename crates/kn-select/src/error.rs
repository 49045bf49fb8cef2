//! The error type of selection, refinement and statistics.

/// Everything that can go wrong in this crate: malformed score matrices, invalid rules or
/// configurations, and facts that cannot be refined.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SelectError {
    /// The data length is not `layers x width`.
    #[error("score matrix shape mismatch: {layers} layers x {width} neurons need {expected} values, got {found}")]
    ShapeMismatch {
        /// Number of layer rows.
        layers: usize,
        /// Neurons per layer.
        width: usize,
        /// `layers * width`.
        expected: usize,
        /// The number of values given.
        found: usize,
    },

    /// A score matrix without any value (no layer or zero width).
    #[error("empty score matrix: need at least one layer and one neuron per layer")]
    EmptyMatrix,

    /// A layer appears twice in a score matrix, so neurons would be ambiguous.
    #[error("layer {0} appears more than once in the score matrix")]
    DuplicateLayer(usize),

    /// A score is NaN or infinite.
    #[error("score of neuron (layer {layer}, index {index}) is not finite: {value}")]
    NonFinite {
        /// The neuron's layer.
        layer: usize,
        /// The neuron's index within the layer.
        index: usize,
        /// The offending value.
        value: f32,
    },

    /// A coarse rule with an out-of-range parameter.
    #[error("invalid coarse rule: {0}")]
    InvalidRule(String),

    /// A refinement, adaptive or statistics setting out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// A fact with fewer prompts than refinement requires.
    #[error("fact {fact}: {prompts} prompts, refinement needs at least {required}")]
    TooFewPrompts {
        /// The fact id.
        fact: String,
        /// Its number of prompts.
        prompts: usize,
        /// The minimum.
        required: usize,
    },

    /// A fact passed for a relation it does not belong to.
    #[error("fact {fact} belongs to relation {found}, not {expected}")]
    MixedRelations {
        /// The fact id.
        fact: String,
        /// The relation being refined.
        expected: String,
        /// The fact's relation.
        found: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = SelectError> = std::result::Result<T, E>;
