//! Tokenizers for knowledge-neuron models: every family's `tokenizer.json` and GGUF vocabularies
//! through Hugging Face's `tokenizers`, and BERT WordPiece.
//!
//! Two implementations sit behind one [`Tokenizer`] trait:
//!
//! * [`HfTokenizer`]: Hugging Face's own `tokenizers` crate, loaded from any `tokenizer.json`
//!   ([`HfTokenizer::from_file`]) or built from a GGUF file's metadata as transformers' GGUF
//!   loader builds it: byte-level BPE of GPT-2 / SmolLM2 / Llama 3 / Qwen
//!   ([`byte_level_from_gguf_metadata`]) and Gemma's SentencePiece vocabulary
//!   ([`sentencepiece::gemma_from_gguf_metadata`]).
//! * [`WordPiece`]: BERT tokenization via the `rust_tokenizers` crate, matching
//!   `transformers.BertTokenizer` on the same `vocab.txt`.
//!
//! `encode` never adds special tokens (no BOS / CLS / SEP): callers add what their model needs.
//! Special-token strings written literally in the text (`[MASK]`, `<|im_start|>`) do map to
//! their ids.
//!
//! ```no_run
//! use kn_tokenizer::{HfTokenizer, Tokenizer};
//! let tok = HfTokenizer::from_file(std::path::Path::new("fixtures/tokenizer/smollm2-tokenizer.json"))?;
//! let ids = tok.encode("The capital of France is")?;
//! assert_eq!(tok.decode(&ids)?, "The capital of France is");
//! # Ok::<(), kn_tokenizer::TokenizerError>(())
//! ```
#![warn(missing_docs)]

pub mod byte_level;
mod error;
pub mod gguf_bpe;
mod gguf_vocab;
pub mod hf;
pub mod pretokenizer;
pub mod sentencepiece;
pub mod wordpiece;

pub use error::TokenizerError;
pub use gguf_bpe::byte_level_from_gguf_metadata;
pub use hf::HfTokenizer;
pub use pretokenizer::{PreTokenizer, GGUF_PRE_NAMES, GPT2_PATTERN, LLAMA3_PATTERN, QWEN2_PATTERN};
pub use wordpiece::WordPiece;

/// A text tokenizer: text <-> token ids.
pub trait Tokenizer: Send + Sync {
    /// Token ids of `text`, without any special tokens added (no BOS/CLS/SEP).
    /// Special-token strings that occur literally in the text (e.g. `"[MASK]"`, `"<|im_start|>"`) map to their id.
    ///
    /// # Errors
    /// Implementation-specific; e.g. a pre-tokenizer regex hitting its backtracking limit.
    fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError>;

    /// The text of `ids`.
    ///
    /// # Errors
    /// [`TokenizerError::UnknownId`] for an id outside the vocabulary.
    fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError>;

    /// The id of a raw vocabulary string, if present.
    fn token_to_id(&self, token: &str) -> Option<u32>;

    /// The raw vocabulary string of `id` (e.g. `"Ġcapital"`, `"##ing"`).
    fn id_to_token(&self, id: u32) -> Option<&str>;

    /// Number of ids (one more than the largest id).
    fn vocab_size(&self) -> usize;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn implementations_are_send_sync_and_object_safe() {
        assert_send_sync::<WordPiece>();
        assert_send_sync::<HfTokenizer>();
        let _: Option<Box<dyn Tokenizer>> = None;
    }
}
