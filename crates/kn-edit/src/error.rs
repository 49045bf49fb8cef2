//! The error type of interventions and editing: every failure a caller can cause (neurons out
//! of range, empty sets, multi-token targets, patches for another model, unreadable files) is a
//! typed variant naming the problem. Errors of the model layer pass through as
//! [`EditError::Model`].

use kn_model::ModelError;
use std::path::PathBuf;

/// Errors of `kn-edit`.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The model layer failed (bad prompt, libtorch error, ...).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A neuron's layer is past the model's last layer.
    #[error("layer {layer} is out of range: the model has {layers} layers (0..={})", layers.saturating_sub(1))]
    LayerOutOfRange {
        /// The layer given.
        layer: usize,
        /// Number of layers of the model.
        layers: usize,
    },
    /// A neuron index is past the FFN width.
    #[error(
        "neuron {neuron} of layer {layer} is out of range: the FFN has {width} neurons per layer"
    )]
    NeuronOutOfRange {
        /// Its layer.
        layer: usize,
        /// The neuron index given.
        neuron: usize,
        /// FFN width of the model.
        width: usize,
    },
    /// An operation that needs neurons got none.
    #[error("the neuron set is empty: {context} needs at least one neuron")]
    EmptyNeuronSet {
        /// What needed them.
        context: String,
    },
    /// An operation that needs prompts got none.
    #[error("no prompts: {context} needs at least one")]
    NoPrompts {
        /// What needed them.
        context: String,
    },
    /// A prompt encoded without an answer where one is needed.
    #[error("the prompt {prompt:?} has no answer (encode it with one): its answer's probability cannot be measured")]
    MissingAnswer {
        /// The prompt text.
        prompt: String,
    },
    /// The prompts of one fact do not share the first answer token.
    #[error(
        "the prompts of fact {fact} disagree on the answer's first token ({first} vs {other})"
    )]
    InconsistentAnswer {
        /// The fact id.
        fact: String,
        /// First token of the first prompt's answer.
        first: i64,
        /// The differing token.
        other: i64,
    },
    /// A new answer that is not exactly one token for the model.
    #[error("the new answer {answer:?} is {count} tokens for this model ({pieces:?}); a fact update needs a single-token target")]
    MultiTokenTarget {
        /// The answer text.
        answer: String,
        /// How many tokens it encodes to.
        count: usize,
        /// The tokens, as the model writes them.
        pieces: Vec<String>,
    },
    /// The new answer is the old answer's token.
    #[error(
        "the new answer is the same token as the old one ({token}, {text:?}): nothing to update"
    )]
    SameTarget {
        /// The token id.
        token: i64,
        /// Its text.
        text: String,
    },
    /// Every knowledge neuron of the fact is shared by too many facts of its relation.
    #[error("all {excluded} knowledge neurons of the fact are shared by more than {threshold} of its relation's facts; none is left to edit")]
    AllNeuronsShared {
        /// How many neurons were left out.
        excluded: usize,
        /// The threshold used.
        threshold: f64,
    },
    /// A parameter outside its domain (zero batch size, NaN factor, ...).
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// No token to erase with could be found.
    #[error("no erasure token: {reason}")]
    NoErasureToken {
        /// Why.
        reason: String,
    },
    /// An edit would write NaN or infinite values.
    #[error(
        "the new value slot of neuron {neuron} in layer {layer} is not finite (NaN or infinite)"
    )]
    NonFiniteValues {
        /// Layer of the offending neuron.
        layer: usize,
        /// The neuron.
        neuron: usize,
    },
    /// A patch or handle made for another architecture.
    #[error("the patch is for a model with {field} = {patch}, but this model has {model}")]
    ModelMismatch {
        /// The differing field of the model info.
        field: &'static str,
        /// The patch's value.
        patch: String,
        /// The model's value.
        model: String,
    },
    /// A patch or handle made for other weights of the same architecture.
    #[error("the patch is for weights with fingerprint {patch}, but this model's fingerprint is {model}")]
    FingerprintMismatch {
        /// The patch's fingerprint.
        patch: String,
        /// The model's fingerprint.
        model: String,
    },
    /// A patch file that is not a valid `kn-edit` patch.
    #[error("malformed patch: {reason}")]
    PatchFormat {
        /// What is wrong.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// "read" or "write".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Result alias of `kn-edit`.
pub type Result<T> = std::result::Result<T, EditError>;

/// Runs tensor code, turning a panic inside libtorch into [`EditError::Model`].
pub(crate) fn torch<T>(f: impl FnOnce() -> T) -> Result<T> {
    Ok(kn_model::guard(|| Ok(f()))?)
}

/// Checks that `batch_size` is positive.
pub(crate) fn check_batch_size(batch_size: usize) -> Result<()> {
    if batch_size == 0 {
        return Err(EditError::InvalidParameter {
            name: "batch_size",
            reason: "must be at least 1".into(),
        });
    }
    Ok(())
}

/// Checks that a float parameter is finite.
pub(crate) fn check_finite(name: &'static str, value: f64) -> Result<()> {
    if !value.is_finite() {
        return Err(EditError::InvalidParameter {
            name,
            reason: format!("must be finite, got {value}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_problem() {
        let error = EditError::NeuronOutOfRange {
            layer: 2,
            neuron: 99,
            width: 64,
        };
        assert!(error.to_string().contains("99") && error.to_string().contains("64"));
        let error = EditError::LayerOutOfRange {
            layer: 5,
            layers: 3,
        };
        assert!(error.to_string().contains("0..=2"));
    }

    #[test]
    fn parameter_checks() {
        assert!(check_batch_size(0).is_err());
        assert!(check_batch_size(1).is_ok());
        assert!(check_finite("x", f64::NAN).is_err());
        assert!(check_finite("x", f64::INFINITY).is_err());
        assert!(check_finite("x", -2.5).is_ok());
    }

    #[test]
    fn torch_panics_become_errors() {
        let result: Result<()> = torch(|| panic!("boom"));
        assert!(matches!(result, Err(EditError::Model(ModelError::Torch(m))) if m == "boom"));
    }
}
