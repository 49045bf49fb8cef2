//! Llama-family causal language model on libtorch (SmolLM2, Llama 2/3.x, Mistral, Qwen2, Qwen3):
//! RMSNorm, RoPE (plain, `linear` or `llama3` scaling), grouped-query attention (optionally with
//! biased projections, per-head query/key norms and sliding windows per layer), SwiGLU FFN,
//! optionally tied embeddings (the configuration: `kn_config::LlamaConfig`). Loaded from a GGUF file
//! (any tensor type `kn-gguf` dequantizes; the Q/K row permutation of llama.cpp's converter is
//! undone) or from a Hugging Face directory (`config.json`, `model.safetensors`,
//! `tokenizer.json`).
//!
//! Neuron = `silu(gate(x)) * up(x)` at the last prompt token, the input of `down_proj`;
//! value slot = column of `down_proj.weight`.

mod backward;

/// Rows held at once by an attribution on the CPU (see
/// [`KnowledgeModel::rows_in_flight_hint`]): two prompts of a 30-layer model at m = 20, as
/// one pass of 1,200 rows or two concurrent passes of 600, peak about 1.34 GiB for SmolLM2
/// (one prompt alone: 1.02 GiB).
pub const CPU_ROWS_IN_FLIGHT: usize = 1200;

/// Attribution passes run at the same time on the CPU when the caller has two or more
/// threads (see [`KnowledgeModel::concurrent_passes_hint`]): two passes on one thread each
/// keep both cores on matrix products, where one pass on two threads leaves a core waiting
/// through every small operation between them (measured in `docs/performance.md`).
pub const CPU_CONCURRENT_PASSES: usize = 2;

use crate::common::{
    self, answer_positions, apply_edits, check_batch, check_layer, check_layer_count, rows_at,
};
use crate::error::{guard, ModelError, Result};
use crate::matmul::linear;
use crate::model::{
    ActivationEdit, AnswerPolicy, CleanPass, EncodedPrompt, ForwardOutput, KnowledgeModel,
    ModelInfo, ModelKind,
};
use crate::swiglu::swiglu;
use crate::weights::{fingerprint, read_file, WeightMap};
use kn_config::LlamaConfig;
use kn_tokenizer::{ByteLevelBpe, Tokenizer};
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// One decoder layer. The query, key and value projections are stored stacked (`qkv`), and so
/// are the gate and up projections (`gate_up`): one matrix product each instead of three and
/// two, which matters for the small row counts of attribution passes.
struct LlamaLayer {
    attn_norm: Tensor,
    /// `[q_rows + 2 kv_rows, d]`: query rows, then key rows, then value rows.
    qkv: Tensor,
    /// The projections' biases, `[q_rows + 2 kv_rows]` (Qwen2, `attention_bias`).
    qkv_bias: Option<Tensor>,
    /// Per-head RMSNorm weights of the queries then the keys, `[H + KV, hd]` (Qwen3).
    qk_norm: Option<Tensor>,
    /// The sliding attention window of this layer (`None`: full causal attention).
    window: Option<i64>,
    wo: Tensor,
    ffn_norm: Tensor,
    /// `[2 ffn_width, d]`: gate rows, then up rows.
    gate_up: Tensor,
    down: Tensor,
}

/// A Llama-family causal LM.
pub struct LlamaCausalLm {
    info: ModelInfo,
    config: LlamaConfig,
    device: Device,
    tokenizer: ByteLevelBpe,
    embeddings: Tensor,
    layers: Vec<LlamaLayer>,
    output_norm: Tensor,
    lm_head: Tensor,
    /// RoPE inverse frequencies, `[head_dim / 2]`.
    inv_freq: Tensor,
}

// SAFETY: the only fields that are not `Sync` are libtorch tensors, whose reference counts are
// atomic and which libtorch allows to be read from several threads at once. Every `&self`
// method only reads them (results are new tensors, and `output_projection` hands out shallow
// handles documented as read-only); the one method that writes weights, `set_value_slots`,
// takes `&mut self`, so no write can overlap a shared borrow. The tokenizer's cache is behind
// a lock.
unsafe impl Sync for LlamaCausalLm {}

/// Names of one layer's tensors in a given file layout: `layer(l, part)` names the weight of
/// `part` in layer `l`, and `layer_bias(l, part)` its bias.
struct TensorNames {
    embeddings: &'static str,
    output_norm: &'static str,
    lm_head: &'static str,
    layer: fn(usize, &str) -> String,
    layer_bias: fn(usize, &str) -> String,
}

const GGUF_NAMES: TensorNames = TensorNames {
    embeddings: "token_embd.weight",
    output_norm: "output_norm.weight",
    lm_head: "output.weight",
    layer: |l, part| {
        let name = match part {
            "attn_norm" => "attn_norm",
            "q" => "attn_q",
            "k" => "attn_k",
            "v" => "attn_v",
            "o" => "attn_output",
            "ffn_norm" => "ffn_norm",
            "gate" => "ffn_gate",
            "up" => "ffn_up",
            "q_norm" => "attn_q_norm",
            "k_norm" => "attn_k_norm",
            _ => "ffn_down",
        };
        format!("blk.{l}.{name}.weight")
    },
    layer_bias: |l, part| format!("blk.{l}.attn_{part}.bias"),
};

const HF_NAMES: TensorNames = TensorNames {
    embeddings: "model.embed_tokens.weight",
    output_norm: "model.norm.weight",
    lm_head: "lm_head.weight",
    layer: |l, part| {
        let name = match part {
            "attn_norm" => "input_layernorm",
            "q" => "self_attn.q_proj",
            "k" => "self_attn.k_proj",
            "v" => "self_attn.v_proj",
            "o" => "self_attn.o_proj",
            "ffn_norm" => "post_attention_layernorm",
            "gate" => "mlp.gate_proj",
            "up" => "mlp.up_proj",
            "q_norm" => "self_attn.q_norm",
            "k_norm" => "self_attn.k_norm",
            _ => "mlp.down_proj",
        };
        format!("model.layers.{l}.{name}.weight")
    },
    layer_bias: |l, part| format!("model.layers.{l}.self_attn.{part}_proj.bias"),
};

/// One clean pass resumed in a batched pass: where its recomputed positions start and their
/// RoPE tables.
struct ResumedRun<'a> {
    clean: &'a CleanPass,
    start: i64,
    tables: (Tensor, Tensor),
}

impl LlamaCausalLm {
    /// Loads a GGUF file (llama architecture, gpt2-style BPE tokenizer).
    pub fn load_gguf(path: &Path, device: Device) -> Result<Self> {
        let bytes = read_file(path)?;
        let fingerprint = fingerprint(&bytes);
        let file = kn_gguf::GgufFile::from_bytes(bytes, &path.display().to_string())?;
        let config_error = |reason: String| ModelError::Config {
            path: path.to_path_buf(),
            reason,
        };
        let arch = file.get_str("general.architecture")?.to_string();
        if arch != "llama" {
            return Err(config_error(format!(
                "architecture {arch:?} is not supported (only \"llama\")"
            )));
        }
        let model = file.get_str("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(config_error(format!(
                "tokenizer model {model:?} is not supported (only the byte-level BPE \"gpt2\")"
            )));
        }
        let tokens: Vec<String> = file
            .get_str_array("tokenizer.ggml.tokens")?
            .into_iter()
            .map(String::from)
            .collect();
        let merges: Vec<String> = file
            .get_str_array("tokenizer.ggml.merges")?
            .into_iter()
            .map(String::from)
            .collect();
        let token_types = file.get_i64_array("tokenizer.ggml.token_type").ok();
        let pre = file
            .get_str("tokenizer.ggml.pre")
            .unwrap_or("default")
            .to_string();
        let add_bos = matches!(
            file.get("tokenizer.ggml.add_bos_token"),
            Some(kn_gguf::MetadataValue::Bool(true))
        );
        let bos_id = file
            .get_u64("tokenizer.ggml.bos_token_id")
            .ok()
            .and_then(|id| i64::try_from(id).ok());
        let config = LlamaConfig::from_gguf(&file, tokens.len(), add_bos, bos_id)
            .map_err(|e| config_error(e.to_string()))?;
        let tokenizer = ByteLevelBpe::from_gguf_metadata(tokens, merges, token_types, &pre)?;
        let mut weights = WeightMap::from_gguf(&file, path, device)?;
        drop(file);
        // llama.cpp stores Llama 3.1's position scaling as this tensor of frequency factors.
        if weights.contains("rope_freqs.weight") {
            return Err(config_error(
                "tensor rope_freqs.weight (RoPE frequency scaling from GGUF) is not supported"
                    .into(),
            ));
        }
        Self::from_weights(
            config,
            tokenizer,
            &mut weights,
            &GGUF_NAMES,
            true,
            path,
            fingerprint,
            device,
        )
    }

    /// Loads a Hugging Face directory: `config.json`, `model.safetensors`, `tokenizer.json`.
    pub fn load_hf_dir(dir: &Path, device: Device) -> Result<Self> {
        let config_path = dir.join("config.json");
        let text = crate::load::read_config_text(&config_path)?;
        let config_error = |reason: String| ModelError::Config {
            path: config_path.clone(),
            reason,
        };
        let tokenizer_config = std::fs::read_to_string(dir.join("tokenizer_config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
        let add_bos = tokenizer_config
            .as_ref()
            .and_then(|c| c.get("add_bos_token"))
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        let config =
            LlamaConfig::from_hf_json(&text, add_bos).map_err(|e| config_error(e.to_string()))?;
        let tokenizer = ByteLevelBpe::from_tokenizer_json(&dir.join("tokenizer.json"))?;
        let weights_path = dir.join("model.safetensors");
        let bytes = read_file(&weights_path)?;
        let fingerprint = fingerprint(&bytes);
        let mut weights = WeightMap::from_safetensors(&bytes, &weights_path, device)?;
        drop(bytes);
        Self::from_weights(
            config,
            tokenizer,
            &mut weights,
            &HF_NAMES,
            false,
            dir,
            fingerprint,
            device,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn from_weights(
        config: LlamaConfig,
        tokenizer: ByteLevelBpe,
        weights: &mut WeightMap,
        names: &TensorNames,
        gguf_permuted: bool,
        source: &Path,
        fingerprint: String,
        device: Device,
    ) -> Result<Self> {
        let (v, d, f) = (
            config.vocab_size as i64,
            config.hidden_size as i64,
            config.ffn_width as i64,
        );
        let q_rows = (config.heads * config.head_dim) as i64;
        let kv_rows = (config.kv_heads * config.head_dim) as i64;
        let embeddings = weights.take(&[names.embeddings], &[v, d])?;
        let output_norm = weights.take(&[names.output_norm], &[d])?;
        let lm_head = match weights.take_optional(&[names.lm_head], &[v, d])? {
            Some(head) => head,
            None if config.tied_embeddings => embeddings.shallow_clone(),
            None => weights.take(&[names.lm_head], &[v, d])?, // the MissingTensor error
        };
        check_layer_count(
            config.num_layers,
            config.num_layers_key,
            |l| weights.contains(&(names.layer)(l, "down")),
            source,
        )?;
        let mut layers = Vec::with_capacity(config.num_layers);
        for l in 0..config.num_layers {
            let mut take =
                |part: &str, shape: &[i64]| weights.take(&[(names.layer)(l, part).as_str()], shape);
            let mut wq = take("q", &[q_rows, d])?;
            let mut wk = take("k", &[kv_rows, d])?;
            if gguf_permuted {
                wq = unpermute_rows(&wq, config.heads as i64);
                wk = unpermute_rows(&wk, config.kv_heads as i64);
            }
            let wv = take("v", &[kv_rows, d])?;
            let attn_norm = take("attn_norm", &[d])?;
            let wo = take("o", &[d, q_rows])?;
            let ffn_norm = take("ffn_norm", &[d])?;
            let gate = take("gate", &[f, d])?;
            let up = take("up", &[f, d])?;
            let down = take("down", &[d, f])?;
            let qkv_bias = if config.attention_bias {
                let mut bias = |part: &str, rows: i64| {
                    weights.take(&[(names.layer_bias)(l, part).as_str()], &[rows])
                };
                let (bq, bk, bv) = (bias("q", q_rows)?, bias("k", kv_rows)?, bias("v", kv_rows)?);
                Some(guard(|| Ok(Tensor::cat(&[bq, bk, bv], 0)))?)
            } else {
                None
            };
            let qk_norm = if config.qk_norm {
                let hd = config.head_dim as i64;
                let mut norm = |part: &str| weights.take(&[(names.layer)(l, part).as_str()], &[hd]);
                let (q_norm, k_norm) = (norm("q_norm")?, norm("k_norm")?);
                Some(guard(|| {
                    Ok(Tensor::cat(
                        &[
                            q_norm.unsqueeze(0).expand([config.heads as i64, hd], false),
                            k_norm
                                .unsqueeze(0)
                                .expand([config.kv_heads as i64, hd], false),
                        ],
                        0,
                    ))
                })?)
            } else {
                None
            };
            let (qkv, gate_up) =
                guard(|| Ok((Tensor::cat(&[wq, wk, wv], 0), Tensor::cat(&[gate, up], 0))))?;
            layers.push(LlamaLayer {
                attn_norm,
                qkv,
                qkv_bias,
                qk_norm,
                window: config.sliding_windows[l].map(|w| w as i64),
                wo,
                ffn_norm,
                gate_up,
                down,
            });
        }
        let mut frequencies: Vec<f64> = (0..config.head_dim / 2)
            .map(|i| {
                1.0 / config
                    .rope_base
                    .powf(2.0 * i as f64 / config.head_dim as f64)
            })
            .collect();
        config.rope_scaling.apply(&mut frequencies);
        let inv_freq = guard(|| {
            Ok(Tensor::from_slice(&frequencies)
                .to_kind(Kind::Float)
                .to_device(device))
        })?;
        let info = ModelInfo {
            architecture: config.model_type.clone(),
            kind: ModelKind::Causal,
            num_layers: config.num_layers,
            ffn_width: config.ffn_width,
            hidden_size: config.hidden_size,
            vocab_size: config.vocab_size,
            max_positions: config.max_positions,
            source: source.display().to_string(),
            fingerprint,
        };
        Ok(Self {
            info,
            config,
            device,
            tokenizer,
            embeddings,
            layers,
            output_norm,
            lm_head,
            inv_freq,
        })
    }

    fn rms_norm(&self, x: &Tensor, weight: &Tensor) -> Tensor {
        x.rms_norm(
            [self.config.hidden_size as i64],
            Some(weight),
            self.config.rms_eps,
        )
    }

    /// cos and sin tables for `positions` (`[T]`), each `[T, head_dim]`.
    fn rope_tables(&self, positions: &Tensor) -> (Tensor, Tensor) {
        let angles = positions.to_kind(Kind::Float).unsqueeze(1) * self.inv_freq.unsqueeze(0);
        let angles = Tensor::cat(&[&angles, &angles], 1);
        (angles.cos(), angles.sin())
    }

    /// Rotary embedding of `x` (`[..., T, head_dim]`), the rotate-half form of Hugging Face.
    /// The halves are taken with `chunk` (whose backward concatenates) rather than `narrow`
    /// (whose backward writes into a zeroed buffer).
    fn rope(x: &Tensor, (cos, sin): &(Tensor, Tensor)) -> Tensor {
        let halves = x.chunk(2, -1);
        let rotated = Tensor::cat(&[&halves[1].neg(), &halves[0]], -1);
        x * cos + rotated * sin
    }

    /// Queries, keys and values of `h` (`[B, S, d]`, already normed) with RoPE `tables` of
    /// their positions. Returns q `[B, H, S, hd]`, k and v `[B, KV, S, hd]` (RoPE applied to q
    /// and k, in one go: they are adjacent in the fused projection's output).
    fn qkv(
        &self,
        layer: &LlamaLayer,
        h: &Tensor,
        tables: &(Tensor, Tensor),
    ) -> (Tensor, Tensor, Tensor) {
        self.heads_with_rope(layer, &self.project_qkv(layer, h), tables)
    }

    /// The fused query/key/value projection of `h`, with its bias when the model has one.
    fn project_qkv(&self, layer: &LlamaLayer, h: &Tensor) -> Tensor {
        let qkv = linear(h, &layer.qkv);
        match &layer.qkv_bias {
            Some(bias) => qkv + bias,
            None => qkv,
        }
    }

    /// Whether the hand-written backward pass (`llama/backward.rs`) computes this model: plain
    /// Llama layers (no projection biases, query/key norms or sliding windows).
    fn is_plain(&self) -> bool {
        self.layers
            .iter()
            .all(|l| l.qkv_bias.is_none() && l.qk_norm.is_none() && l.window.is_none())
    }

    /// Splits the fused projection's output `qkv` (`[B, S, (H + 2 KV) hd]`) into heads and
    /// applies the query/key norms (when the model has them) and RoPE to the queries and keys.
    fn heads_with_rope(
        &self,
        layer: &LlamaLayer,
        qkv: &Tensor,
        tables: &(Tensor, Tensor),
    ) -> (Tensor, Tensor, Tensor) {
        let (batch, length) = (qkv.size()[0], qkv.size()[1]);
        let hd = self.config.head_dim as i64;
        let (heads, kv_heads) = (self.config.heads as i64, self.config.kv_heads as i64);
        let parts = qkv.split_with_sizes([(heads + kv_heads) * hd, kv_heads * hd], -1);
        let mut qk = parts[0].reshape([batch, length, heads + kv_heads, hd]);
        if let Some(weight) = &layer.qk_norm {
            qk = qk.rms_norm([hd], None::<&Tensor>, self.config.rms_eps) * weight;
        }
        let qk = qk.transpose(1, 2);
        let qk = Self::rope(&qk, tables).split_with_sizes([heads, kv_heads], 1);
        let v = parts[1]
            .reshape([batch, length, kv_heads, hd])
            .transpose(1, 2);
        (qk[0].shallow_clone(), qk[1].shallow_clone(), v)
    }

    /// Attention of queries `q` (`[B, H, S, hd]`, at absolute positions `offset..offset+S`)
    /// over keys/values `[B, KV, T, hd]` (positions `0..T`), causal, within the sliding
    /// `window` when there is one (a query at `p` sees keys `p - window < j <= p`, as
    /// transformers). Returns `[B, S, H*hd]`.
    /// Grouped-query attention without copying keys: the `H / KV` query heads that share a
    /// key-value head are stacked along the query axis.
    fn attend(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        offset: i64,
        window: Option<i64>,
    ) -> Tensor {
        let groups = (self.config.heads / self.config.kv_heads) as i64;
        let kv_heads = self.config.kv_heads as i64;
        let (batch, queries, total) = (q.size()[0], q.size()[2], k.size()[2]);
        let hd = self.config.head_dim as i64;
        let q = q.reshape([batch, kv_heads, groups * queries, hd]);
        let mut scores = q.matmul(&k.transpose(-1, -2)) / (hd as f64).sqrt(); // [B, KV, G*S, T]
        if offset + queries < total || queries > 1 {
            let device = q.device();
            let query_pos = Tensor::arange(groups * queries, (Kind::Int64, device))
                .remainder(queries)
                .unsqueeze(1)
                + offset;
            let key_pos = Tensor::arange(total, (Kind::Int64, device)).unsqueeze(0);
            let mut hidden = key_pos.gt_tensor(&query_pos);
            if let Some(window) = window {
                hidden = hidden.logical_or(&key_pos.le_tensor(&(query_pos - window)));
            }
            scores = scores.masked_fill(&hidden, f64::NEG_INFINITY);
        }
        scores
            .softmax(-1, Kind::Float)
            .matmul(v)
            .reshape([batch, self.config.heads as i64, queries, hd])
            .transpose(1, 2)
            .reshape([batch, queries, -1])
    }

    /// One layer over the rows of several resumed runs at the positions from their answer
    /// positions on: `xs[r]` (`[n_r, suffix, d]`, absent when run `r` has no rows yet) belongs
    /// to `runs[r]`. The projections and the FFN take all rows at once; each run's rows attend
    /// to its own clean pass's cached keys and values, with its own RoPE positions.
    fn resume_layer(
        &self,
        j: usize,
        weights: &LlamaLayer,
        runs: &[ResumedRun],
        xs: Vec<Option<Tensor>>,
    ) -> Vec<Option<Tensor>> {
        let present: Vec<usize> = (0..xs.len()).filter(|&r| xs[r].is_some()).collect();
        let parts: Vec<Tensor> = xs.into_iter().flatten().collect();
        let sizes: Vec<i64> = parts.iter().map(|x| x.size()[0]).collect();
        let x = cat_rows(&parts);
        let qkv = self.project_qkv(weights, &self.rms_norm(&x, &weights.attn_norm));
        let attended: Vec<Tensor> = present
            .iter()
            .zip(qkv.split_with_sizes(&sizes, 0))
            .map(|(&r, qkv)| {
                let run = &runs[r];
                let (q, k, v) = self.heads_with_rope(weights, &qkv, &run.tables);
                let prefix = cached_prefix(run.clean, run.start, j);
                self.attend_after_prefix(&q, &k, &v, &prefix, run.start, weights.window)
            })
            .collect();
        let attended = cat_rows(&attended);
        let x = x + linear(&attended, &weights.wo);
        let act = self.ffn_activation(weights, &x);
        let x = x + linear(&act, &weights.down);
        let mut xs: Vec<Option<Tensor>> = (0..runs.len()).map(|_| None).collect();
        for (&r, part) in present.iter().zip(x.split_with_sizes(&sizes, 0)) {
            xs[r] = Some(part);
        }
        xs
    }

    /// Checks one run's starts against this model and its clean pass, and returns the order in
    /// which the starts' rows join a pass ([`common::check_starts`]).
    fn start_order(&self, clean: &CleanPass, starts: &[(usize, Tensor)]) -> Result<Vec<usize>> {
        let (order, _) = common::check_starts(&self.info, clean, starts)?;
        if clean.keys.len() != self.info.num_layers {
            return Err(ModelError::InvalidArgument(
                "the clean pass is not from this model".into(),
            ));
        }
        Ok(order)
    }

    /// Runs the rows of several `(clean pass, starts)` runs whose prompts score the same number
    /// of positions from the answer position on, as one batched pass (see
    /// [`KnowledgeModel::forward_features_batch`]).
    fn resume_runs(&self, runs: &[(&CleanPass, &[(usize, Tensor)])]) -> Result<Vec<Tensor>> {
        let mut prepared = Vec::with_capacity(runs.len());
        for &(clean, starts) in runs {
            prepared.push((clean, starts, self.start_order(clean, starts)?));
        }
        let Some(&(first, _)) = runs.first() else {
            return Ok(Vec::new());
        };
        if prepared
            .iter()
            .any(|(clean, _, _)| recomputed_positions(clean) != recomputed_positions(first))
        {
            return Err(ModelError::InvalidArgument(
                "runs batched together must score the same number of positions".into(),
            ));
        }
        guard(|| {
            let runs: Vec<ResumedRun> = prepared
                .iter()
                .map(|&(clean, _, _)| {
                    let start = clean.prompt.answer_position as i64;
                    let length = clean.prompt.token_ids.len() as i64;
                    let tables = self.rope_tables(&Tensor::arange_start(
                        start,
                        length,
                        (Kind::Int64, self.device),
                    ));
                    ResumedRun {
                        clean,
                        start,
                        tables,
                    }
                })
                .collect();
            let suffix = recomputed_positions(first) as i64;
            let mut pending: Vec<_> = prepared
                .iter()
                .map(|(_, _, order)| order.iter().peekable())
                .collect();
            let mut xs: Vec<Option<Tensor>> = (0..runs.len()).map(|_| None).collect(); // per run: [rows so far, suffix, d]
            for (j, weights) in self.layers.iter().enumerate() {
                if xs.iter().any(Option::is_some) {
                    xs = self.resume_layer(j, weights, &runs, xs);
                }
                for (r, (run, (_, starts, _))) in runs.iter().zip(&prepared).enumerate() {
                    while let Some(&&i) = pending[r].peek().filter(|&&&i| starts[i].0 == j) {
                        pending[r].next();
                        let activations = &starts[i].1;
                        let n = activations.size()[0];
                        // Only the answer position's FFN output of layer j changes.
                        let changed = run.clean.ffn_input_residual[j].get(run.start).unsqueeze(0)
                            + linear(&activations, &weights.down);
                        let mut parts = vec![changed.unsqueeze(1)];
                        if suffix > 1 {
                            let rest =
                                run.clean.hidden_in[j + 1].narrow(0, run.start + 1, suffix - 1);
                            parts.push(rest.unsqueeze(0).expand([n, suffix - 1, -1], false));
                        }
                        let rows = Tensor::cat(&parts, 1);
                        xs[r] = Some(match xs[r].take() {
                            Some(current) => Tensor::cat(&[current, rows], 0),
                            None => rows,
                        });
                    }
                }
            }
            runs.iter()
                .zip(&prepared)
                .zip(xs)
                .map(|((run, (_, starts, order)), x)| {
                    let x =
                        x.ok_or_else(|| ModelError::InvalidArgument("no rows to run".into()))?;
                    let targets: Vec<i64> = run
                        .clean
                        .prompt
                        .targets
                        .iter()
                        .map(|&(p, _)| p as i64 - run.start)
                        .collect();
                    let index = Tensor::from_slice(&targets).to_device(self.device);
                    let features = self.rms_norm(&x.index_select(1, &index), &self.output_norm);
                    let sizes: Vec<i64> = starts.iter().map(|(_, a)| a.size()[0]).collect();
                    Ok(common::restore_row_order(&features, order, &sizes))
                })
                .collect()
        })
    }

    /// Attention of `n` rows' queries `q` (`[n, H, S, hd]`) at the `S` positions after a prefix
    /// that all rows share: over the prefix's keys and values (`[KV, P, hd]` each, from the
    /// clean pass) and, causally, over the rows' own keys and values `k`, `v` (`[n, KV, S, hd]`).
    /// The prefix is never copied per row: its scores and weighted values are plain matrix
    /// products of all rows' queries against the one prefix. Returns `[n, S, H*hd]`; equal to
    /// [`Self::attend`] over the concatenated keys and values. The rows' first position is
    /// `start` (the prefix's length); with a sliding `window`, each query sees only the keys
    /// within it: the prefix is cut to what the first query sees, and the rest is masked.
    fn attend_after_prefix(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        (prefix_k, prefix_v): &(Tensor, Tensor),
        start: i64,
        window: Option<i64>,
    ) -> Tensor {
        let (n, queries) = (q.size()[0], q.size()[2]);
        let (kv_heads, groups) = (
            self.config.kv_heads as i64,
            (self.config.heads / self.config.kv_heads) as i64,
        );
        let hd = self.config.head_dim as i64;
        // The first prefix position any query sees (0 without a window).
        let first_seen = window.map_or(0, |w| (start - w + 1).clamp(0, start));
        let (prefix_k, prefix_v) = if first_seen > 0 {
            (
                prefix_k.narrow(1, first_seen, start - first_seen),
                prefix_v.narrow(1, first_seen, start - first_seen),
            )
        } else {
            (prefix_k.shallow_clone(), prefix_v.shallow_clone())
        };
        let prefix = prefix_k.size()[1];
        let scale = 1.0 / (hd as f64).sqrt();
        // [n, KV, G*S, hd]: the query heads that share a key-value head, stacked.
        let q = q.reshape([n, kv_heads, groups * queries, hd]);
        // One position (the usual answer-position-only pass): each row's own score is a dot
        // product, cheaper as a multiply-and-sum than as thousands of 1-column matrix products.
        let single = queries == 1;
        let mut own_scores = if single {
            (&q * k).sum_dim_intlist(-1, true, Kind::Float) * scale
        } else {
            q.matmul(&k.transpose(-1, -2)) * scale
        }; // [n, KV, G*S, S]
        if queries > 1 {
            let device = q.device();
            let query_pos = Tensor::arange(groups * queries, (Kind::Int64, device))
                .remainder(queries)
                .unsqueeze(1);
            let key_pos = Tensor::arange(queries, (Kind::Int64, device)).unsqueeze(0);
            let mut hidden = key_pos.gt_tensor(&query_pos);
            if let Some(w) = window {
                hidden = hidden.logical_or(&key_pos.le_tensor(&(&query_pos - w)));
            }
            own_scores = own_scores.masked_fill(&hidden, f64::NEG_INFINITY);
        }
        let attended = if prefix == 0 {
            own_scores.softmax(-1, Kind::Float).matmul(v)
        } else {
            // Per key-value head, all rows' queries as one matrix: [KV, n*G*S, hd].
            let q_by_head = q
                .transpose(0, 1)
                .reshape([kv_heads, n * groups * queries, hd]);
            let mut prefix_scores = (q_by_head.bmm(&prefix_k.transpose(1, 2)) * scale)
                .reshape([kv_heads, n, groups * queries, prefix])
                .transpose(0, 1); // [n, KV, G*S, P]
            if let (Some(w), true) = (window, queries > 1) {
                // Later queries see less of the prefix: key j hidden when j <= start + s - w.
                let device = q.device();
                let query_pos = Tensor::arange(groups * queries, (Kind::Int64, device))
                    .remainder(queries)
                    .unsqueeze(1)
                    + start;
                let key_pos =
                    Tensor::arange(prefix, (Kind::Int64, device)).unsqueeze(0) + first_seen;
                prefix_scores = prefix_scores
                    .masked_fill(&key_pos.le_tensor(&(query_pos - w)), f64::NEG_INFINITY);
            }
            let weights = Tensor::cat(&[prefix_scores, own_scores], -1).softmax(-1, Kind::Float);
            let parts = weights.split_with_sizes([prefix, queries], -1);
            let from_prefix = parts[0]
                .transpose(0, 1)
                .reshape([kv_heads, n * groups * queries, prefix])
                .bmm(&prefix_v)
                .reshape([kv_heads, n, groups * queries, hd])
                .transpose(0, 1);
            let from_own = if single {
                &parts[1] * v
            } else {
                parts[1].matmul(v)
            };
            from_prefix + from_own
        };
        attended
            .reshape([n, self.config.heads as i64, queries, hd])
            .transpose(1, 2)
            .reshape([n, queries, -1])
    }

    fn ffn_activation(&self, layer: &LlamaLayer, x: &Tensor) -> Tensor {
        let h = self.rms_norm(x, &layer.ffn_norm);
        // In autograd, `swiglu` splits (whose backward concatenates) rather than narrows
        // (whose backward zero-fills).
        swiglu(&linear(&h, &layer.gate_up))
    }

    fn logits(&self, x: &Tensor) -> Tensor {
        linear(&self.rms_norm(x, &self.output_norm), &self.lm_head)
    }
}

/// The clean pass's cached keys and values of the positions before `start` at layer `j`,
/// `[KV, start, hd]` each: what a resumed row attends to without recomputing it.
fn cached_prefix(clean: &CleanPass, start: i64, j: usize) -> (Tensor, Tensor) {
    (
        clean.keys[j].narrow(1, 0, start),
        clean.values[j].narrow(1, 0, start),
    )
}

/// Positions a resumed pass recomputes: from the answer position to the prompt's end.
fn recomputed_positions(clean: &CleanPass) -> usize {
    clean.prompt.token_ids.len() - clean.prompt.answer_position
}

/// Rows of several tensors stacked along the first axis (no copy for a single tensor).
fn cat_rows(parts: &[Tensor]) -> Tensor {
    match parts {
        [one] => one.shallow_clone(),
        _ => Tensor::cat(parts, 0),
    }
}

/// Undoes llama.cpp's conversion permutation of Q/K rows (`[heads * hd, in]`): GGUF stores
/// each head's rows interleaved in pairs, Hugging Face as two halves.
fn unpermute_rows(weight: &Tensor, heads: i64) -> Tensor {
    let size = weight.size();
    let (rows, cols) = (size[0], size[1]);
    weight
        .reshape([heads, rows / heads / 2, 2, cols])
        .transpose(1, 2)
        .reshape([rows, cols])
        .contiguous()
}

impl KnowledgeModel for LlamaCausalLm {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn device(&self) -> Device {
        self.device
    }

    fn tokenizer(&self) -> &dyn Tokenizer {
        &self.tokenizer
    }

    fn token_text(&self, id: i64) -> String {
        u32::try_from(id)
            .ok()
            .and_then(|id| self.tokenizer.decode(&[id]).ok())
            .unwrap_or_else(|| "<?>".to_string())
    }

    fn encode(
        &self,
        prompt: &str,
        answer: Option<&str>,
        policy: AnswerPolicy,
    ) -> Result<EncodedPrompt> {
        // The answer is the next token(s); it is tokenized with a leading space, so trailing
        // whitespace of the prompt is dropped.
        let prompt_text = prompt.trim_end();
        if prompt_text.is_empty() {
            return Err(ModelError::EmptyPrompt);
        }
        let mut token_ids: Vec<i64> = Vec::new();
        if self.config.add_bos {
            if let Some(bos) = self.config.bos_id {
                token_ids.push(bos);
            }
        }
        token_ids.extend(
            self.tokenizer
                .encode(prompt_text)?
                .into_iter()
                .map(i64::from),
        );
        let answer_position = token_ids.len() - 1;
        let (answer_ids, targets) = match answer {
            None => (Vec::new(), Vec::new()),
            Some(answer) => {
                let text = format!(" {}", answer.trim());
                let ids: Vec<i64> = if answer.trim().is_empty() {
                    Vec::new()
                } else {
                    self.tokenizer
                        .encode(&text)?
                        .into_iter()
                        .map(i64::from)
                        .collect()
                };
                let (appended, targets) =
                    common::answer_targets(answer, &ids, answer_position, policy, true)?;
                token_ids.extend(appended);
                (ids, targets)
            }
        };
        if token_ids.len() > self.info.max_positions {
            return Err(ModelError::PromptTooLong {
                tokens: token_ids.len(),
                max: self.info.max_positions,
            });
        }
        Ok(EncodedPrompt {
            text: prompt.to_string(),
            token_ids,
            answer_position,
            answer_ids,
            targets,
        })
    }

    fn forward(
        &self,
        prompts: &[EncodedPrompt],
        edits: &[ActivationEdit],
        capture_activations: bool,
    ) -> Result<ForwardOutput> {
        let longest = check_batch(&self.info, prompts)?;
        common::check_edits(&self.info, edits)?;
        guard(|| {
            tch::no_grad(|| {
                // Right padding: causal attention keeps real tokens blind to the padding after them.
                let (ids, _) = common::pad_batch(prompts, longest, 0, self.device);
                let answer = answer_positions(prompts, self.device);
                let tables =
                    self.rope_tables(&Tensor::arange(longest as i64, (Kind::Int64, self.device)));
                let (batch, length) = (ids.size()[0], ids.size()[1]);
                let mut x = self
                    .embeddings
                    .index_select(0, &ids.flatten(0, -1))
                    .reshape([batch, length, -1]);
                let mut captured = Vec::new();
                for (l, layer) in self.layers.iter().enumerate() {
                    let (q, k, v) = self.qkv(layer, &self.rms_norm(&x, &layer.attn_norm), &tables);
                    x = x + linear(&self.attend(&q, &k, &v, 0, layer.window), &layer.wo);
                    let mut act = self.ffn_activation(layer, &x);
                    apply_edits(&mut act, l, edits, &answer);
                    if capture_activations {
                        captured.push(rows_at(&act, &answer));
                    }
                    x = x + linear(&act, &layer.down);
                }
                let logits = self.logits(&rows_at(&x, &answer));
                let activations = capture_activations.then(|| Tensor::stack(&captured, 1));
                Ok(ForwardOutput {
                    logits,
                    activations,
                })
            })
        })
    }

    fn clean_pass(&self, prompt: &EncodedPrompt) -> Result<CleanPass> {
        check_batch(&self.info, std::slice::from_ref(prompt))?;
        guard(|| {
            tch::no_grad(|| {
                let ids = Tensor::from_slice(&prompt.token_ids).to_device(self.device);
                let length = ids.size()[0];
                let tables = self.rope_tables(&Tensor::arange(length, (Kind::Int64, self.device)));
                let answer = prompt.answer_position as i64;
                let mut x = self.embeddings.index_select(0, &ids).unsqueeze(0);
                let mut hidden_in = vec![x.get(0)];
                let (mut residuals, mut activations, mut keys, mut values) =
                    (Vec::new(), Vec::new(), Vec::new(), Vec::new());
                for layer in &self.layers {
                    let (q, k, v) = self.qkv(layer, &self.rms_norm(&x, &layer.attn_norm), &tables);
                    x = x + linear(&self.attend(&q, &k, &v, 0, layer.window), &layer.wo);
                    let act = self.ffn_activation(layer, &x);
                    activations.push(act.get(0).get(answer));
                    residuals.push(x.get(0));
                    keys.push(k.get(0));
                    values.push(v.get(0));
                    x = x + linear(&act, &layer.down);
                    hidden_in.push(x.get(0));
                }
                let targets: Vec<i64> = prompt.targets.iter().map(|&(p, _)| p as i64).collect();
                let index = Tensor::from_slice(&targets).to_device(self.device);
                let target_logits = self.logits(&x.get(0).index_select(0, &index));
                Ok(CleanPass {
                    prompt: prompt.clone(),
                    hidden_in,
                    ffn_input_residual: residuals,
                    activations: Tensor::stack(&activations, 0),
                    keys,
                    values,
                    target_logits,
                })
            })
        })
    }

    fn output_projection(&self) -> (Tensor, Option<Tensor>) {
        (self.lm_head.shallow_clone(), None)
    }

    /// On the CPU, where the hand-written pass keeps ~40 % less per row than autograd's graph,
    /// two SmolLM2 prompts' rows (2 x 600) fit within 1.5 GB; elsewhere the caller's default.
    fn rows_in_flight_hint(&self) -> Option<usize> {
        (self.device == Device::Cpu).then_some(CPU_ROWS_IN_FLIGHT)
    }

    /// On the CPU with two or more threads, [`CPU_CONCURRENT_PASSES`]; otherwise one.
    fn concurrent_passes_hint(&self) -> usize {
        if self.device == Device::Cpu && tch::get_num_threads() >= 2 {
            CPU_CONCURRENT_PASSES
        } else {
            1
        }
    }

    fn as_sync(&self) -> Option<&(dyn KnowledgeModel + Sync)> {
        Some(self)
    }

    /// On the CPU, runs whose answer position is their last token go through the hand-written
    /// pass of `llama/backward.rs` (less memory, no autograd bookkeeping); everything else
    /// (several recomputed positions, CUDA) through autograd.
    fn start_gradients_batch(
        &self,
        runs: &[(&CleanPass, &[(usize, Tensor)])],
        head: &mut dyn FnMut(&[Tensor]) -> Result<Vec<Tensor>>,
    ) -> Result<Vec<Vec<Tensor>>> {
        if self.device == Device::Cpu && self.is_plain() && backward::covers(runs) {
            self.start_gradients_by_hand(runs, head)
        } else {
            crate::model::start_gradients_by_autograd(self, runs, head)
        }
    }

    fn forward_features_from_layers(
        &self,
        clean: &CleanPass,
        starts: &[(usize, Tensor)],
    ) -> Result<Tensor> {
        let mut features = self.resume_runs(&[(clean, starts)])?;
        features
            .pop()
            .ok_or_else(|| ModelError::InvalidArgument("no rows to run".into()))
    }

    fn forward_features_batch(
        &self,
        runs: &[(&CleanPass, &[(usize, Tensor)])],
    ) -> Result<Vec<Tensor>> {
        // Runs batch together when they recompute the same number of positions (always so
        // for first-token answers); otherwise each runs alone.
        if runs
            .windows(2)
            .all(|pair| recomputed_positions(pair[0].0) == recomputed_positions(pair[1].0))
        {
            return self.resume_runs(runs);
        }
        runs.iter()
            .map(|&(clean, starts)| self.forward_features_from_layers(clean, starts))
            .collect()
    }

    fn value_slots(&self, layer: usize, neurons: &[usize]) -> Result<Tensor> {
        common::read_value_slots(&self.info, layer, neurons, |l| {
            self.layers[l].down.shallow_clone()
        })
    }

    fn set_value_slots(&mut self, layer: usize, neurons: &[usize], values: &Tensor) -> Result<()> {
        check_layer(&self.info, layer)?;
        common::write_value_slots(
            &self.info,
            layer,
            neurons,
            values,
            &mut self.layers[layer].down,
        )
    }

    fn output_embedding(&self, token: i64) -> Result<Tensor> {
        common::check_token(&self.info, token)?;
        guard(|| Ok(self.lm_head.get(token).copy()))
    }
}
