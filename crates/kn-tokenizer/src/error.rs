//! The error type shared by every tokenizer in this crate.
//!
//! Each variant names the file, token, merge line or id involved, so that a failure to load a
//! model's tokenizer can be traced back to the offending input without a debugger.

use std::path::PathBuf;

/// Everything that can go wrong while building a tokenizer or encoding / decoding with it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// Hugging Face's `tokenizers` refused a `tokenizer.json` or failed to encode.
    #[error("{path}: {reason}")]
    HuggingFace {
        /// The file (or the text's origin).
        path: PathBuf,
        /// The library's message.
        reason: String,
    },

    /// The vocabulary has no tokens.
    #[error("the vocabulary is empty")]
    EmptyVocab,

    /// A merge rule is not of the form `"left right"` (exactly one space).
    #[error("merge #{index} ({merge:?}) is not of the form \"left right\"")]
    MalformedMerge {
        /// Zero-based position of the merge in the merge list (its rank).
        index: usize,
        /// The merge as given.
        merge: String,
    },

    /// A merge rule names a token (or produces a token) that is not in the vocabulary.
    #[error("merge #{index} ({merge:?}) names token {token:?}, which is not in the vocabulary")]
    MergeUnknownToken {
        /// Zero-based position of the merge in the merge list (its rank).
        index: usize,
        /// The merge as given.
        merge: String,
        /// The missing token (one side of the merge, or their concatenation).
        token: String,
    },

    /// A special token that the caller (or the tokenizer format) requires is not in the vocabulary.
    #[error("special token {token:?} is not in the vocabulary{}", location.as_ref().map(|p| format!(" of {}", p.display())).unwrap_or_default())]
    MissingSpecialToken {
        /// The token that is missing.
        token: String,
        /// The vocabulary file, when there is one.
        location: Option<PathBuf>,
    },

    /// An unknown `tokenizer.ggml.pre` name.
    #[error("unknown pre-tokenizer name {name:?}; supported: {supported}")]
    UnknownPreTokenizer {
        /// The name given.
        name: String,
        /// Comma-separated list of the supported names.
        supported: String,
    },

    /// `token_types` does not have one entry per token.
    #[error("token_types has {types} entries but there are {tokens} tokens")]
    TokenTypesLength {
        /// Number of tokens.
        tokens: usize,
        /// Number of token types.
        types: usize,
    },

    /// A token id does not fit the vocabulary (e.g. in `decode`), or an id given in a
    /// `tokenizer.json` is out of range / conflicting.
    #[error("token id {id} is not in the vocabulary (size {vocab_size})")]
    UnknownId {
        /// The offending id.
        id: u64,
        /// The vocabulary size.
        vocab_size: usize,
    },

    /// A WordPiece `vocab.txt` could not be used.
    #[error("WordPiece vocabulary {path}: {reason}")]
    WordPieceVocab {
        /// The vocabulary file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// The underlying `rust_tokenizers` BERT tokenizer reported an error or panicked.
    #[error("WordPiece tokenization of {text:?} failed: {message}")]
    WordPiece {
        /// The text being tokenized (truncated to 80 characters).
        text: String,
        /// The message from `rust_tokenizers`.
        message: String,
    },
}
