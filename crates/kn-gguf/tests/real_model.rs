//! Checks the reader against the project's default model, SmolLM2-135M-Instruct (Q4_1 GGUF):
//! metadata values, the tensor directory, and sample values of dequantized tensors compared with
//! gguf-py's dequantization (`fixtures/gguf/smollm2_samples.json`, written by
//! `scripts/reference/make_gguf_fixtures.py`).
//!
//! The model is looked up like `scripts/fetch-model.sh` stores it: `$KN_MODEL_DIR`, else
//! `$KN_CACHE_DIR/models`, else `${XDG_CACHE_HOME:-~/.cache}/knowledge-neurons/models`. If it is
//! missing the test fails (CI fetches the model first) with a message saying how to get it.

use std::path::PathBuf;
use std::time::Instant;

use kn_gguf::{GgmlType, GgufFile};
use serde_json::Value;

const MODEL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

fn model_path() -> PathBuf {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = env("KN_MODEL_DIR") {
        return dir.join(MODEL);
    }
    let cache = env("KN_CACHE_DIR").unwrap_or_else(|| {
        env("XDG_CACHE_HOME")
            .or_else(|| env("HOME").map(|h| h.join(".cache")))
            .unwrap_or_else(|| PathBuf::from(".cache"))
            .join("knowledge-neurons")
    });
    cache.join("models").join(MODEL)
}

fn open_model() -> GgufFile {
    let path = model_path();
    if !path.is_file() {
        panic!(
            "the default model is missing: {} does not exist. Run scripts/fetch-model.sh to download \
             it (set KN_CACHE_DIR or KN_MODEL_DIR if you keep it elsewhere).",
            path.display()
        );
    }
    GgufFile::open(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn samples() -> Value {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/gguf/smollm2_samples.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("valid json")
}

fn bits_list(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|b| b.as_u64().expect("u32") as u32)
        .collect()
}

#[test]
fn metadata_and_directory() {
    let f = open_model();
    assert_eq!(f.version(), 3);
    assert_eq!(f.get_str("general.architecture").ok(), Some("llama"));
    assert_eq!(f.get_u64("llama.block_count").ok(), Some(30));
    assert_eq!(f.get_u64("llama.feed_forward_length").ok(), Some(1536));
    assert_eq!(f.get_u64("llama.embedding_length").ok(), Some(576));
    assert_eq!(f.get_u64("llama.attention.head_count").ok(), Some(9));
    assert_eq!(f.get_u64("llama.attention.head_count_kv").ok(), Some(3));
    assert_eq!(f.get_f32("llama.rope.freq_base").ok(), Some(100000.0));
    assert_eq!(
        f.get_f32("llama.attention.layer_norm_rms_epsilon").ok(),
        Some(1e-5)
    );
    assert_eq!(f.get_str("tokenizer.ggml.model").ok(), Some("gpt2"));
    let tokens = f.get_str_array("tokenizer.ggml.tokens").expect("tokens");
    assert_eq!(tokens.len(), 49152);
    assert_eq!(tokens.get(1).copied(), Some("<|im_start|>"));
    let types = f
        .get_i64_array("tokenizer.ggml.token_type")
        .expect("token types");
    assert_eq!(types.len(), 49152);
    assert_eq!(
        f.get_str_array("tokenizer.ggml.merges")
            .map(|m| m.len())
            .ok(),
        Some(48900)
    );
    assert_eq!(f.get_u64("tokenizer.ggml.bos_token_id").ok(), Some(1));

    assert_eq!(f.tensors().len(), 272);
    let count = |t: GgmlType| f.tensors().iter().filter(|i| i.dtype == t).count();
    assert_eq!(
        (
            count(GgmlType::Q4_1),
            count(GgmlType::Q8_0),
            count(GgmlType::F32)
        ),
        (210, 1, 61)
    );
    let down = f.tensor_info("blk.0.ffn_down.weight").expect("ffn_down");
    assert_eq!(down.dims, vec![1536, 576]);
    assert_eq!(down.shape(), vec![576, 1536]);
    let embd = f.tensor_info("token_embd.weight").expect("token_embd");
    assert_eq!(
        (embd.dims.clone(), embd.dtype),
        (vec![576, 49152], GgmlType::Q8_0)
    );
}

#[test]
fn dequantized_values_match_gguf_py() {
    let f = open_model();
    let samples = samples();
    for t in samples["tensors"].as_array().expect("tensors") {
        let name = t["name"].as_str().expect("name");
        let (values, shape) = f.tensor_f32(name).unwrap_or_else(|e| panic!("{e}"));
        let want_shape: Vec<usize> = t["shape"]
            .as_array()
            .expect("shape")
            .iter()
            .map(|d| d.as_u64().expect("dim") as usize)
            .collect();
        assert_eq!(shape, want_shape, "{name}");
        assert_eq!(
            f.tensor_info(name).map(|i| i.dtype.to_string()).as_deref(),
            t["type"].as_str()
        );
        let first = bits_list(&t["first_64_f32_bits"]);
        for (i, &b) in first.iter().enumerate() {
            assert_eq!(
                values[i].to_bits(),
                b,
                "{name}[{i}]: {} vs gguf-py {}",
                values[i],
                f32::from_bits(b)
            );
        }
        let idx = bits_list(&t["sample_indices"]);
        let want = bits_list(&t["sample_f32_bits"]);
        assert_eq!(idx.len(), want.len());
        for (&i, &b) in idx.iter().zip(&want) {
            let got = values[i as usize];
            assert_eq!(
                got.to_bits(),
                b,
                "{name}[{i}]: {got} vs gguf-py {}",
                f32::from_bits(b)
            );
        }
    }
}

#[test]
fn every_tensor_dequantizes() {
    let f = open_model();
    let start = Instant::now();
    let mut total = 0usize;
    for t in f.tensors() {
        let (values, shape) = f.tensor_f32(&t.name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(values.len(), shape.iter().product::<usize>(), "{}", t.name);
        assert!(
            values.iter().all(|v| v.is_finite()),
            "{} has non-finite values",
            t.name
        );
        total += values.len();
    }
    println!(
        "dequantized {total} values in {} tensors in {:.3} s",
        f.tensors().len(),
        start.elapsed().as_secs_f64()
    );
    assert_eq!(total, 134_515_008);
}
