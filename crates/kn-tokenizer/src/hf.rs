//! Any `tokenizer.json` through Hugging Face's own `tokenizers` crate: the same models,
//! normalizers, pre-tokenizers (with the same Oniguruma regexes) and decoders as the Python
//! package, so every family's tokenizer (byte-level BPE of GPT-2 / Llama 3 / Qwen, SentencePiece
//! BPE with byte fallback of Llama 2 / Gemma / Phi-3, Unigram, WordPiece) reads exactly as
//! transformers reads it.
//!
//! `encode` adds no special tokens (`add_special_tokens = false`), as the [`Tokenizer`] trait
//! asks; special-token strings written in the text still map to their ids.

use crate::error::TokenizerError;
use crate::Tokenizer;
use std::path::{Path, PathBuf};

/// The largest `tokenizer.json` read (Gemma-3's is 33 MB).
pub const MAX_TOKENIZER_JSON_BYTES: u64 = 256 << 20;

/// A `tokenizer.json` loaded by Hugging Face's `tokenizers`.
pub struct HfTokenizer {
    inner: tokenizers::Tokenizer,
    /// Every id's raw vocabulary string (for [`Tokenizer::id_to_token`], which lends `&str`).
    tokens: Vec<Option<String>>,
    origin: PathBuf,
}

impl HfTokenizer {
    /// Loads `path`.
    pub fn from_file(path: &Path) -> Result<Self, TokenizerError> {
        use std::io::Read;
        let file = std::fs::File::open(path).map_err(|source| TokenizerError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut text = String::new();
        file.take(MAX_TOKENIZER_JSON_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|source| TokenizerError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        if text.len() as u64 > MAX_TOKENIZER_JSON_BYTES {
            return Err(TokenizerError::HuggingFace {
                path: path.to_path_buf(),
                reason: format!(
                    "larger than {MAX_TOKENIZER_JSON_BYTES} bytes: not a tokenizer.json"
                ),
            });
        }
        Self::from_json_str(&text, path)
    }

    /// Parses the text of a `tokenizer.json`; `origin` names it in errors.
    pub fn from_json_str(json: &str, origin: &Path) -> Result<Self, TokenizerError> {
        // The library unwraps some syntax errors deep in its deserializers (a panic the fuzz
        // target found); plain JSON syntax is checked first, so those come back as errors.
        serde_json::from_str::<serde_json::Value>(json).map_err(|e| {
            TokenizerError::HuggingFace {
                path: origin.to_path_buf(),
                reason: format!("not valid JSON: {e}"),
            }
        })?;
        Self::from_checked_json_str(json, origin)
    }

    /// [`HfTokenizer::from_json_str`] of JSON known to be well formed (written by this crate).
    pub(crate) fn from_checked_json_str(json: &str, origin: &Path) -> Result<Self, TokenizerError> {
        let error = |reason: String| TokenizerError::HuggingFace {
            path: origin.to_path_buf(),
            reason,
        };
        // The library panics on some malformed inputs; no panic may cross this API.
        let inner = std::panic::catch_unwind(|| json.parse::<tokenizers::Tokenizer>())
            .map_err(|_| {
                error("the tokenizer.json is malformed (the tokenizers library panicked)".into())
            })?
            .map_err(|e| error(e.to_string()))?;
        // The largest id, not the number of tokens: a vocabulary with a repeated token has ids
        // without a string of their own.
        let vocab = inner.get_vocab(true);
        let size = vocab.values().map(|&id| id as usize + 1).max().unwrap_or(0);
        let mut tokens = vec![None; size];
        for (token, id) in vocab {
            if let Some(slot) = tokens.get_mut(id as usize) {
                *slot = Some(token);
            }
        }
        Ok(Self {
            inner,
            tokens,
            origin: origin.to_path_buf(),
        })
    }

    fn error(&self, reason: impl std::fmt::Display) -> TokenizerError {
        TokenizerError::HuggingFace {
            path: self.origin.clone(),
            reason: reason.to_string(),
        }
    }
}

impl std::fmt::Debug for HfTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HfTokenizer")
            .field("origin", &self.origin)
            .field("vocab_size", &self.tokens.len())
            .finish_non_exhaustive()
    }
}

impl Tokenizer for HfTokenizer {
    fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let encoding = std::panic::catch_unwind(|| self.inner.encode(text, false))
            .map_err(|_| self.error("the tokenizers library panicked while encoding"))?
            .map_err(|e| self.error(e))?;
        Ok(encoding.get_ids().to_vec())
    }

    fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= self.tokens.len()) {
            return Err(TokenizerError::UnknownId {
                id: u64::from(id),
                vocab_size: self.tokens.len(),
            });
        }
        self.inner.decode(ids, false).map_err(|e| self.error(e))
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    fn id_to_token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize)?.as_deref()
    }

    fn vocab_size(&self) -> usize {
        self.tokens.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fuzz target's find: a syntax error inside the decoder made the library panic.
    #[test]
    fn malformed_json_is_an_error_not_a_panic() {
        let seed = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/seeds/tokenizer_json/regress-decoder-syntax-panic.json");
        let text = String::from_utf8_lossy(&std::fs::read(&seed).unwrap()).into_owned();
        let error = HfTokenizer::from_json_str(&text, &seed).unwrap_err();
        assert!(error.to_string().contains("not valid JSON"), "{error}");
        for text in ["", "{", "[]", "{\"model\": 3}", "null"] {
            assert!(
                HfTokenizer::from_json_str(text, Path::new("t.json")).is_err(),
                "{text:?}"
            );
        }
    }
}
