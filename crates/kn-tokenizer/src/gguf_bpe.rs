//! Byte-level BPE vocabularies from GGUF metadata (`tokenizer.ggml.model = "gpt2"`: GPT-2,
//! SmolLM2, Llama 3, Qwen2 / Qwen2.5 / Qwen3 files), turned into the tokenizer transformers'
//! GGUF loader builds from the same file (`gguf_tokenizer_mapping.byte_level_tokenizer`,
//! `add_gguf_special_tokens`, `set_split_regex`) and run by Hugging Face's `tokenizers`
//! ([`HfTokenizer`]):
//!
//! - the vocabulary by id, a token written outside the byte-level alphabet respelled in it
//!   (a mislabelled token such as `<｜begin▁of▁sentence｜>`), the merges as the file lists them;
//! - the pre-tokenizer named by `tokenizer.ggml.pre` ([`PreTokenizer::from_gguf_pre`]; the one
//!   departure from transformers is SmolLM's digit split, which its own `tokenizer.json` has);
//! - control tokens (type 3) in the alphabet as special added tokens, user-defined ones (type 4)
//!   as plain added tokens, so both stay whole in the text;
//! - the `ByteLevel` decoder; no normalizer.

use crate::byte_level::{byte_level_encode, char_to_byte_map};
use crate::error::TokenizerError;
use crate::gguf_vocab::{added_tokens, check_token_types, tokenizer_document, Vocabulary};
use crate::hf::HfTokenizer;
use crate::pretokenizer::PreTokenizer;
use serde_json::{json, Value};
use std::path::Path;

/// The tokenizer of a GGUF file's byte-level BPE metadata: `tokenizer.ggml.tokens` (by id),
/// `tokenizer.ggml.merges` (`"left right"`, best first), `tokenizer.ggml.token_type` and
/// `tokenizer.ggml.pre`; `origin` names the file in errors.
///
/// # Errors
/// [`TokenizerError::EmptyVocab`], [`TokenizerError::TokenTypesLength`],
/// [`TokenizerError::UnknownPreTokenizer`], [`TokenizerError::MalformedMerge`] and
/// [`TokenizerError::MergeUnknownToken`] (a merge whose pieces or result are not tokens).
pub fn byte_level_from_gguf_metadata(
    tokens: &[String],
    merges: &[String],
    token_types: Option<&[i64]>,
    pre_name: &str,
    origin: &Path,
) -> Result<HfTokenizer, TokenizerError> {
    check_token_types(tokens, token_types)?;
    let pre = PreTokenizer::from_gguf_pre(pre_name)?;
    let alphabet = char_to_byte_map();
    let in_alphabet = |token: &str| token.chars().all(|c| alphabet.contains_key(&c));
    let spelled: Vec<String> = tokens
        .iter()
        .map(|t| {
            if in_alphabet(t) {
                t.clone()
            } else {
                byte_level_encode(t)
            }
        })
        .collect();
    let vocabulary = Vocabulary::new(&spelled)?;
    let mut pairs = Vec::with_capacity(merges.len());
    for (index, merge) in merges.iter().enumerate() {
        let malformed = || TokenizerError::MalformedMerge {
            index,
            merge: merge.clone(),
        };
        let (left, right) = merge.split_once(' ').ok_or_else(malformed)?;
        if left.is_empty() || right.is_empty() || right.contains(' ') {
            return Err(malformed());
        }
        for piece in [
            left.to_string(),
            right.to_string(),
            format!("{left}{right}"),
        ] {
            if !vocabulary.ids.contains_key(piece.as_str()) {
                return Err(TokenizerError::MergeUnknownToken {
                    index,
                    merge: merge.clone(),
                    token: piece,
                });
            }
        }
        pairs.push(json!([left, right]));
    }
    let added = added_tokens(tokens, token_types, |token, kind| {
        if kind == crate::gguf_vocab::CONTROL {
            in_alphabet(token)
        } else {
            vocabulary.ids.contains_key(token)
        }
    });
    let document = tokenizer_document(
        added,
        Value::Null,
        pre.to_tokenizer_json(),
        json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true,
               "use_regex": true}),
        json!({
            "type": "BPE", "dropout": null, "unk_token": null,
            "continuing_subword_prefix": null, "end_of_word_suffix": null,
            "fuse_unk": false, "byte_fallback": false, "ignore_merges": pre.ignore_merges(),
            "vocab": vocabulary.to_json(),
            "merges": pairs,
        }),
    );
    HfTokenizer::from_checked_json_str(&document, origin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tokenizer;

    /// Every byte symbol, then a few merged words and control tokens.
    fn tiny() -> (Vec<String>, Vec<String>, Vec<i64>) {
        let mut tokens: Vec<String> = ["<|endoftext|>", "<|im_start|>"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut types = vec![3, 3];
        for &c in crate::byte_level::byte_to_char_table() {
            tokens.push(c.to_string());
            types.push(1);
        }
        for word in ["Ġc", "Ġca", "Ġcap", "12", "123"] {
            tokens.push(word.to_string());
            types.push(1);
        }
        let merges = ["Ġ c", "Ġc a", "Ġca p", "1 2", "12 3"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        (tokens, merges, types)
    }

    fn id(tokens: &[String], token: &str) -> u32 {
        tokens.iter().position(|t| t == token).unwrap() as u32
    }

    #[test]
    fn pre_tokenizers_decide_how_digits_merge() {
        let (tokens, merges, types) = tiny();
        let build = |pre: &str| {
            byte_level_from_gguf_metadata(&tokens, &merges, Some(&types), pre, Path::new("t"))
                .unwrap()
        };
        // GPT-2's and Llama 3's regexes keep "123" one word; Qwen2 and SmolLM cut every digit.
        assert_eq!(build("gpt2").encode("123").unwrap(), [id(&tokens, "123")]);
        assert_eq!(
            build("llama-bpe").encode("1234").unwrap(),
            [id(&tokens, "123"), id(&tokens, "4")]
        );
        let digits: Vec<u32> = ["1", "2", "3"].iter().map(|d| id(&tokens, d)).collect();
        assert_eq!(build("qwen2").encode("123").unwrap(), digits);
        assert_eq!(build("smollm").encode("123").unwrap(), digits);
        let qwen = build("qwen2");
        let ids = qwen.encode("<|im_start|> cap").unwrap();
        assert_eq!(ids, [1, id(&tokens, "Ġcap")]);
        assert_eq!(qwen.decode(&ids).unwrap(), "<|im_start|> cap");
    }

    #[test]
    fn malformed_metadata_is_an_error() {
        let (tokens, merges, types) = tiny();
        let build = |tokens: &[String], merges: &[String], types: &[i64]| {
            byte_level_from_gguf_metadata(tokens, merges, Some(types), "qwen2", Path::new("t"))
                .unwrap_err()
        };
        assert!(matches!(
            build(&tokens, &merges, &types[1..]),
            TokenizerError::TokenTypesLength { .. }
        ));
        assert!(matches!(build(&[], &[], &[]), TokenizerError::EmptyVocab));
        for bad in ["Ġca", "Ġ  c", " c"] {
            let merges = vec![bad.to_string()];
            assert!(
                matches!(
                    build(&tokens, &merges, &types),
                    TokenizerError::MalformedMerge { .. }
                ),
                "{bad:?}"
            );
        }
        // "Ġcap" + "3" is not a token.
        let merges = vec!["Ġcap 3".to_string()];
        match build(&tokens, &merges, &types) {
            TokenizerError::MergeUnknownToken { token, .. } => assert_eq!(token, "Ġcap3"),
            other => panic!("{other:?}"),
        }
    }
}
