//! A BERT-base-sized masked LM with random weights, for benchmarks: the `bert-base-cased`
//! configuration (12 layers, hidden 768, 12 heads, FFN 3072, vocabulary 28996, 512 positions)
//! written as a Hugging Face directory (`config.json`, `tokenizer_config.json`, `vocab.txt`,
//! `model.safetensors`) that both `kn_model::load_model` and `transformers.BertForMaskedLM`
//! load. Speed does not depend on the values, so the weights are random (seeded).
//!
//! This file is the one place that knows how the model looks: the criterion bench
//! (`benches/attribution.rs`) includes it as a module, and so does `examples/make_random_bert.rs`,
//! which `scripts/bench/compare_python.sh` runs. The benchmark prompts of every model are in
//! `prompts.tsv` next to it (read here, and by the script).
//!
//! Reuse: a directory whose `kn-random-bert.json` stamp matches [`stamp`] is used as it is;
//! anything else there is never overwritten. The model is written into a temporary sibling
//! directory first and renamed into place, so a half-written model is never reused.

#![allow(dead_code)]

#[path = "generated_dir.rs"]
mod generated_dir;

use generated_dir::io_error;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Layers of bert-base-cased.
pub const LAYERS: usize = 12;
/// Hidden size.
pub const HIDDEN: i64 = 768;
/// Attention heads.
pub const HEADS: usize = 12;
/// FFN intermediate width (neurons per layer).
pub const FFN: i64 = 3072;
/// Vocabulary size of bert-base-cased.
pub const VOCAB: usize = 28996;
/// Positions.
pub const MAX_POSITIONS: i64 = 512;
/// Token types.
pub const TYPE_VOCAB: i64 = 2;
/// Seed of the random weights.
pub const SEED: i64 = 20220522;
/// Standard deviation of dense weights and embeddings (BERT's `initializer_range`).
pub const INIT_STD: f64 = 0.02;

/// Version of the files written; bump it when they change.
const GENERATOR_VERSION: u32 = 1;
const STAMP_FILE: &str = "kn-random-bert.json";

/// The benchmark prompts of every model, `model<TAB>prompt<TAB>answer` lines (see the file).
pub const PROMPTS_TSV: &str = include_str!("prompts.tsv");

/// The benchmark prompts of `model` (`smollm2`, `bert-base`, `tiny-bert`, `tiny-llama`) from
/// [`PROMPTS_TSV`], as (prompt, answer) pairs.
pub fn prompts(model: &str) -> Vec<(&'static str, &'static str)> {
    PROMPTS_TSV
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let mut fields = line.split('\t');
            match (fields.next(), fields.next(), fields.next()) {
                (Some(m), Some(prompt), Some(answer)) if m == model => Some((prompt, answer)),
                _ => None,
            }
        })
        .collect()
}

/// Contents of the stamp file: the generator version, seed and vocabulary words, so that a
/// model written for other prompts is not reused.
pub fn stamp() -> String {
    let words: Vec<String> = vocabulary()
        .into_iter()
        .filter(|w| !w.starts_with("filler"))
        .collect();
    format!(
        "{{\"generator\": \"benches/support/random_bert.rs\", \"version\": {GENERATOR_VERSION}, \"config\": \"bert-base-cased\", \"seed\": {SEED}, \"init_std\": {INIT_STD}, \"words\": [{}]}}\n",
        words.iter().map(|w| json_string(w)).collect::<Vec<_>>().join(", ")
    )
}

const SPECIAL: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
const PUNCTUATION: [&str; 17] = [
    ".", ",", "'", "-", "(", ")", "/", ":", ";", "!", "?", "&", "\"", "[", "]", "#", "%",
];

/// Where the benchmarks keep the model: `$KN_RANDOM_BERT_DIR`, else
/// `<cache>/bench/bert-base-cased-random` with `<cache>` = `$KN_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/knowledge-neurons`, else `~/.cache/knowledge-neurons` (the model cache of
/// `scripts/fetch-model.sh`).
pub fn default_dir() -> PathBuf {
    std::env::var_os("KN_RANDOM_BERT_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            kn_model::cache_dir()
                .join("bench")
                .join("bert-base-cased-random")
        })
}

/// The vocabulary: the special tokens, punctuation, the words of the `bert-base` prompts, then filler
/// entries up to [`VOCAB`].
pub fn vocabulary() -> Vec<String> {
    let mut vocab: Vec<String> = SPECIAL
        .iter()
        .chain(PUNCTUATION.iter())
        .map(|s| s.to_string())
        .collect();
    for (prompt, answer) in prompts("bert-base") {
        let text = prompt.replace("[MASK]", " ");
        for word in text
            .split(|c: char| c.is_whitespace() || c.is_ascii_punctuation())
            .chain([answer])
        {
            if !word.is_empty() && !vocab.iter().any(|v| v == word) {
                vocab.push(word.to_string());
            }
        }
    }
    let mut filler = 0;
    while vocab.len() < VOCAB {
        vocab.push(format!("filler{filler}"));
        filler += 1;
    }
    vocab
}

fn config_json() -> String {
    format!(
        r#"{{
  "architectures": ["BertForMaskedLM"],
  "model_type": "bert",
  "attention_probs_dropout_prob": 0.1,
  "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1,
  "hidden_size": {HIDDEN},
  "initializer_range": {INIT_STD},
  "intermediate_size": {FFN},
  "layer_norm_eps": 1e-12,
  "max_position_embeddings": {MAX_POSITIONS},
  "num_attention_heads": {HEADS},
  "num_hidden_layers": {LAYERS},
  "pad_token_id": 0,
  "position_embedding_type": "absolute",
  "tie_word_embeddings": true,
  "type_vocab_size": {TYPE_VOCAB},
  "vocab_size": {VOCAB}
}}
"#
    )
}

const TOKENIZER_CONFIG: &str = r#"{
  "tokenizer_class": "BertTokenizer",
  "do_lower_case": false,
  "strip_accents": false,
  "tokenize_chinese_chars": true,
  "unk_token": "[UNK]",
  "sep_token": "[SEP]",
  "pad_token": "[PAD]",
  "cls_token": "[CLS]",
  "mask_token": "[MASK]",
  "model_max_length": 512
}
"#;

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The weights, with Hugging Face `BertForMaskedLM` names (the decoder is tied to the word
/// embeddings and not stored; its bias is `cls.predictions.bias`; no pooler).
pub fn weights() -> Vec<(String, Tensor)> {
    tch::manual_seed(SEED);
    let opts = (Kind::Float, Device::Cpu);
    let normal = |shape: &[i64]| Tensor::randn(shape, opts) * INIT_STD;
    let zeros = |shape: &[i64]| Tensor::zeros(shape, opts);
    let ones = |shape: &[i64]| Tensor::ones(shape, opts);
    let (v, d, f) = (VOCAB as i64, HIDDEN, FFN);
    let mut w: Vec<(String, Tensor)> = vec![
        (
            "bert.embeddings.word_embeddings.weight".into(),
            normal(&[v, d]),
        ),
        (
            "bert.embeddings.position_embeddings.weight".into(),
            normal(&[MAX_POSITIONS, d]),
        ),
        (
            "bert.embeddings.token_type_embeddings.weight".into(),
            normal(&[TYPE_VOCAB, d]),
        ),
        ("bert.embeddings.LayerNorm.weight".into(), ones(&[d])),
        ("bert.embeddings.LayerNorm.bias".into(), zeros(&[d])),
    ];
    for l in 0..LAYERS {
        let p = format!("bert.encoder.layer.{l}");
        for (name, out, inp) in [
            ("attention.self.query", d, d),
            ("attention.self.key", d, d),
            ("attention.self.value", d, d),
            ("attention.output.dense", d, d),
            ("intermediate.dense", f, d),
            ("output.dense", d, f),
        ] {
            w.push((format!("{p}.{name}.weight"), normal(&[out, inp])));
            w.push((format!("{p}.{name}.bias"), zeros(&[out])));
        }
        for norm in ["attention.output.LayerNorm", "output.LayerNorm"] {
            w.push((format!("{p}.{norm}.weight"), ones(&[d])));
            w.push((format!("{p}.{norm}.bias"), zeros(&[d])));
        }
    }
    w.push((
        "cls.predictions.transform.dense.weight".into(),
        normal(&[d, d]),
    ));
    w.push(("cls.predictions.transform.dense.bias".into(), zeros(&[d])));
    w.push((
        "cls.predictions.transform.LayerNorm.weight".into(),
        ones(&[d]),
    ));
    w.push((
        "cls.predictions.transform.LayerNorm.bias".into(),
        zeros(&[d]),
    ));
    w.push(("cls.predictions.bias".into(), zeros(&[v])));
    w
}

/// Whether `dir` holds a complete model written by this generator.
pub fn is_complete(dir: &Path) -> bool {
    generated_dir::is_complete(dir, STAMP_FILE, &stamp(), FILES)
}

/// The files of a complete model.
const FILES: &[&str] = &["config.json", "vocab.txt", "model.safetensors"];

/// Makes sure `dir` holds the random BERT-base model, writing it when it is not there.
/// Returns whether it was written (false: reused). Refuses to touch a directory that exists
/// and is not one of ours.
pub fn ensure(dir: &Path) -> Result<bool, String> {
    generated_dir::ensure(dir, STAMP_FILE, &stamp(), FILES, |tmp| {
        let write = |file: &str, text: &str| {
            std::fs::write(tmp.join(file), text).map_err(|e| io_error(&tmp.join(file), e))
        };
        write("config.json", &config_json())?;
        write("tokenizer_config.json", TOKENIZER_CONFIG)?;
        let mut vocab = vocabulary().join("\n");
        vocab.push('\n');
        write("vocab.txt", &vocab)?;
        write(
            "README.md",
            "Random-weight BERT-base (bert-base-cased configuration) for speed benchmarks only; it knows nothing.\n\
             Written by benches/support/random_bert.rs (cargo run --release --example make_random_bert -- <dir>).\n",
        )?;
        let weights = weights();
        let path = tmp.join("model.safetensors");
        Tensor::write_safetensors(&weights, &path).map_err(|e| io_error(&path, e))
    })
}
