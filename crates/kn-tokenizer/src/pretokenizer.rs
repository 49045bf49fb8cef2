//! Pre-tokenizers for byte-level BPE: how text is cut into words before BPE merges run.
//!
//! Hugging Face `tokenizers` and llama.cpp both split the input with a regex (and, for some
//! models, first isolate every digit), then run BPE on each piece independently. The presets
//! here reproduce:
//!
//! * [`PreTokenizer::Gpt2`]: `ByteLevel(use_regex=true)`, the GPT-2 regex [`GPT2_PATTERN`];
//! * [`PreTokenizer::SmolLm`]: `Sequence[Digits(individual_digits=true), ByteLevel(use_regex=true)]`
//!   as in SmolLM / SmolLM2's `tokenizer.json` (llama.cpp's `LLAMA_VOCAB_PRE_TYPE_SMOLLM`: a
//!   `\p{N}` split followed by the GPT-2 regex);
//! * [`PreTokenizer::Llama3`]: `Sequence[Split(LLAMA3_PATTERN, Isolated), ByteLevel(use_regex=false)]`;
//! * [`PreTokenizer::Regex`]: any other `Split` regex (Isolated behaviour), e.g. from a `tokenizer.json`.
//!
//! Splitting keeps both the regex matches and any text between them ("Isolated"), so the pieces
//! always concatenate back to the input.

use crate::error::TokenizerError;

/// The GPT-2 pre-tokenization regex (as used by Hugging Face's `ByteLevel` pre-tokenizer).
pub const GPT2_PATTERN: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// The Llama 3 pre-tokenization regex (the `Split` pattern of Llama 3's `tokenizer.json`).
pub const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// `tokenizer.ggml.pre` names accepted by [`PreTokenizer::from_gguf_pre`], with the preset each maps to.
///
/// The grouping follows llama.cpp's `llama-vocab.cpp` (models that share a regex there share a
/// preset here). `"default"` is mapped to the GPT-2 regex, i.e. Hugging Face's `ByteLevel`
/// default; llama.cpp's own fallback regex for BPE vocabularies differs slightly.
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
];

/// How text is cut into words before byte-level BPE.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PreTokenizer {
    /// GPT-2 regex ([`GPT2_PATTERN`]).
    Gpt2,
    /// Every Unicode numeric character (`char::is_numeric`) isolated, then the GPT-2 regex on
    /// each remaining piece (SmolLM / SmolLM2, StarCoder).
    SmolLm,
    /// Llama 3 regex ([`LLAMA3_PATTERN`]).
    Llama3,
    /// A custom regex; matches and the text between them both become pieces.
    Regex(String),
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
            .map(|(_, p)| p.clone())
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
    pub fn pattern(&self) -> &str {
        match self {
            PreTokenizer::Gpt2 | PreTokenizer::SmolLm => GPT2_PATTERN,
            PreTokenizer::Llama3 => LLAMA3_PATTERN,
            PreTokenizer::Regex(p) => p,
        }
    }

    /// Whether numeric characters are isolated before the regex runs.
    pub fn isolates_digits(&self) -> bool {
        matches!(self, PreTokenizer::SmolLm)
    }

    /// Whether byte-level BPE with this pre-tokenizer conventionally uses `ignore_merges`
    /// (a word that is itself a vocabulary token is emitted whole): true for Llama 3, as in
    /// llama.cpp and Llama 3's `tokenizer.json`.
    pub fn default_ignore_merges(&self) -> bool {
        matches!(self, PreTokenizer::Llama3)
    }

    /// Compiles the regex.
    ///
    /// # Errors
    /// [`TokenizerError::Regex`] if the pattern is invalid.
    pub fn compile(&self) -> Result<CompiledPreTokenizer, TokenizerError> {
        let regex = fancy_regex::Regex::new(self.pattern()).map_err(|e| TokenizerError::Regex {
            pattern: self.pattern().to_owned(),
            message: e.to_string(),
        })?;
        Ok(CompiledPreTokenizer {
            kind: self.clone(),
            regex,
        })
    }

    /// Splits `text` into pre-tokens (convenience: compiles the regex on each call).
    ///
    /// # Errors
    /// [`TokenizerError::Regex`] if the pattern is invalid or the regex engine gives up.
    pub fn split<'a>(&self, text: &'a str) -> Result<Vec<&'a str>, TokenizerError> {
        self.compile()?.split(text)
    }
}

/// A [`PreTokenizer`] with its regex compiled, ready to split text.
#[derive(Debug, Clone)]
pub struct CompiledPreTokenizer {
    kind: PreTokenizer,
    regex: fancy_regex::Regex,
}

impl CompiledPreTokenizer {
    /// The pre-tokenizer this was compiled from.
    pub fn kind(&self) -> &PreTokenizer {
        &self.kind
    }

    /// Splits `text` into pre-tokens; the pieces concatenate back to `text`.
    ///
    /// # Errors
    /// [`TokenizerError::Regex`] if the regex engine gives up (backtracking limit).
    pub fn split<'a>(&self, text: &'a str) -> Result<Vec<&'a str>, TokenizerError> {
        let mut out = Vec::new();
        self.split_into(text, &mut out)?;
        Ok(out)
    }

    /// Like [`split`](Self::split), appending to `out`.
    ///
    /// # Errors
    /// [`TokenizerError::Regex`] if the regex engine gives up (backtracking limit).
    pub fn split_into<'a>(
        &self,
        text: &'a str,
        out: &mut Vec<&'a str>,
    ) -> Result<(), TokenizerError> {
        if !self.kind.isolates_digits() {
            return self.split_regex(text, out);
        }
        let mut start = 0;
        for (i, c) in text.char_indices() {
            if c.is_numeric() {
                if i > start {
                    self.split_regex(&text[start..i], out)?;
                }
                let end = i + c.len_utf8();
                out.push(&text[i..end]);
                start = end;
            }
        }
        if start < text.len() {
            self.split_regex(&text[start..], out)?;
        }
        Ok(())
    }

    fn split_regex<'a>(&self, text: &'a str, out: &mut Vec<&'a str>) -> Result<(), TokenizerError> {
        let mut last = 0;
        for m in self.regex.find_iter(text) {
            let m = m.map_err(|e| TokenizerError::Regex {
                pattern: self.kind.pattern().to_owned(),
                message: e.to_string(),
            })?;
            if m.start() == m.end() {
                continue;
            }
            if m.start() > last {
                out.push(&text[last..m.start()]);
            }
            out.push(m.as_str());
            last = m.end();
        }
        if last < text.len() {
            out.push(&text[last..]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt2_split() {
        let p = PreTokenizer::Gpt2.split("Hello world's  1984!!").unwrap();
        assert_eq!(p, vec!["Hello", " world", "'s", " ", " 1984", "!!"]);
    }

    #[test]
    fn smollm_isolates_digits() {
        let p = PreTokenizer::SmolLm.split("x  1984").unwrap();
        assert_eq!(p, vec!["x", "  ", "1", "9", "8", "4"]);
    }

    #[test]
    fn llama3_groups_three_digits() {
        let p = PreTokenizer::Llama3.split("12345 I'M").unwrap();
        assert_eq!(p, vec!["123", "45", " I", "'M"]);
    }

    #[test]
    fn unknown_gguf_name_lists_supported() {
        let e = PreTokenizer::from_gguf_pre("nope").unwrap_err().to_string();
        assert!(
            e.contains("nope") && e.contains("smollm") && e.contains("llama-bpe"),
            "{e}"
        );
    }
}
