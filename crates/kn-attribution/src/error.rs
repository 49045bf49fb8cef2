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
