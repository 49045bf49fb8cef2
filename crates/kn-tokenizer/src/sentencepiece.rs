//! SentencePiece vocabularies from GGUF metadata, as Gemma's GGUF files carry them
//! (`tokenizer.ggml.model = "llama"`: tokens, scores and token types, byte-fallback tokens
//! `<0x00>`..`<0xFF>`, no merges), turned into the tokenizer transformers builds from the same
//! file (`integrations/gguf/gguf_tokenizer_mapping.py`, `gemma_tokenizer`), run by Hugging
//! Face's `tokenizers` ([`HfTokenizer`]):
//!
//! - tokens that are two or more real spaces are respelled with `▁` (Gemma stores them as spaces);
//! - the merges, which the file does not list, are rebuilt from the vocabulary
//!   (`tokenization_utils_base.generate_merges`): every split of a token into two tokens of the
//!   vocabulary, ranked by the token's position in the file (Gemma's scores do not follow its
//!   merge order), then by the left and right pieces' lengths;
//! - a BPE with byte fallback and `<unk>`, the normalizer `" " -> "▁"`, the pre-tokenizer
//!   `Split(" ", merged_with_previous)`, the decoder `▁ -> " "`, byte fallback, fuse;
//! - control tokens (type 3) as special added tokens, user-defined ones (type 4) as plain added
//!   tokens, so both stay whole in the text.

use crate::error::TokenizerError;
use crate::gguf_vocab::{added_tokens, check_token_types, tokenizer_document, Vocabulary};
use crate::hf::HfTokenizer;
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;

/// Gemma's tokenizer from GGUF metadata: `tokens` and `token_types` by id (see the module
/// docs); `origin` names the file in errors.
pub fn gemma_from_gguf_metadata(
    tokens: &[String],
    token_types: Option<&[i64]>,
    unk_id: Option<u32>,
    origin: &Path,
) -> Result<HfTokenizer, TokenizerError> {
    check_token_types(tokens, token_types)?;
    let respelled: Vec<String> = tokens
        .iter()
        .map(|t| {
            // Python: `"▁" * len(t) if " " in t and not t.strip() else t`.
            if t.contains(' ') && t.trim().is_empty() {
                "\u{2581}".repeat(t.chars().count())
            } else {
                t.clone()
            }
        })
        .collect();
    let vocabulary = Vocabulary::new(&respelled)?;
    let merges = generate_merges(&vocabulary.ids, &vocabulary.order);
    let unk = unk_id
        .and_then(|id| respelled.get(id as usize))
        .cloned()
        .unwrap_or_else(|| "<unk>".to_string());
    let document = tokenizer_document(
        added_tokens(tokens, token_types, |_, _| true),
        json!({"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"}),
        json!({"type": "Split", "pattern": {"String": " "},
               "behavior": "MergedWithPrevious", "invert": false}),
        json!({"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"}
        ]}),
        json!({
            "type": "BPE", "dropout": null, "unk_token": unk,
            "continuing_subword_prefix": null, "end_of_word_suffix": null,
            "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
            "vocab": vocabulary.to_json(),
            "merges": merges.iter().map(|(l, r)| json!([l, r])).collect::<Vec<_>>(),
        }),
    );
    HfTokenizer::from_checked_json_str(&document, origin)
}

/// transformers' `generate_merges(vocab, vocab_scores)` with Gemma's scores, the negated
/// position of each token: for each token (in `order`), its splits into two vocabulary tokens
/// sorted by the pieces' ids; then all of them by (score, left length, right length), highest
/// first, ties kept in order (Python's sort is stable under `reverse=True` too).
fn generate_merges<'a>(
    vocab: &HashMap<&'a str, usize>,
    order: &[&'a str],
) -> Vec<(&'a str, &'a str)> {
    struct Merge<'a> {
        left: &'a str,
        right: &'a str,
        score: i64,
        left_len: usize,
        right_len: usize,
    }
    let mut merges: Vec<Merge<'a>> = Vec::new();
    for &token in order {
        let score = -(vocab[token] as i64);
        let mut local: Vec<Merge<'a>> = token
            .char_indices()
            .skip(1)
            .filter_map(|(at, _)| {
                let (left, right) = token.split_at(at);
                let (l, r) = (vocab.get_key_value(left)?.0, vocab.get_key_value(right)?.0);
                Some(Merge {
                    left: l,
                    right: r,
                    score,
                    left_len: left.chars().count(),
                    right_len: right.chars().count(),
                })
            })
            .collect();
        local.sort_by_key(|m| (vocab[m.left], vocab[m.right]));
        merges.extend(local);
    }
    merges.sort_by(|a, b| {
        (b.score, b.left_len, b.right_len).cmp(&(a.score, a.left_len, a.right_len))
    });
    merges.into_iter().map(|m| (m.left, m.right)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tokenizer;

    fn tiny() -> (Vec<String>, Vec<i64>) {
        let mut tokens: Vec<String> = ["<pad>", "<eos>", "<bos>", "<unk>"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut types = vec![3, 3, 3, 2];
        for byte in 0..=255u8 {
            tokens.push(format!("<0x{byte:02X}>"));
            types.push(6);
        }
        for piece in [
            "a",
            "b",
            "c",
            "ab",
            "abc",
            "\u{2581}",
            "\u{2581}a",
            "  ",
            "<start_of_turn>",
        ] {
            tokens.push(piece.to_string());
            types.push(if piece == "<start_of_turn>" { 3 } else { 1 });
        }
        (tokens, types)
    }

    #[test]
    fn merges_follow_the_vocabulary_order_and_bytes_fall_back() {
        let (tokens, types) = tiny();
        let tok =
            gemma_from_gguf_metadata(&tokens, Some(&types), Some(3), Path::new("t.gguf")).unwrap();
        let id = |t: &str| tokens.iter().position(|x| x == t).unwrap() as u32;
        assert_eq!(tok.encode("abc").unwrap(), [id("abc")]);
        assert_eq!(tok.encode(" a").unwrap(), [id("\u{2581}a")]);
        // Two spaces are the respelled "▁▁" token.
        assert_eq!(tok.id_to_token(id("  ")), Some("\u{2581}\u{2581}"));
        // Not in the vocabulary: its UTF-8 bytes.
        assert_eq!(tok.encode("é").unwrap(), [4 + 0xC3, 4 + 0xA9]);
        assert_eq!(tok.decode(&tok.encode("ab é").unwrap()).unwrap(), "ab é");
        assert_eq!(
            tok.encode("<start_of_turn>a").unwrap(),
            [id("<start_of_turn>"), id("a")]
        );
    }

    #[test]
    fn mismatched_token_types_are_an_error() {
        let (tokens, types) = tiny();
        assert!(
            gemma_from_gguf_metadata(&tokens, Some(&types[1..]), None, Path::new("t")).is_err()
        );
    }
}
