//! Property tests: byte-level BPE from GGUF metadata round-trips arbitrary Unicode under every
//! pre-tokenizer, SmolLM2's tokenizer.json round-trips up to the bytes its vocabulary lacks,
//! encode never panics, WordPiece never panics.

mod common;

use std::sync::OnceLock;

use common::{fixture, smollm2, smollm2_gguf_like_metadata};
use kn_tokenizer::byte_level::byte_to_char_table;
use kn_tokenizer::{HfTokenizer, Tokenizer, WordPiece};
use proptest::prelude::*;

/// SmolLM2's vocabulary plus the 21 byte symbols it lacks, so every byte is representable and
/// decode(encode(s)) == s must hold exactly.
fn full_coverage(pre: &str) -> HfTokenizer {
    let (mut tokens, merges, mut types) = smollm2_gguf_like_metadata();
    for c in byte_to_char_table() {
        let s = c.to_string();
        if !tokens.contains(&s) {
            tokens.push(s);
            types.push(1);
        }
    }
    common::gguf_byte_level(&tokens, &merges, &types, pre)
}

/// The four pre-tokenizer families over the full-coverage vocabulary, built once.
fn full_coverage_tokenizers() -> &'static [(&'static str, HfTokenizer)] {
    static T: OnceLock<Vec<(&'static str, HfTokenizer)>> = OnceLock::new();
    T.get_or_init(|| {
        ["smollm", "gpt2", "llama-bpe", "qwen2"]
            .into_iter()
            .map(|pre| (pre, full_coverage(pre)))
            .collect()
    })
}

/// The bytes whose byte-level symbol SmolLM2's vocabulary lacks.
fn smollm2_missing_bytes() -> &'static [u8] {
    static M: OnceLock<Vec<u8>> = OnceLock::new();
    M.get_or_init(|| {
        (0..=255u8)
            .filter(|&b| {
                smollm2()
                    .token_to_id(&byte_to_char_table()[usize::from(b)].to_string())
                    .is_none()
            })
            .collect()
    })
}

fn wordpiece(cased: bool) -> &'static WordPiece {
    static C: OnceLock<WordPiece> = OnceLock::new();
    static U: OnceLock<WordPiece> = OnceLock::new();
    if cased {
        C.get_or_init(|| {
            WordPiece::from_vocab_file(&fixture("tokenizer/bert-vocab-cased.txt"), false, false)
                .expect("cased")
        })
    } else {
        U.get_or_init(|| {
            WordPiece::from_vocab_file(&fixture("tokenizer/bert-vocab-uncased.txt"), true, true)
                .expect("uncased")
        })
    }
}

/// Arbitrary Unicode, language-like text, and text interleaved with (partial) special tokens.
fn text() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9 '\\n\\t.,!?éüß東京😀\\u{301}]{0,40}",
        Just("<|im_start|>".to_owned()),
        Just("<|im_end|>".to_owned()),
        Just("<|im_".to_owned()),
        Just("<|endoftext|>".to_owned()),
        Just("[MASK]".to_owned()),
        Just("  ".to_owned()),
        Just("1984".to_owned()),
    ];
    prop::collection::vec(fragment, 0..6).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn full_coverage_bpe_round_trips(s in text()) {
        for (pre, tok) in full_coverage_tokenizers() {
            let ids = tok.encode(&s).expect("encode");
            prop_assert_eq!(tok.decode(&ids).expect("decode"), s.clone(), "{}", pre);
        }
    }

    #[test]
    fn smollm2_round_trips_up_to_unrepresentable_bytes(s in text()) {
        let tok = smollm2();
        let ids = tok.encode(&s).expect("encode");
        prop_assert!(ids.iter().all(|&i| (i as usize) < tok.vocab_size()));
        let missing = smollm2_missing_bytes();
        prop_assert_eq!(missing.len(), 21);
        let kept: Vec<u8> = s.bytes().filter(|b| !missing.contains(b)).collect();
        prop_assert_eq!(tok.decode(&ids).expect("decode"), String::from_utf8_lossy(&kept).into_owned());
    }

    #[test]
    fn wordpiece_never_panics(s in text()) {
        for cased in [true, false] {
            let tok = wordpiece(cased);
            let ids = tok.encode(&s).expect("encode");
            prop_assert!(ids.iter().all(|&i| (i as usize) < tok.vocab_size()));
            tok.decode(&ids).expect("decode");
        }
    }
}
