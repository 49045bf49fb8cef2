//! BERT WordPiece tokenization, via `rust_tokenizers`' `BertTokenizer`.
//!
//! The vocabulary file is read here (one token per line, id = line number, a later duplicate
//! wins for token -> id, exactly like `transformers`' `load_vocab`), checked, and handed to
//! `rust_tokenizers` with the special tokens that are present registered, so that `[MASK]`,
//! `[SEP]`, ... written in the text map to their ids. [`Tokenizer::encode`] returns the ids
//! without `[CLS]` / `[SEP]`; the model layer adds them using [`WordPiece::cls_id`] and
//! [`WordPiece::sep_id`].
//!
//! Tested against `transformers.BertTokenizer` (cased and uncased) in `tests/wordpiece_golden.rs`.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use rust_tokenizers::tokenizer::{BertTokenizer, Tokenizer as _};
use rust_tokenizers::vocab::{BertVocab, Vocab};

use crate::error::TokenizerError;
use crate::Tokenizer;

/// The unknown token; it must be in the vocabulary.
pub const UNK_TOKEN: &str = "[UNK]";
/// The classification token prepended by BERT.
pub const CLS_TOKEN: &str = "[CLS]";
/// The separator token appended by BERT.
pub const SEP_TOKEN: &str = "[SEP]";
/// The mask token of masked language modelling.
pub const MASK_TOKEN: &str = "[MASK]";
/// The padding token.
pub const PAD_TOKEN: &str = "[PAD]";

/// A BERT WordPiece tokenizer.
pub struct WordPiece {
    inner: BertTokenizer,
    vocab: HashMap<String, u32>,
    id_to_token: Vec<String>,
    path: PathBuf,
    lowercase: bool,
    strip_accents: bool,
    unk: u32,
    cls: Option<u32>,
    sep: Option<u32>,
    mask: Option<u32>,
    pad: Option<u32>,
}

impl std::fmt::Debug for WordPiece {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WordPiece")
            .field("path", &self.path)
            .field("vocab_size", &self.id_to_token.len())
            .field("lowercase", &self.lowercase)
            .field("strip_accents", &self.strip_accents)
            .finish_non_exhaustive()
    }
}

impl WordPiece {
    /// Loads a BERT `vocab.txt`.
    ///
    /// `lowercase` / `strip_accents` correspond to `do_lower_case` / `strip_accents` of
    /// `transformers.BertTokenizer` (which, for uncased models, strips accents too: pass
    /// `(true, true)` for uncased and `(false, false)` for cased models).
    ///
    /// `[UNK]` must be in the vocabulary; `[CLS]`, `[SEP]`, `[MASK]` and `[PAD]` are registered
    /// as special tokens when present (see [`cls_id`](Self::cls_id) etc.).
    ///
    /// # Errors
    /// [`TokenizerError::Io`] if the file cannot be read, [`TokenizerError::WordPieceVocab`] if it
    /// is empty or not UTF-8, [`TokenizerError::MissingSpecialToken`] without `[UNK]`.
    pub fn from_vocab_file(
        path: &Path,
        lowercase: bool,
        strip_accents: bool,
    ) -> Result<Self, TokenizerError> {
        let bytes = std::fs::read(path).map_err(|source| TokenizerError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| TokenizerError::WordPieceVocab {
            path: path.to_path_buf(),
            reason: format!("not UTF-8 (byte offset {})", e.utf8_error().valid_up_to()),
        })?;
        let id_to_token: Vec<String> = text
            .split_inclusive('\n')
            .map(|line| {
                let line = line.strip_suffix('\n').unwrap_or(line);
                line.strip_suffix('\r').unwrap_or(line).to_owned()
            })
            .collect();
        if id_to_token.is_empty() {
            return Err(TokenizerError::WordPieceVocab {
                path: path.to_path_buf(),
                reason: "the vocabulary is empty".into(),
            });
        }
        let vocab: HashMap<String, u32> = id_to_token
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let id = |t: &str| vocab.get(t).copied();
        let unk = id(UNK_TOKEN).ok_or_else(|| TokenizerError::MissingSpecialToken {
            token: UNK_TOKEN.to_owned(),
            location: Some(path.to_path_buf()),
        })?;
        let present = |t: &str| vocab.contains_key(t).then(|| t.to_owned());
        // `rust_tokenizers` does not export the name of its special-token map type (it lives in
        // a private module), but the type implements `Deserialize`: build it from JSON and let
        // type inference name it.
        let special_map = serde_json::json!({
            "unk_token": UNK_TOKEN,
            "pad_token": present(PAD_TOKEN),
            "bos_token": null,
            "sep_token": present(SEP_TOKEN),
            "cls_token": present(CLS_TOKEN),
            "eos_token": null,
            "mask_token": present(MASK_TOKEN),
            "additional_special_tokens": null,
        });
        let values: HashMap<String, i64> = vocab
            .iter()
            .map(|(t, &i)| (t.clone(), i64::from(i)))
            .collect();
        let bert_vocab = serde_json::from_value(special_map)
            .map_err(|e| e.to_string())
            .and_then(|map| {
                BertVocab::from_values_and_special_token_map(values, map).map_err(|e| e.to_string())
            })
            .map_err(|reason| TokenizerError::WordPieceVocab {
                path: path.to_path_buf(),
                reason,
            })?;
        let inner = BertTokenizer::from_existing_vocab(bert_vocab, lowercase, strip_accents);
        Ok(Self {
            inner,
            cls: id(CLS_TOKEN),
            sep: id(SEP_TOKEN),
            mask: id(MASK_TOKEN),
            pad: id(PAD_TOKEN),
            unk,
            vocab,
            id_to_token,
            path: path.to_path_buf(),
            lowercase,
            strip_accents,
        })
    }

    /// Id of `[CLS]`, if the vocabulary has it.
    pub fn cls_id(&self) -> Option<u32> {
        self.cls
    }

    /// Id of `[SEP]`, if the vocabulary has it.
    pub fn sep_id(&self) -> Option<u32> {
        self.sep
    }

    /// Id of `[MASK]`, if the vocabulary has it.
    pub fn mask_id(&self) -> Option<u32> {
        self.mask
    }

    /// Id of `[PAD]`, if the vocabulary has it.
    pub fn pad_id(&self) -> Option<u32> {
        self.pad
    }

    /// Id of `[UNK]` (always present).
    pub fn unk_id(&self) -> u32 {
        self.unk
    }

    /// Whether text is lower-cased before WordPiece.
    pub fn lowercase(&self) -> bool {
        self.lowercase
    }

    /// Whether accents are stripped before WordPiece.
    pub fn strip_accents(&self) -> bool {
        self.strip_accents
    }

    /// The WordPiece tokens of `text` (vocabulary strings, `##` continuation prefix included).
    ///
    /// # Errors
    /// [`TokenizerError::WordPiece`] if `rust_tokenizers` panics on the input.
    pub fn tokenize(&self, text: &str) -> Result<Vec<String>, TokenizerError> {
        catch_unwind(AssertUnwindSafe(|| self.inner.tokenize(text))).map_err(|payload| {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "panic in rust_tokenizers".to_owned());
            TokenizerError::WordPiece {
                text: text.chars().take(80).collect(),
                message,
            }
        })
    }
}

/// Hugging Face's WordPiece decoder clean-up, applied per token (after the joining space).
fn cleanup(s: &str) -> String {
    s.replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" do not", " don't")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
}

impl Tokenizer for WordPiece {
    fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        Ok(self
            .tokenize(text)?
            .iter()
            .map(|t| self.vocab.get(t).copied().unwrap_or(self.unk))
            .collect())
    }

    /// Decodes like `transformers.BertTokenizer.decode(ids)` (special tokens kept; a `##`
    /// continuation joins the previous token, other tokens are separated by a space, and a
    /// space before `.`, `,`, `?`, `!` tokens is dropped).
    fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        let mut out = String::new();
        for (i, &id) in ids.iter().enumerate() {
            let tok = self.id_to_token(id).ok_or(TokenizerError::UnknownId {
                id: u64::from(id),
                vocab_size: self.vocab_size(),
            })?;
            let piece = if i == 0 {
                tok.to_owned()
            } else if let Some(rest) = tok.strip_prefix("##") {
                rest.to_owned()
            } else {
                format!(" {tok}")
            };
            out.push_str(&cleanup(&piece));
        }
        Ok(out)
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.vocab.get(token).copied()
    }

    fn id_to_token(&self, id: u32) -> Option<&str> {
        self.id_to_token
            .get(usize::try_from(id).ok()?)
            .map(String::as_str)
    }

    fn vocab_size(&self) -> usize {
        self.id_to_token.len()
    }
}
