//! The model layer of the knowledge-neurons toolkit.
//!
//! Everything above this crate (attribution, selection, interventions, editing) talks to a
//! model through the [`KnowledgeModel`] trait. Two implementations ship:
//! - [`BertMaskedLm`]: BERT with its masked-LM head (the paper's model), from a Hugging Face
//!   directory;
//! - [`LlamaCausalLm`]: Llama-family causal LMs (the default SmolLM2-135M-Instruct), from GGUF
//!   or a Hugging Face directory.
//!
//! [`load_model`] opens either from a path or `default`; [`parse_device`] picks CPU or CUDA.
#![warn(missing_docs)]

mod bert;
mod common;
mod decoder;
mod device;
mod error;
mod load;
mod model;
mod precision;
mod runtime;
mod weights;

pub use bert::BertMaskedLm;
pub use common::probability_and_rank;
pub use decoder::{
    hand_written_backward_covers, DecoderLm, LlamaCausalLm, CPU_CONCURRENT_PASSES,
    CPU_ROWS_IN_FLIGHT, HEAD_VOCAB_BLOCK,
};
pub use device::parse_device;
pub use error::{guard, ModelError, Result};
pub use kn_tokenizer::Tokenizer;
pub use load::{
    cache_dir, default_model_path, gemma3_270m_path, load_model, load_model_as, resolve_model_path,
    DEFAULT_MODEL_FILE, GEMMA3_270M_FILE,
};
pub use model::{
    start_gradients_by_autograd, ActivationEdit, ActivationOp, AnswerPolicy, CleanPass,
    EncodedPrompt, ForwardOutput, KnowledgeModel, ModelInfo, ModelKind,
};
pub use precision::{torch_kind, Dtype};
pub use runtime::{available_memory, on_new_thread, retain_freed_memory, set_threads};
pub use tch;
pub use weights::fingerprint;
