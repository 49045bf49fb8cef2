//! The error type of the model layer: every failure a user can cause (missing or corrupt files,
//! shape mismatches, bad prompts, unavailable devices) is a typed variant that names the
//! problem and, where there is one, the file.

use std::path::PathBuf;

/// Errors of the model layer.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file or directory the model needs does not exist or cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The model argument names nothing loadable.
    #[error("cannot load a model from {path}: {reason}")]
    UnknownModelFormat {
        /// What was given.
        path: PathBuf,
        /// Why it was not recognised.
        reason: String,
    },
    /// A configuration file is missing a key or holds a wrong value.
    #[error("bad model configuration in {path}: {reason}")]
    Config {
        /// The configuration (or GGUF) file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A weights file is malformed (safetensors header, dtype, offsets).
    #[error("malformed weights file {path}: {reason}")]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A tensor the architecture needs is absent from the weights.
    #[error("tensor {name} is missing from {path}")]
    MissingTensor {
        /// Tensor name.
        name: String,
        /// The weights file.
        path: PathBuf,
    },
    /// A tensor has another shape than the configuration implies.
    #[error("tensor {name} in {path} has shape {found:?}, the configuration implies {expected:?}")]
    ShapeMismatch {
        /// Tensor name.
        name: String,
        /// The weights file.
        path: PathBuf,
        /// Shape implied by the configuration.
        expected: Vec<i64>,
        /// Shape found in the file.
        found: Vec<i64>,
    },
    /// The GGUF file could not be parsed.
    #[error(transparent)]
    Gguf(#[from] kn_gguf::GgufError),
    /// The tokenizer failed or could not be built.
    #[error(transparent)]
    Tokenizer(#[from] kn_tokenizer::TokenizerError),
    /// A masked-LM prompt without the mask token.
    #[error("the prompt {prompt:?} has no {mask} token: a masked LM needs one to know where the answer goes")]
    NoMask {
        /// The prompt.
        prompt: String,
        /// The mask token, e.g. `[MASK]`.
        mask: String,
    },
    /// A masked-LM prompt with more than one mask token.
    #[error("the prompt {prompt:?} has {count} {mask} tokens; exactly one is supported")]
    SeveralMasks {
        /// The prompt.
        prompt: String,
        /// The mask token.
        mask: String,
        /// How many were found.
        count: usize,
    },
    /// An empty prompt.
    #[error("the prompt is empty")]
    EmptyPrompt,
    /// A prompt longer than the model's context.
    #[error("the prompt has {tokens} tokens, more than the model's context of {max}")]
    PromptTooLong {
        /// Tokens in the encoded prompt.
        tokens: usize,
        /// The context length.
        max: usize,
    },
    /// The answer does not tokenize as the answer policy requires.
    #[error("the answer {answer:?} {reason}")]
    BadAnswer {
        /// The answer text.
        answer: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A layer index past the last layer.
    #[error("layer {layer} is out of range: the model has {layers} layers (0..={})", layers.saturating_sub(1))]
    LayerOutOfRange {
        /// The index given.
        layer: usize,
        /// Number of layers.
        layers: usize,
    },
    /// A neuron index past the FFN width.
    #[error("neuron {neuron} is out of range: the FFN has {width} neurons per layer")]
    NeuronOutOfRange {
        /// The index given.
        neuron: usize,
        /// FFN width.
        width: usize,
    },
    /// A token id past the vocabulary.
    #[error("token id {id} is out of range: the vocabulary has {vocab} tokens")]
    TokenOutOfRange {
        /// The id given.
        id: i64,
        /// Vocabulary size.
        vocab: usize,
    },
    /// Arguments that do not fit together (batch shapes, empty batches...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The requested device is not usable.
    #[error("device {device} is not available: {reason}")]
    DeviceUnavailable {
        /// The device asked for.
        device: String,
        /// Why not.
        reason: String,
    },
    /// libtorch reported an error.
    #[error("libtorch error: {0}")]
    Torch(String),
    /// libtorch could not allocate memory (CPU or GPU).
    #[error("out of memory: {0}")]
    OutOfMemory(String),
}

impl ModelError {
    /// A libtorch error message as [`ModelError::OutOfMemory`] when it says an allocation
    /// failed (the CPU allocator's "can't allocate memory", CUDA's "out of memory"), else as
    /// [`ModelError::Torch`].
    pub fn from_torch_message(message: String) -> Self {
        let lower = message.to_lowercase();
        if lower.contains("can't allocate memory") || lower.contains("out of memory") {
            ModelError::OutOfMemory(message)
        } else {
            ModelError::Torch(message)
        }
    }
}

impl From<tch::TchError> for ModelError {
    fn from(error: tch::TchError) -> Self {
        ModelError::from_torch_message(error.to_string())
    }
}

/// Result alias of the model layer.
pub type Result<T> = std::result::Result<T, ModelError>;

/// Runs `f`, turning a panic raised inside libtorch (tch panics on C++ exceptions such as
/// out-of-memory) into [`ModelError::Torch`] or [`ModelError::OutOfMemory`], so that no panic
/// crosses the library API.
pub fn guard<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic inside libtorch".to_string());
            Err(ModelError::from_torch_message(message))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real failed allocation (far more than any machine's memory and address space) comes
    /// back as `OutOfMemory`, not as a panic or a generic libtorch error.
    #[test]
    fn a_failed_allocation_is_out_of_memory() {
        let error = guard(|| {
            Ok(tch::Tensor::empty(
                [1 << 46],
                (tch::Kind::Float, tch::Device::Cpu),
            ))
        })
        .unwrap_err();
        assert!(matches!(error, ModelError::OutOfMemory(_)), "{error:?}");
        assert!(matches!(
            ModelError::from_torch_message("CUDA out of memory. Tried to allocate 2.00 GiB".into()),
            ModelError::OutOfMemory(_)
        ));
        assert!(matches!(
            ModelError::from_torch_message("shape mismatch".into()),
            ModelError::Torch(_)
        ));
    }
}
