//! Property tests: byte-level BPE round-trips arbitrary Unicode, encode never panics, pre-token
//! pieces cover the input, WordPiece never panics.

mod common;

use std::sync::OnceLock;

use common::{fixture, smollm2, smollm2_gguf_like_metadata};
use kn_tokenizer::byte_level::byte_to_char_table;
use kn_tokenizer::{ByteLevelBpe, PreTokenizer, Tokenizer, WordPiece};
use proptest::prelude::*;

/// SmolLM2's vocabulary plus the 21 byte symbols it lacks, so every byte is representable and
/// decode(encode(s)) == s must hold exactly.
fn full_coverage(pre: PreTokenizer) -> ByteLevelBpe {
    let (mut tokens, merges, types) = smollm2_gguf_like_metadata();
    let specials: Vec<String> = tokens
        .iter()
        .zip(&types)
        .filter(|(_, &t)| t == 3)
        .map(|(s, _)| s.clone())
        .collect();
    for c in byte_to_char_table() {
        let s = c.to_string();
        if !tokens.contains(&s) {
            tokens.push(s);
        }
    }
    let tok = ByteLevelBpe::new(tokens, merges, specials, pre).expect("full-coverage tokenizer");
    assert!(tok.missing_bytes().is_empty());
    tok
}

fn full_smollm() -> &'static ByteLevelBpe {
    static T: OnceLock<ByteLevelBpe> = OnceLock::new();
    T.get_or_init(|| full_coverage(PreTokenizer::SmolLm))
}
fn full_gpt2() -> &'static ByteLevelBpe {
    static T: OnceLock<ByteLevelBpe> = OnceLock::new();
    T.get_or_init(|| full_coverage(PreTokenizer::Gpt2))
}
fn full_llama3() -> &'static ByteLevelBpe {
    static T: OnceLock<ByteLevelBpe> = OnceLock::new();
    T.get_or_init(|| full_coverage(PreTokenizer::Llama3))
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
        for tok in [full_smollm(), full_gpt2(), full_llama3()] {
            let ids = tok.encode(&s).expect("encode");
            prop_assert_eq!(tok.decode(&ids).expect("decode"), s.clone(), "{:?}", tok.pre_tokenizer());
        }
    }

    #[test]
    fn smollm2_round_trips_up_to_unrepresentable_bytes(s in text()) {
        let tok = smollm2();
        let ids = tok.encode(&s).expect("encode");
        prop_assert!(ids.iter().all(|&i| (i as usize) < tok.vocab_size()));
        prop_assert_eq!(&tok.encode(&s).expect("encode twice"), &ids, "cache must not change results");
        let missing = tok.missing_bytes();
        let kept: Vec<u8> = s.bytes().filter(|b| !missing.contains(b)).collect();
        prop_assert_eq!(tok.decode(&ids).expect("decode"), String::from_utf8_lossy(&kept).into_owned());
    }

    #[test]
    fn pre_token_pieces_cover_the_input(s in text()) {
        for pre in [PreTokenizer::Gpt2, PreTokenizer::SmolLm, PreTokenizer::Llama3] {
            let pieces = pre.split(&s).expect("split");
            prop_assert!(pieces.iter().all(|p| !p.is_empty()));
            prop_assert_eq!(pieces.concat(), s.clone());
        }
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
