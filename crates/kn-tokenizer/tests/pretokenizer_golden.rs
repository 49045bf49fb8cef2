//! Pre-tokenizers (GPT-2, SmolLM, Llama 3) against `tokenizers`' `pre_tokenize_str`, and the
//! GPT-2 / Llama-3 (ignore_merges) pipelines over the SmolLM2 vocabulary against `tokenizers`
//! ids (fixtures/tokenizer/pretokenizer_golden.json), including loading those pipelines from
//! tokenizer.json variants.

mod common;

use common::{ids, read_json, smollm2_gguf_like_metadata, smollm2_json, temp_file};
use kn_tokenizer::byte_level::byte_level_encode;
use kn_tokenizer::{ByteLevelBpe, PreTokenizer, Tokenizer, GPT2_PATTERN, LLAMA3_PATTERN};
use serde_json::{json, Value};

fn rows() -> Vec<Value> {
    let g = read_json("tokenizer/pretokenizer_golden.json");
    assert_eq!(g["gpt2_pattern"], GPT2_PATTERN);
    assert_eq!(g["llama3_pattern"], LLAMA3_PATTERN);
    g["rows"].as_array().expect("rows").clone()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("str").to_owned())
        .collect()
}

#[test]
fn splits_match_tokenizers() {
    let mut bad = Vec::new();
    for (name, pre) in [
        ("gpt2", PreTokenizer::Gpt2),
        ("smollm", PreTokenizer::SmolLm),
        ("llama3", PreTokenizer::Llama3),
    ] {
        let compiled = pre.compile().expect("compile");
        for row in rows() {
            let text = row["text"].as_str().expect("text");
            let want = strings(&row[name]);
            let pieces = compiled.split(text).expect("split");
            assert_eq!(pieces.concat(), text, "pieces must cover the text");
            let got: Vec<String> = pieces.iter().map(|p| byte_level_encode(p)).collect();
            if got != want {
                bad.push(format!("{name} {text:?}: got {got:?}, want {want:?}"));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

fn check_ids(tok: &ByteLevelBpe, key: &str) {
    let mut bad = Vec::new();
    for row in rows() {
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
fn gpt2_and_llama3_pipelines_match_tokenizers_ids() {
    let (tokens, merges, types) = smollm2_gguf_like_metadata();
    let gpt2 = ByteLevelBpe::from_gguf_metadata(
        tokens.clone(),
        merges.clone(),
        Some(types.clone()),
        "gpt2",
    )
    .expect("gpt2");
    assert!(!gpt2.ignore_merges());
    check_ids(&gpt2, "ids_gpt2_pre");
    let llama = ByteLevelBpe::from_gguf_metadata(tokens, merges, Some(types), "llama-bpe")
        .expect("llama-bpe");
    assert!(llama.ignore_merges());
    check_ids(&llama, "ids_llama3_pre_ignore_merges");
}

fn with_changes(f: impl FnOnce(&mut Value)) -> Value {
    let mut j = smollm2_json().clone();
    f(&mut j);
    j
}

#[test]
fn tokenizer_json_with_llama3_split_and_pair_merges() {
    let j = with_changes(|j| {
        j["pre_tokenizer"] = json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_PATTERN}, "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
        ]});
        j["model"]["ignore_merges"] = json!(true);
        // Merges as [a, b] pairs (the newer tokenizer.json format).
        let pairs: Vec<Value> = j["model"]["merges"]
            .as_array()
            .expect("merges")
            .iter()
            .map(|m| {
                let (a, b) = m
                    .as_str()
                    .expect("string merge")
                    .split_once(' ')
                    .expect("space");
                json!([a, b])
            })
            .collect();
        j["model"]["merges"] = Value::Array(pairs);
    });
    let path = temp_file("llama3-style.json", &j.to_string());
    let tok = ByteLevelBpe::from_tokenizer_json(&path).expect("load llama3-style json");
    assert_eq!(tok.pre_tokenizer(), &PreTokenizer::Llama3);
    assert!(tok.ignore_merges());
    check_ids(&tok, "ids_llama3_pre_ignore_merges");
}

#[test]
fn tokenizer_json_with_plain_byte_level_is_gpt2() {
    let j = with_changes(|j| {
        j["pre_tokenizer"] = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
    });
    let tok =
        ByteLevelBpe::from_tokenizer_json_str(&j.to_string(), std::path::Path::new("<memory>"))
            .expect("load");
    assert_eq!(tok.pre_tokenizer(), &PreTokenizer::Gpt2);
    check_ids(&tok, "ids_gpt2_pre");
}
