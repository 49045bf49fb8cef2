//! Pre-tokenizers of byte-level BPE vocabularies in GGUF files: how text is cut into words
//! before the merges run, chosen by the file's `tokenizer.ggml.pre` name.
//!
//! A GGUF file names its pre-tokenizer but does not spell it out. The names map as llama.cpp
//! (`llama-vocab.cpp`) and transformers' GGUF loader (`GGUF_PRE_TOKENIZER_SPLITS`) map them,
//! each written as the `tokenizer.json` pre-tokenizer Hugging Face's `tokenizers` runs:
//!
//! * [`PreTokenizer::Gpt2`]: `ByteLevel(use_regex=true)`, the GPT-2 regex [`GPT2_PATTERN`];
//! * [`PreTokenizer::SmolLm`]: `Sequence[Digits(individual_digits=true), ByteLevel(use_regex=true)]`,
//!   as SmolLM / SmolLM2's own `tokenizer.json` has it (llama.cpp's `SMOLLM` pre type; transformers'
//!   GGUF loader drops the digit split, which changes the ids of numbers);
//! * [`PreTokenizer::Llama3`]: `Sequence[Split(LLAMA3_PATTERN, Isolated), ByteLevel(use_regex=false)]`,
//!   with `ignore_merges` as in Llama 3's `tokenizer.json`;
//! * [`PreTokenizer::Qwen2`]: `Sequence[Split(QWEN2_PATTERN, Isolated), ByteLevel(use_regex=false)]`
//!   (every digit its own word).

use crate::error::TokenizerError;
use serde_json::{json, Value};

/// The GPT-2 pre-tokenization regex (Hugging Face's `ByteLevel` pre-tokenizer's).
pub const GPT2_PATTERN: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// The Llama 3 pre-tokenization regex (the `Split` pattern of Llama 3's `tokenizer.json`).
pub const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The Qwen2 / Qwen2.5 / Qwen3 pre-tokenization regex (transformers' `tokenization_qwen2`).
pub const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// `tokenizer.ggml.pre` names accepted by [`PreTokenizer::from_gguf_pre`], with the preset each
/// maps to. `"default"` is Hugging Face's `ByteLevel` default (llama.cpp's own fallback regex
/// differs slightly).
pub const GGUF_PRE_NAMES: &[(&str, PreTokenizer)] = &[
    ("default", PreTokenizer::Gpt2),
    ("gpt2", PreTokenizer::Gpt2),
    ("gpt-2", PreTokenizer::Gpt2),
    ("mpt", PreTokenizer::Gpt2),
    ("olmo", PreTokenizer::Gpt2),
    ("jais", PreTokenizer::Gpt2),
    ("smollm", PreTokenizer::SmolLm),
    ("starcoder", PreTokenizer::SmolLm),
    ("refact", PreTokenizer::SmolLm),
    ("command-r", PreTokenizer::SmolLm),
    ("codeshell", PreTokenizer::SmolLm),
    ("exaone", PreTokenizer::SmolLm),
    ("minerva-7b", PreTokenizer::SmolLm),
    ("llama3", PreTokenizer::Llama3),
    ("llama-v3", PreTokenizer::Llama3),
    ("llama-bpe", PreTokenizer::Llama3),
    ("falcon3", PreTokenizer::Llama3),
    ("pixtral", PreTokenizer::Llama3),
    ("qwen2", PreTokenizer::Qwen2),
    ("deepseek-r1-qwen", PreTokenizer::Qwen2),
    ("megrez", PreTokenizer::Qwen2),
];

/// How text is cut into words before byte-level BPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PreTokenizer {
    /// GPT-2 regex ([`GPT2_PATTERN`]).
    Gpt2,
    /// Every numeric character isolated, then the GPT-2 regex (SmolLM / SmolLM2, StarCoder).
    SmolLm,
    /// Llama 3 regex ([`LLAMA3_PATTERN`]), words that are tokens kept whole (`ignore_merges`).
    Llama3,
    /// Qwen2 regex ([`QWEN2_PATTERN`]).
    Qwen2,
}

impl PreTokenizer {
    /// The preset for a GGUF `tokenizer.ggml.pre` value (see [`GGUF_PRE_NAMES`]).
    ///
    /// # Errors
    /// [`TokenizerError::UnknownPreTokenizer`], listing the supported names.
    pub fn from_gguf_pre(name: &str) -> Result<Self, TokenizerError> {
        GGUF_PRE_NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, p)| p)
            .ok_or_else(|| TokenizerError::UnknownPreTokenizer {
                name: name.to_owned(),
                supported: GGUF_PRE_NAMES
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The regex this pre-tokenizer splits with.
    pub fn pattern(self) -> &'static str {
        match self {
            PreTokenizer::Gpt2 | PreTokenizer::SmolLm => GPT2_PATTERN,
            PreTokenizer::Llama3 => LLAMA3_PATTERN,
            PreTokenizer::Qwen2 => QWEN2_PATTERN,
        }
    }

    /// Whether a word that is itself a vocabulary token is emitted whole without running merges
    /// (Llama 3's `tokenizer.json` sets BPE `ignore_merges`).
    pub fn ignore_merges(self) -> bool {
        matches!(self, PreTokenizer::Llama3)
    }

    /// The `pre_tokenizer` object of a `tokenizer.json`.
    pub fn to_tokenizer_json(self) -> Value {
        let byte_level = |use_regex: bool| {
            json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
                   "use_regex": use_regex})
        };
        match self {
            PreTokenizer::Gpt2 => byte_level(true),
            PreTokenizer::SmolLm => json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true},
                byte_level(true),
            ]}),
            PreTokenizer::Llama3 | PreTokenizer::Qwen2 => {
                json!({"type": "Sequence", "pretokenizers": [
                    {"type": "Split", "pattern": {"Regex": self.pattern()}, "behavior": "Isolated",
                     "invert": false},
                    byte_level(false),
                ]})
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_presets_and_unknown_names_list_the_supported_ones() {
        assert_eq!(
            PreTokenizer::from_gguf_pre("qwen2").unwrap(),
            PreTokenizer::Qwen2
        );
        assert_eq!(
            PreTokenizer::from_gguf_pre("smollm").unwrap(),
            PreTokenizer::SmolLm
        );
        assert!(PreTokenizer::Llama3.ignore_merges());
        assert!(!PreTokenizer::Qwen2.ignore_merges());
        match PreTokenizer::from_gguf_pre("tekken-9").unwrap_err() {
            TokenizerError::UnknownPreTokenizer { name, supported } => {
                assert_eq!(name, "tekken-9");
                assert!(supported.contains("qwen2") && supported.contains("llama-bpe"));
            }
            other => panic!("{other:?}"),
        }
    }
}
