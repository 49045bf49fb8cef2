//! What the two GGUF tokenizer builders ([`crate::gguf_bpe`], [`crate::sentencepiece`]) share:
//! the vocabulary as transformers' GGUF loader reads it, the added tokens the file's token
//! types mark, and the `tokenizer.json` document both hand to Hugging Face's `tokenizers`.

use crate::error::TokenizerError;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// GGUF token type of control tokens (`<bos>`, `<|im_start|>`).
pub(crate) const CONTROL: i64 = 3;
/// GGUF token type of user-defined tokens (`<think>`).
pub(crate) const USER_DEFINED: i64 = 4;

/// Python's `{token: index for index, token in enumerate(tokens)}`: the last index of a repeated
/// token wins, its first appearance keeps its place in the iteration `order`.
pub(crate) struct Vocabulary<'a> {
    pub(crate) ids: HashMap<&'a str, usize>,
    pub(crate) order: Vec<&'a str>,
}

impl<'a> Vocabulary<'a> {
    pub(crate) fn new(tokens: &'a [String]) -> Result<Self, TokenizerError> {
        if tokens.is_empty() {
            return Err(TokenizerError::EmptyVocab);
        }
        let mut ids: HashMap<&str, usize> = HashMap::with_capacity(tokens.len());
        let mut order: Vec<&str> = Vec::with_capacity(tokens.len());
        for (index, token) in tokens.iter().enumerate() {
            if ids.insert(token.as_str(), index).is_none() {
                order.push(token.as_str());
            }
        }
        Ok(Self { ids, order })
    }

    /// The `"vocab"` object of a `tokenizer.json` model, in Python's dictionary order.
    pub(crate) fn to_json(&self) -> Map<String, Value> {
        self.order
            .iter()
            .map(|&token| (token.to_string(), json!(self.ids[token])))
            .collect()
    }
}

/// Checks that there is one token type per token.
pub(crate) fn check_token_types(
    tokens: &[String],
    token_types: Option<&[i64]>,
) -> Result<(), TokenizerError> {
    match token_types {
        Some(types) if types.len() != tokens.len() => Err(TokenizerError::TokenTypesLength {
            tokens: tokens.len(),
            types: types.len(),
        }),
        _ => Ok(()),
    }
}

/// The `added_tokens` of a `tokenizer.json`: control tokens (type 3) as special tokens and
/// user-defined ones (type 4) as plain added tokens, so both stay whole in the text, as
/// transformers' `add_gguf_special_tokens` adds them; `keep` may pass over some.
pub(crate) fn added_tokens(
    tokens: &[String],
    token_types: Option<&[i64]>,
    keep: impl Fn(&str, i64) -> bool,
) -> Vec<Value> {
    let Some(types) = token_types else {
        return Vec::new();
    };
    tokens
        .iter()
        .zip(types)
        .enumerate()
        .filter(|(_, (token, &kind))| {
            (kind == CONTROL || kind == USER_DEFINED) && keep(token, kind)
        })
        .map(|(id, (token, &kind))| {
            json!({
                "id": id, "content": token, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": kind == CONTROL,
            })
        })
        .collect()
}

/// A whole `tokenizer.json` document around its parts.
pub(crate) fn tokenizer_document(
    added_tokens: Vec<Value>,
    normalizer: Value,
    pre_tokenizer: Value,
    decoder: Value,
    model: Value,
) -> String {
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added_tokens,
        "normalizer": normalizer,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": null,
        "decoder": decoder,
        "model": model,
    })
    .to_string()
}
