//! Random-weight checkpoints shaped like the Llama models researchers study, saved as the real
//! ones ship: bfloat16 safetensors in several shards with a `model.safetensors.index.json`, a
//! transformers 4.x `config.json` (`rope_theta` and `rope_scaling`), and a tokenizer (SmolLM2's
//! byte-level BPE, `fixtures/tokenizer/smollm2-tokenizer.json`: its 49,152 ids all lie inside
//! the 128,256-entry vocabulary). Speed and memory do not depend on the weights' values.
//!
//! * `llama-3.2-1b`: hidden 2048, FFN 8192, 16 layers, 32 heads, 8 key/value heads (head 64),
//!   `llama3` RoPE scaling (factor 32, original context 8192), tied embeddings: 1.24 B parameters.
//! * `llama-3-8b`: hidden 4096, FFN 14336, 32 layers, 32 heads, 8 key/value heads (head 128),
//!   RoPE base 500,000 without scaling, untied head: 8.03 B parameters.
//!
//! The weights are drawn with libtorch's seeded normal generator (the same files on every
//! machine with the project's libtorch) at the standard deviation 0.02, norms all ones. Used by
//! `examples/make_llama_shaped.rs` and by the tests and benchmarks that run on these shapes;
//! `scripts/reference/make_llama_shaped_golden.py` computes transformers' reference on them.

#[path = "generated_dir.rs"]
mod generated_dir;

use generated_dir::io_error;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Bump when the files written change.
const GENERATOR_VERSION: u32 = 1;
const SEED: i64 = 20_261_205;
const INIT_STD: f64 = 0.02;
const STAMP_FILE: &str = "kn-llama-shaped.json";
/// The largest shard (as transformers' `max_shard_size`).
const SHARD_BYTES: i64 = 1 << 30;

/// One of the shapes.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub name: &'static str,
    pub hidden: i64,
    pub ffn: i64,
    pub layers: i64,
    pub heads: i64,
    pub kv_heads: i64,
    pub vocab: i64,
    pub tied: bool,
    /// `"rope_theta"` and `"rope_scaling"` of `config.json`.
    pub rope_theta: f64,
    pub rope_scaling: &'static str,
    pub max_positions: i64,
}

pub const SHAPES: [Shape; 2] = [
    Shape {
        name: "llama-3.2-1b",
        hidden: 2048,
        ffn: 8192,
        layers: 16,
        heads: 32,
        kv_heads: 8,
        vocab: 128_256,
        tied: true,
        rope_theta: 500_000.0,
        rope_scaling: r#"{"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"}"#,
        max_positions: 131_072,
    },
    Shape {
        name: "llama-3-8b",
        hidden: 4096,
        ffn: 14336,
        layers: 32,
        heads: 32,
        kv_heads: 8,
        vocab: 128_256,
        tied: false,
        rope_theta: 500_000.0,
        rope_scaling: "null",
        max_positions: 8192,
    },
];

impl Shape {
    /// The shape called `name`.
    pub fn named(name: &str) -> Option<Shape> {
        SHAPES.iter().copied().find(|s| s.name == name)
    }

    fn head_dim(&self) -> i64 {
        self.hidden / self.heads
    }

    /// The stamp of a directory this generator wrote for this shape.
    pub fn stamp(&self) -> String {
        format!(
            "{{\"generator\": \"benches/support/llama_shaped.rs\", \"version\": {GENERATOR_VERSION}, \"shape\": \"{}\", \"seed\": {SEED}, \"init_std\": {INIT_STD}}}\n",
            self.name
        )
    }

    /// `<cache>/bench/<name>-shaped` (see `kn_model::cache_dir`).
    pub fn default_dir(&self) -> PathBuf {
        kn_model::cache_dir()
            .join("bench")
            .join(format!("{}-shaped", self.name))
    }

    /// transformers 4.x `config.json`.
    fn config_json(&self) -> String {
        format!(
            r#"{{
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 1,
  "eos_token_id": 2,
  "head_dim": {head_dim},
  "hidden_act": "silu",
  "hidden_size": {hidden},
  "initializer_range": 0.02,
  "intermediate_size": {ffn},
  "max_position_embeddings": {max_positions},
  "mlp_bias": false,
  "model_type": "llama",
  "num_attention_heads": {heads},
  "num_hidden_layers": {layers},
  "num_key_value_heads": {kv_heads},
  "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": {rope_scaling},
  "rope_theta": {rope_theta:.1},
  "tie_word_embeddings": {tied},
  "torch_dtype": "bfloat16",
  "transformers_version": "4.45.0",
  "use_cache": true,
  "vocab_size": {vocab}
}}
"#,
            head_dim = self.head_dim(),
            hidden = self.hidden,
            ffn = self.ffn,
            max_positions = self.max_positions,
            heads = self.heads,
            layers = self.layers,
            kv_heads = self.kv_heads,
            rope_scaling = self.rope_scaling,
            rope_theta = self.rope_theta,
            tied = self.tied,
            vocab = self.vocab,
        )
    }

    /// The tensors, in the order they are drawn, with Hugging Face `LlamaForCausalLM` names.
    fn tensor_shapes(&self) -> Vec<(String, Vec<i64>)> {
        let (d, f, hd) = (self.hidden, self.ffn, self.head_dim());
        let mut out = vec![("model.embed_tokens.weight".to_string(), vec![self.vocab, d])];
        for l in 0..self.layers {
            let p = format!("model.layers.{l}");
            out.extend([
                (format!("{p}.input_layernorm.weight"), vec![d]),
                (
                    format!("{p}.self_attn.q_proj.weight"),
                    vec![self.heads * hd, d],
                ),
                (
                    format!("{p}.self_attn.k_proj.weight"),
                    vec![self.kv_heads * hd, d],
                ),
                (
                    format!("{p}.self_attn.v_proj.weight"),
                    vec![self.kv_heads * hd, d],
                ),
                (
                    format!("{p}.self_attn.o_proj.weight"),
                    vec![d, self.heads * hd],
                ),
                (format!("{p}.post_attention_layernorm.weight"), vec![d]),
                (format!("{p}.mlp.gate_proj.weight"), vec![f, d]),
                (format!("{p}.mlp.up_proj.weight"), vec![f, d]),
                (format!("{p}.mlp.down_proj.weight"), vec![d, f]),
            ]);
        }
        out.push(("model.norm.weight".to_string(), vec![d]));
        if !self.tied {
            out.push(("lm_head.weight".to_string(), vec![self.vocab, d]));
        }
        out
    }

    /// Writes the checkpoint into `dir` (a fresh directory).
    fn write(&self, dir: &Path) -> Result<(), String> {
        let write = |file: &str, text: &str| {
            std::fs::write(dir.join(file), text).map_err(|e| io_error(&dir.join(file), e))
        };
        write("config.json", &self.config_json())?;
        let tokenizer =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tokenizer/smollm2-tokenizer.json");
        std::fs::copy(&tokenizer, dir.join("tokenizer.json"))
            .map_err(|e| io_error(&tokenizer, e))?;
        write(
            "tokenizer_config.json",
            "{\"add_bos_token\": false, \"tokenizer_class\": \"PreTrainedTokenizerFast\"}\n",
        )?;
        write(
            "README.md",
            &format!(
                "Random weights shaped like {} (bfloat16 shards) for speed and memory benchmarks only; it knows nothing.\n\
                 Written by benches/support/llama_shaped.rs (cargo run --release --example make_llama_shaped -- {}).\n",
                self.name, self.name
            ),
        )?;
        // Shards filled in drawing order up to SHARD_BYTES; their names need the count first.
        let shapes = self.tensor_shapes();
        let mut shards: Vec<Vec<usize>> = vec![Vec::new()];
        let mut filled = 0i64;
        for (index, (_, shape)) in shapes.iter().enumerate() {
            let bytes = 2 * shape.iter().product::<i64>();
            if filled > 0 && filled + bytes > SHARD_BYTES {
                shards.push(Vec::new());
                filled = 0;
            }
            filled += bytes;
            shards.last_mut().map(|s| s.push(index));
        }
        let count = shards.len();
        tch::manual_seed(SEED);
        let mut weight_map = Vec::new();
        let mut total_size = 0i64;
        for (n, members) in shards.iter().enumerate() {
            let file = format!("model-{:05}-of-{count:05}.safetensors", n + 1);
            let tensors: Vec<(String, Tensor)> = members
                .iter()
                .map(|&index| {
                    let (name, shape) = &shapes[index];
                    let tensor = if shape.len() == 1 {
                        Tensor::ones(shape.as_slice(), (Kind::BFloat16, Device::Cpu))
                    } else {
                        (Tensor::randn(shape.as_slice(), (Kind::Float, Device::Cpu)) * INIT_STD)
                            .to_kind(Kind::BFloat16)
                    };
                    total_size += 2 * shape.iter().product::<i64>();
                    weight_map.push(format!("    \"{name}\": \"{file}\""));
                    (name.clone(), tensor)
                })
                .collect();
            let path = dir.join(&file);
            Tensor::write_safetensors(&tensors, &path).map_err(|e| io_error(&path, e))?;
        }
        write(
            "model.safetensors.index.json",
            &format!(
                "{{\n  \"metadata\": {{\"total_size\": {total_size}}},\n  \"weight_map\": {{\n{}\n  }}\n}}\n",
                weight_map.join(",\n")
            ),
        )
    }

    /// Makes sure `dir` holds this shape's checkpoint, writing it when it is not there.
    /// Returns whether it was written (false: reused).
    pub fn ensure(&self, dir: &Path) -> Result<bool, String> {
        generated_dir::ensure(
            dir,
            STAMP_FILE,
            &self.stamp(),
            &[
                "config.json",
                "tokenizer.json",
                "model.safetensors.index.json",
            ],
            |tmp| self.write(tmp),
        )
    }
}
