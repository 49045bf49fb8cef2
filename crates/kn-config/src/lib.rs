//! Model configurations, read from a Hugging Face `config.json` or a GGUF file's metadata, and
//! checked before anything is allocated from them: [`BertConfig`] for the masked LM and
//! [`DecoderConfig`] for every decoder (one small file per architecture in [`arch`]). No libtorch: the loaders of `kn-model`
//! call these readers first, and the fuzz target `model_config` drives them directly.
//!
//! The rules every configuration key follows (see [`limits`]):
//! - a size (layers, widths, heads, vocabulary, context) is a positive integer no larger than
//!   a bound far above any released model, so no size read from a file can make the loader
//!   allocate without limit or overflow; the weights that exist are checked against it by the
//!   loader before the per-layer loop;
//! - a real-valued setting (norm epsilon, RoPE base) is finite and positive;
//! - a key that changes the math and is not implemented is refused, naming the key.
//!
//! Every error names the key (`num_hidden_layers = 1000000000 is larger than 1024`).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod arch;
pub mod bert;
pub mod decoder;
mod gguf_keys;
pub mod limits;

pub use bert::BertConfig;
pub use decoder::{DecoderConfig, RopeScaling};
pub use limits::ConfigError;

/// The name this configuration had when only the Llama family was covered.
pub type LlamaConfig = DecoderConfig;
