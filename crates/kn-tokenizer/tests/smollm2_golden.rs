//! SmolLM2 byte-level BPE against Hugging Face reference ids (fixtures/golden/smollm2_tokens.json,
//! written by scripts/reference/make_tokenizer_fixtures.py), through both ways in: the
//! `tokenizer.json` (`HfTokenizer::from_file`) and GGUF metadata (`byte_level_from_gguf_metadata`).

mod common;

use common::{fixture, ids, read_json, smollm2, smollm2_gguf_like_metadata};
use kn_tokenizer::{byte_level_from_gguf_metadata, Tokenizer};
use serde_json::Value;

fn golden() -> Value {
    read_json("golden/smollm2_tokens.json")
}

/// Compares every case; returns the mismatch descriptions.
fn mismatches(tok: &dyn Tokenizer, golden: &Value) -> Vec<String> {
    let mut bad = Vec::new();
    for case in golden["cases"].as_array().expect("cases") {
        let prompt = case["prompt"].as_str().expect("prompt");
        let answer = case["answer"].as_str().expect("answer");
        for (text, want) in [
            (prompt, ids(&case["prompt_ids"])),
            (answer, ids(&case["answer_ids"])),
        ] {
            match tok.encode(text) {
                Ok(got) if got == want => {}
                Ok(got) => bad.push(format!("{text:?}: got {got:?}, want {want:?}")),
                Err(e) => bad.push(format!("{text:?}: error {e}")),
            }
        }
        let want_decoded = case["decoded"].as_str().expect("decoded");
        match tok.decode(&ids(&case["prompt_ids"])) {
            Ok(d) if d == want_decoded => {}
            Ok(d) => bad.push(format!(
                "decode of {prompt:?}: got {d:?}, want {want_decoded:?}"
            )),
            Err(e) => bad.push(format!("decode of {prompt:?}: error {e}")),
        }
    }
    bad
}

#[test]
fn fixture_has_enough_pararel_prompts_and_names_its_reference() {
    let g = golden();
    let cases = g["cases"].as_array().expect("cases");
    let pararel = cases.iter().filter(|c| c["kind"] == "pararel").count();
    assert!(pararel >= 600, "only {pararel} PARAREL prompts");
    assert!(g["reference"]["used"].is_string());
}

#[test]
fn hugging_face_tokenizers_crate_matches_the_python_package_on_all_prompts() {
    let tok = kn_tokenizer::HfTokenizer::from_file(&fixture(common::SMOLLM2_JSON)).expect("load");
    assert_eq!(tok.vocab_size(), 49152);
    assert_eq!(tok.token_to_id("<|im_start|>"), Some(1));
    assert_eq!(tok.id_to_token(1), Some("<|im_start|>"));
    assert_eq!(tok.encode("<|im_end|>").unwrap(), vec![2]);
    assert!(tok.decode(&[49152]).is_err());
    let bad = mismatches(&tok, &golden());
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn from_gguf_metadata_matches_hugging_face_on_all_prompts() {
    let (tokens, merges, types) = smollm2_gguf_like_metadata();
    let tok = byte_level_from_gguf_metadata(
        &tokens,
        &merges,
        Some(&types),
        "smollm",
        std::path::Path::new("smollm2.gguf"),
    )
    .expect("build from metadata");
    assert_eq!(tok.vocab_size(), 49152);
    // Every control token stays whole.
    for (id, token) in tokens.iter().enumerate().filter(|&(id, _)| types[id] == 3) {
        assert_eq!(tok.encode(token).unwrap(), [id as u32], "{token}");
    }
    let bad = mismatches(&tok, &golden());
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn special_tokens_and_vocab_lookups() {
    let tok = smollm2();
    assert_eq!(tok.token_to_id("<|im_start|>"), Some(1));
    assert_eq!(tok.id_to_token(1), Some("<|im_start|>"));
    assert_eq!(tok.encode("<|im_end|>").unwrap(), vec![2]);
    assert_eq!(tok.id_to_token(49152), None);
    let ids = tok.encode(" Paris").unwrap();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(tok.id_to_token(ids[0]), Some("ĠParis"));
}
