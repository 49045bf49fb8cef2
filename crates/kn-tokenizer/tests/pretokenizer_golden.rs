//! Byte-level BPE from GGUF metadata under each pre-tokenizer family, against `tokenizers` ids
//! over the SmolLM2 vocabulary (fixtures/tokenizer/pretokenizer_golden.json, written by
//! scripts/reference/make_tokenizer_fixtures.py): GPT-2's `ByteLevel` regex, Llama 3's split
//! with `ignore_merges`, and Qwen2's split as transformers' own GGUF loader builds it.

mod common;

use common::{ids, read_json, smollm2_gguf_like_metadata};
use kn_tokenizer::{HfTokenizer, Tokenizer, GPT2_PATTERN, LLAMA3_PATTERN, QWEN2_PATTERN};
use serde_json::Value;

fn golden() -> Value {
    let g = read_json("tokenizer/pretokenizer_golden.json");
    assert_eq!(g["gpt2_pattern"], GPT2_PATTERN);
    assert_eq!(g["llama3_pattern"], LLAMA3_PATTERN);
    assert_eq!(g["qwen2_pattern"], QWEN2_PATTERN);
    g
}

fn smollm2_vocabulary_with(pre: &str) -> HfTokenizer {
    let (tokens, merges, types) = smollm2_gguf_like_metadata();
    common::gguf_byte_level(&tokens, &merges, &types, pre)
}

fn check_ids(tok: &HfTokenizer, key: &str) {
    let golden = golden();
    let rows = golden["rows"].as_array().expect("rows");
    assert!(rows.len() > 80, "{} rows", rows.len());
    let mut bad = Vec::new();
    for row in rows {
        let text = row["text"].as_str().expect("text");
        let want = ids(&row[key]);
        match tok.encode(text) {
            Ok(got) if got == want => {}
            Ok(got) => bad.push(format!("{text:?}: got {got:?}, want {want:?}")),
            Err(e) => bad.push(format!("{text:?}: error {e}")),
        }
    }
    assert!(
        bad.is_empty(),
        "{key}: {} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn gpt2_pre_tokenizer_matches_tokenizers_ids() {
    check_ids(&smollm2_vocabulary_with("gpt2"), "ids_gpt2_pre");
}

#[test]
fn llama3_pre_tokenizer_with_ignore_merges_matches_tokenizers_ids() {
    check_ids(
        &smollm2_vocabulary_with("llama-bpe"),
        "ids_llama3_pre_ignore_merges",
    );
}

#[test]
fn qwen2_pre_tokenizer_matches_transformers_gguf_loader() {
    check_ids(&smollm2_vocabulary_with("qwen2"), "ids_qwen2_pre");
}

#[test]
fn the_families_really_differ_on_the_golden_strings() {
    // Otherwise the tests above could not tell a wrong mapping of names from a right one.
    let golden = golden();
    let rows = golden["rows"].as_array().expect("rows");
    let differ = |a: &str, b: &str| rows.iter().filter(|r| r[a] != r[b]).count();
    // (Llama 3 and Qwen2 differ on runs of digits only, which SmolLM2's vocabulary never merges:
    // the unit test `gguf_bpe::pre_tokenizers_decide_how_digits_merge` tells them apart.)
    assert!(differ("ids_gpt2_pre", "ids_qwen2_pre") >= 5);
    assert!(differ("ids_gpt2_pre", "ids_llama3_pre_ignore_merges") >= 5);
}
