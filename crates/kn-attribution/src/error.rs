//! Errors of the attribution crate.

/// What can go wrong while attributing.
#[derive(Debug, thiserror::Error)]
pub enum AttributionError {
    /// The model layer refused (bad prompt, answer, layer...) or failed.
    #[error(transparent)]
    Model(#[from] kn_model::ModelError),
    /// The attribution settings are invalid (zero steps, empty layer list, ...).
    #[error("invalid attribution settings: {0}")]
    InvalidConfig(String),
    /// A computation produced NaN or infinity (a model whose weights or settings overflow).
    #[error("the attribution of {prompt:?} is not finite: NaN or infinity in {place}")]
    NonFinite {
        /// The prompt.
        prompt: String,
        /// Where it arose.
        place: String,
    },
    /// libtorch ran out of memory during the attribution's passes.
    #[error(
        "out of memory with {rows_in_flight} rows in flight{}: {message}; hint: a smaller \
         --batch-size or --memory-budget, or fewer --concurrent-passes",
        budget.map(|b| format!(" (memory budget {:.2} GiB)", b as f64 / (1u64 << 30) as f64)).unwrap_or_default()
    )]
    OutOfMemory {
        /// Rows (layer x integration point) the passes held at once.
        rows_in_flight: usize,
        /// The memory budget they were sized by, if any.
        budget: Option<u64>,
        /// libtorch's message.
        message: String,
    },
    /// The prompt was encoded without an answer to attribute.
    #[error("the prompt {0:?} has no answer to attribute")]
    NoAnswer(String),
}

impl From<kn_model::tch::TchError> for AttributionError {
    fn from(error: kn_model::tch::TchError) -> Self {
        AttributionError::Model(kn_model::ModelError::from(error))
    }
}

/// Result alias of the attribution crate.
pub type Result<T> = std::result::Result<T, AttributionError>;
