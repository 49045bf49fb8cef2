//! Shared helpers for the integration tests: fixture paths and loaders.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use kn_tokenizer::{byte_level_from_gguf_metadata, HfTokenizer};
use serde_json::Value;

/// `<repo>/fixtures/<rel>`.
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(rel)
}

pub fn read_json(rel: &str) -> Value {
    let path = fixture(rel);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

pub const SMOLLM2_JSON: &str = "tokenizer/smollm2-tokenizer.json";

/// The SmolLM2 tokenizer from the committed tokenizer.json (loaded once per test binary).
pub fn smollm2() -> &'static HfTokenizer {
    static TOK: OnceLock<HfTokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        HfTokenizer::from_file(&fixture(SMOLLM2_JSON)).expect("load smollm2 tokenizer.json")
    })
}

/// The committed SmolLM2 tokenizer.json as a JSON value.
pub fn smollm2_json() -> &'static Value {
    static V: OnceLock<Value> = OnceLock::new();
    V.get_or_init(|| read_json(SMOLLM2_JSON))
}

pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("id array")
        .iter()
        .map(|x| u32::try_from(x.as_u64().expect("id")).expect("u32 id"))
        .collect()
}

/// (tokens by id, merges as "a b", token types as GGUF would give them) from the SmolLM2 JSON.
pub fn smollm2_gguf_like_metadata() -> (Vec<String>, Vec<String>, Vec<i64>) {
    let j = smollm2_json();
    let vocab = j["model"]["vocab"].as_object().expect("vocab");
    let mut tokens = vec![String::new(); vocab.len()];
    for (t, id) in vocab {
        tokens[id.as_u64().expect("id") as usize] = t.clone();
    }
    let mut types = vec![1i64; tokens.len()];
    for a in j["added_tokens"].as_array().expect("added") {
        types[a["id"].as_u64().expect("id") as usize] = 3;
    }
    let merges = j["model"]["merges"]
        .as_array()
        .expect("merges")
        .iter()
        .map(|m| match m {
            Value::String(s) => s.clone(),
            Value::Array(p) => format!(
                "{} {}",
                p[0].as_str().expect("a"),
                p[1].as_str().expect("b")
            ),
            _ => panic!("bad merge {m}"),
        })
        .collect();
    (tokens, merges, types)
}

/// The byte-level tokenizer of GGUF-style metadata under the pre-tokenizer named `pre`.
pub fn gguf_byte_level(
    tokens: &[String],
    merges: &[String],
    types: &[i64],
    pre: &str,
) -> HfTokenizer {
    byte_level_from_gguf_metadata(tokens, merges, Some(types), pre, std::path::Path::new(pre))
        .unwrap_or_else(|e| panic!("{pre}: {e}"))
}

/// Writes `json` to a fresh file in the system temp dir and returns its path.
pub fn temp_file(name: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kn-tokenizer-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = dir.join(name);
    std::fs::write(&p, contents).expect("write temp file");
    p
}
