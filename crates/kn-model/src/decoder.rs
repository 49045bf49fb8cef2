//! The decoder family on libtorch: every decoder-only model `kn` runs (Llama 2/3.x, SmolLM2,
//! Mistral, Qwen2, Qwen3, Gemma-3, Phi-3, GPT-2, GPT-Neo, GPT-NeoX/Pythia) computed by one layer
//! whose variations come from `kn_config::DecoderConfig`: RMSNorm or LayerNorm (Gemma's `1 + w`
//! folded into the weights at load), Gemma's sandwich norms, gated or plain FFN (SiLU, GELU-tanh,
//! GELU), biases, grouped-query attention with optional per-head query/key norms, the score
//! scale, sliding windows per layer, rotary positions (partial, per-layer tables, `linear` and
//! `llama3` scaling) or learned ones, sequential or parallel residuals, an embedding scale, tied
//! or separate output heads. Each architecture is a small file of `kn_config::arch`: its config
//! mapping and tensor names.
//!
//! Loaded from a Hugging Face directory (`config.json`, `model.safetensors`, `tokenizer.json`) or a
//! GGUF file (llama; any tensor type `kn-gguf` dequantizes; llama.cpp's Q/K row permutation is
//! undone).
//!
//! Neuron = the input of the FFN's output projection at the last prompt token (`act(gate(x)) *
//! up(x)` for gated FFNs, `act(fc(x))` for plain ones); value slot = its column of the output
//! projection.

mod backward;
pub use backward::covers_config as hand_written_backward_covers;

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

/// Prompt positions a row's attention weights are counted for in
/// [`KnowledgeModel::bytes_per_row_hint`] (PARAREL prompts are about a dozen tokens).
const BUDGETED_PROMPT_TOKENS: u64 = 128;

/// Rows of the output matrix (vocabulary entries) the closed-form output head of attribution
/// takes at once (`kn_attribution::head_values_and_gradient`): its working memory is one
/// `[block, rows x targets]` float32 buffer, counted per row in
/// [`KnowledgeModel::bytes_per_row_hint`].
pub const HEAD_VOCAB_BLOCK: i64 = 2048;

use crate::common::{
    self, answer_positions, apply_edits, check_batch, check_layer, check_layer_count, rows_at,
};
use crate::error::{guard, ModelError, Result};
use crate::model::{
    ActivationEdit, AnswerPolicy, CleanPass, EncodedPrompt, ForwardOutput, KnowledgeModel,
    ModelInfo, ModelKind,
};
use crate::precision::Dtype;
use crate::weights::{SharedMap, WeightMap};
use kn_config::decoder::{Activation, NormKind, Part, Positions, QkvLayout};
use kn_config::DecoderConfig;
use kn_kernels::matmul::linear;
use kn_kernels::swiglu::swiglu;
use kn_tokenizer::{HfTokenizer, Tokenizer};
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// A norm's weight and, for LayerNorm, bias.
struct NormWeights {
    weight: Tensor,
    bias: Option<Tensor>,
}

/// Where a model's weights go and the type its weight matrices are held in.
#[derive(Clone, Copy)]
struct Target {
    device: Device,
    dtype: Dtype,
}

/// One decoder layer. The query, key and value projections are stored stacked (`qkv`), and so
/// are the gate and up projections of a gated FFN (`up`): one matrix product each instead of
/// three and two, which matters for the small row counts of attribution passes.
struct DecoderLayer {
    attn_norm: NormWeights,
    /// `[q_rows + 2 kv_rows, d]`: query rows, then key rows, then value rows.
    qkv: Tensor,
    /// The projections' biases, `[q_rows + 2 kv_rows]`.
    qkv_bias: Option<Tensor>,
    /// Per-head norm weights of the queries then the keys, `[H + KV, hd]` (Qwen3, Gemma-3).
    qk_norm: Option<Tensor>,
    wo: Tensor,
    wo_bias: Option<Tensor>,
    /// The norm of the attention output before the residual add (Gemma).
    post_attn_norm: Option<NormWeights>,
    ffn_norm: NormWeights,
    /// Gated: `[2 ffn_width, d]`, gate rows then up rows; plain: `[ffn_width, d]`.
    up: Tensor,
    up_bias: Option<Tensor>,
    down: Tensor,
    down_bias: Option<Tensor>,
    /// The norm of the FFN output before the residual add (Gemma).
    post_ffn_norm: Option<NormWeights>,
    /// The sliding attention window of this layer (`None`: full causal attention).
    window: Option<i64>,
    /// The index of this layer's RoPE table.
    rope: usize,
}

/// A decoder-only causal LM.
pub struct DecoderLm {
    info: ModelInfo,
    config: DecoderConfig,
    device: Device,
    /// Hugging Face's `tokenizers` for a `tokenizer.json`; the byte-level BPE of its GGUF metadata.
    tokenizer: Box<dyn Tokenizer>,
    embeddings: Tensor,
    /// Learned absolute position embeddings, `[max_positions, d]`.
    position_embeddings: Option<Tensor>,
    layers: Vec<DecoderLayer>,
    output_norm: NormWeights,
    lm_head: Tensor,
    /// Per RoPE table, the inverse frequencies, `[rotary_dim / 2]`.
    inv_freqs: Vec<Tensor>,
    /// Dimensions rotated per head (0 with learned positions).
    rotary_dim: i64,
    /// Whether the hand-written backward pass (`decoder/backward.rs`) computes this model.
    hand_written_backward: bool,
}

/// The name of [`DecoderLm`] when it ran the Llama family only.
pub type LlamaCausalLm = DecoderLm;

// SAFETY: the only fields that are not `Sync` are libtorch tensors, whose reference counts are
// atomic and which libtorch allows to be read from several threads at once. Every `&self`
// method only reads them (results are new tensors, and `output_projection` hands out shallow
// handles documented as read-only); the one method that writes weights, `set_value_slots`,
// takes `&mut self`, so no write can overlap a shared borrow. The tokenizer's cache is behind
// a lock.
unsafe impl Sync for DecoderLm {}

/// Per RoPE table, the cos and sin of some positions, each `[T, rotary_dim]`.
type RopeTables = Vec<(Tensor, Tensor)>;

/// One clean pass resumed in a batched pass: where its recomputed positions start and their
/// RoPE tables.
struct ResumedRun<'a> {
    clean: &'a CleanPass,
    start: i64,
    tables: RopeTables,
}

impl DecoderLm {
    /// Loads a GGUF file: `llama` or `qwen2` with a byte-level BPE tokenizer, or `gemma3` with
    /// its SentencePiece vocabulary; weight matrices in `dtype` (dequantized to float32 one
    /// tensor at a time, then rounded).
    pub fn load_gguf(path: &Path, device: Device, dtype: Dtype) -> Result<Self> {
        let map = SharedMap::open(path)?;
        let file = kn_gguf::GgufFile::from_source(map.clone(), &path.display().to_string())?;
        let config_error = |reason: String| ModelError::Config {
            path: path.to_path_buf(),
            reason,
        };
        let arch = file.get_str("general.architecture")?.to_string();
        let model = file.get_str("tokenizer.ggml.model")?.to_string();
        let tokens: Vec<String> = file
            .get_str_array("tokenizer.ggml.tokens")?
            .into_iter()
            .map(String::from)
            .collect();
        let token_types = file.get_i64_array("tokenizer.ggml.token_type").ok();
        let add_bos = matches!(
            file.get("tokenizer.ggml.add_bos_token"),
            Some(kn_gguf::MetadataValue::Bool(true))
        );
        let bos_id = file
            .get_u64("tokenizer.ggml.bos_token_id")
            .ok()
            .and_then(|id| i64::try_from(id).ok());
        let config = DecoderConfig::from_gguf(&file, tokens.len(), add_bos, bos_id)
            .map_err(|e| config_error(e.to_string()))?;
        let tokenizer: Box<dyn Tokenizer> = match (model.as_str(), arch.as_str()) {
            ("gpt2", _) => {
                let merges: Vec<String> = file
                    .get_str_array("tokenizer.ggml.merges")?
                    .into_iter()
                    .map(String::from)
                    .collect();
                let pre = file.get_str("tokenizer.ggml.pre").unwrap_or("default");
                Box::new(kn_tokenizer::byte_level_from_gguf_metadata(
                    &tokens,
                    &merges,
                    token_types.as_deref(),
                    pre,
                    path,
                )?)
            }
            ("llama", "gemma3") => {
                let unk = file
                    .get_u64("tokenizer.ggml.unknown_token_id")
                    .ok()
                    .and_then(|id| u32::try_from(id).ok());
                Box::new(kn_tokenizer::sentencepiece::gemma_from_gguf_metadata(
                    &tokens,
                    token_types.as_deref(),
                    unk,
                    path,
                )?)
            }
            (model, arch) => {
                return Err(config_error(format!(
                    "tokenizer.ggml.model {model:?} of architecture {arch:?} is not supported \
                     (byte-level BPE \"gpt2\"; SentencePiece \"llama\" of gemma3)"
                )))
            }
        };
        let mut weights = WeightMap::from_gguf(file, map.clone(), path, device);
        // llama.cpp stores Llama 3.1's position scaling as this tensor of frequency factors.
        if weights.contains("rope_freqs.weight") {
            return Err(config_error(
                "tensor rope_freqs.weight (RoPE frequency scaling from GGUF) is not supported"
                    .into(),
            ));
        }
        weights.check_fits(dtype)?;
        let fingerprint = map.fingerprint();
        let target = Target { device, dtype };
        Self::from_weights(config, tokenizer, &mut weights, path, fingerprint, target)
    }

    /// Loads a Hugging Face directory: `config.json`, `tokenizer.json` and `model.safetensors`
    /// or the shards of `model.safetensors.index.json` (memory-mapped, see `weights`); weight
    /// matrices in `dtype` (a checkpoint's bfloat16 tensors are copied as they are for bf16).
    pub fn load_hf_dir(dir: &Path, device: Device, dtype: Dtype) -> Result<Self> {
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
            DecoderConfig::from_hf_json(&text, add_bos).map_err(|e| config_error(e.to_string()))?;
        let tokenizer = Box::new(HfTokenizer::from_file(&dir.join("tokenizer.json"))?);
        let (mut weights, fingerprint) = WeightMap::from_safetensors_dir(dir, device, dtype)?;
        let target = Target { device, dtype };
        Self::from_weights(config, tokenizer, &mut weights, dir, fingerprint, target)
    }

    fn from_weights(
        config: DecoderConfig,
        tokenizer: Box<dyn Tokenizer>,
        weights: &mut WeightMap,
        source: &Path,
        fingerprint: String,
        Target { device, dtype }: Target,
    ) -> Result<Self> {
        let names = config.tensors;
        let (v, d, f) = (
            config.vocab_size as i64,
            config.hidden_size as i64,
            config.ffn_width as i64,
        );
        let hd = config.head_dim as i64;
        let q_rows = config.heads as i64 * hd;
        let kv_rows = config.kv_heads as i64 * hd;
        let norm = |weights: &mut WeightMap, path: &str| -> Result<NormWeights> {
            let weight = weights.take(&[&format!("{path}.weight")], &[d])?;
            let weight = if config.norm.unit_offset {
                guard(|| Ok(weight + 1.0))?
            } else {
                weight
            };
            let bias = match config.norm.kind {
                NormKind::Layer => Some(weights.take(&[&format!("{path}.bias")], &[d])?),
                NormKind::Rms => None,
            };
            Ok(NormWeights { weight, bias })
        };
        let embeddings = weights.take_as(&[names.embeddings], &[v, d], dtype)?;
        let position_embeddings = match (&config.positions, names.positions) {
            (Positions::Learned, Some(name)) => {
                Some(weights.take(&[name], &[config.max_positions as i64, d])?)
            }
            (Positions::Learned, None) => {
                return Err(ModelError::Config {
                    path: source.to_path_buf(),
                    reason: "learned positions without a position embedding tensor".into(),
                })
            }
            _ => None,
        };
        let output_norm = norm(weights, names.output_norm)?;
        // An untied model without its head gets `take_as`'s MissingTensor error.
        let lm_head = if weights.contains(names.lm_head) || !config.tied_embeddings {
            weights.take_as(&[names.lm_head], &[v, d], dtype)?
        } else {
            embeddings.shallow_clone()
        };
        let down_name = |l: usize| {
            names
                .layer_part(l, Part::Down)
                .map(|p| format!("{p}.weight"))
                .unwrap_or_default()
        };
        check_layer_count(
            config.num_layers,
            config.num_layers_key,
            |l| weights.contains(&down_name(l)),
            source,
        )?;
        let mut layers = Vec::with_capacity(config.num_layers);
        for l in 0..config.num_layers {
            let path = |part: Part| -> Result<String> {
                names.layer_part(l, part).ok_or_else(|| ModelError::Config {
                    path: source.to_path_buf(),
                    reason: format!("the {} layout has no {part:?} tensor", config.model_type),
                })
            };
            // A linear layer's weight as `[out, in]` (GPT-2's Conv1D stores `[in, out]`).
            let linear_weight =
                |weights: &mut WeightMap, part: Part, out: i64, inp: i64| -> Result<Tensor> {
                    let name = format!("{}.weight", path(part)?);
                    if names.transposed {
                        let w = weights.take_as(&[&name], &[inp, out], dtype)?;
                        guard(|| Ok(w.transpose(0, 1).contiguous()))
                    } else {
                        weights.take_as(&[&name], &[out, inp], dtype)
                    }
                };
            let take_bias = |weights: &mut WeightMap, part: Part, rows: i64| -> Result<Tensor> {
                weights.take(&[&format!("{}.bias", path(part)?)], &[rows])
            };
            // The bias of `part` when the configuration gives it one.
            let bias = |weights: &mut WeightMap, part: Part, rows: i64, present: bool| {
                present.then(|| take_bias(weights, part, rows)).transpose()
            };
            let attn_norm = norm(weights, &path(Part::AttnNorm)?)?;
            let qkv_rows = q_rows + 2 * kv_rows;
            let (qkv, qkv_bias) = if (names.part)(Part::Qkv).is_some() {
                let w = linear_weight(weights, Part::Qkv, qkv_rows, d)?;
                let b = bias(weights, Part::Qkv, qkv_rows, config.attention_bias)?;
                match names.qkv_layout {
                    QkvLayout::Stacked => (w, b),
                    QkvLayout::PerHead => {
                        let heads = config.heads as i64;
                        let order = |t: Tensor| -> Result<Tensor> {
                            guard(|| {
                                let rest: Vec<i64> = t.size()[1..].to_vec();
                                let mut shape = vec![heads, 3, hd];
                                shape.extend(&rest);
                                let mut flat = vec![qkv_rows];
                                flat.extend(&rest);
                                Ok(t.reshape(shape.as_slice())
                                    .transpose(0, 1)
                                    .reshape(flat.as_slice())
                                    .contiguous())
                            })
                        };
                        (order(w)?, b.map(order).transpose()?)
                    }
                }
            } else {
                let mut wq = linear_weight(weights, Part::Q, q_rows, d)?;
                let mut wk = linear_weight(weights, Part::K, kv_rows, d)?;
                if names.rope_permuted {
                    wq = unpermute_rows(&wq, config.heads as i64);
                    wk = unpermute_rows(&wk, config.kv_heads as i64);
                }
                let wv = linear_weight(weights, Part::V, kv_rows, d)?;
                let b = if config.attention_bias {
                    let bq = take_bias(weights, Part::Q, q_rows)?;
                    let bk = take_bias(weights, Part::K, kv_rows)?;
                    let bv = take_bias(weights, Part::V, kv_rows)?;
                    Some(guard(|| Ok(Tensor::cat(&[bq, bk, bv], 0)))?)
                } else {
                    None
                };
                (guard(|| Ok(Tensor::cat(&[wq, wk, wv], 0)))?, b)
            };
            let qk_norm = if config.qk_norm {
                let mut head_norm = |part: Part| -> Result<Tensor> {
                    let w = weights.take(&[&format!("{}.weight", path(part)?)], &[hd])?;
                    if config.norm.unit_offset {
                        guard(|| Ok(w + 1.0))
                    } else {
                        Ok(w)
                    }
                };
                let (q_norm, k_norm) = (head_norm(Part::QNorm)?, head_norm(Part::KNorm)?);
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
            let wo = linear_weight(weights, Part::O, d, q_rows)?;
            let wo_bias = bias(weights, Part::O, d, config.output_bias)?;
            let post_attn_norm = config
                .sandwich_norms
                .then(|| norm(weights, &path(Part::PostAttnNorm)?))
                .transpose()?;
            let ffn_norm = norm(weights, &path(Part::FfnNorm)?)?;
            let (up, up_bias) = if !config.ffn.gated {
                (
                    linear_weight(weights, Part::Fc, f, d)?,
                    bias(weights, Part::Fc, f, config.ffn.bias)?,
                )
            } else if (names.part)(Part::GateUp).is_some() {
                (
                    linear_weight(weights, Part::GateUp, 2 * f, d)?,
                    bias(weights, Part::GateUp, 2 * f, config.ffn.bias)?,
                )
            } else {
                let gate = linear_weight(weights, Part::Gate, f, d)?;
                let up = linear_weight(weights, Part::Up, f, d)?;
                let b = if config.ffn.bias {
                    let bg = take_bias(weights, Part::Gate, f)?;
                    let bu = take_bias(weights, Part::Up, f)?;
                    Some(guard(|| Ok(Tensor::cat(&[bg, bu], 0)))?)
                } else {
                    None
                };
                (guard(|| Ok(Tensor::cat(&[gate, up], 0)))?, b)
            };
            let down = linear_weight(weights, Part::Down, d, f)?;
            let down_bias = bias(weights, Part::Down, d, config.ffn.bias)?;
            let post_ffn_norm = config
                .sandwich_norms
                .then(|| norm(weights, &path(Part::PostFfnNorm)?))
                .transpose()?;
            layers.push(DecoderLayer {
                attn_norm,
                qkv,
                qkv_bias,
                qk_norm,
                wo,
                wo_bias,
                post_attn_norm,
                ffn_norm,
                up,
                up_bias,
                down,
                down_bias,
                post_ffn_norm,
                window: config.sliding_windows[l].map(|w| w as i64),
                rope: match &config.positions {
                    Positions::Rotary { layer_rope, .. } => layer_rope[l],
                    Positions::Learned => 0,
                },
            });
        }
        let (inv_freqs, rotary_dim) = match &config.positions {
            Positions::Rotary {
                rotary_dim, ropes, ..
            } => {
                let tables = ropes
                    .iter()
                    .map(|rope| {
                        let frequencies = rope.inverse_frequencies(*rotary_dim);
                        guard(|| {
                            Ok(Tensor::from_slice(&frequencies)
                                .to_kind(Kind::Float)
                                .to_device(device))
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                (tables, *rotary_dim as i64)
            }
            Positions::Learned => (Vec::new(), 0),
        };
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
            dtype,
        };
        Ok(Self {
            info,
            hand_written_backward: backward::covers_config(&config),
            config,
            device,
            tokenizer,
            embeddings,
            position_embeddings,
            layers,
            output_norm,
            lm_head,
            inv_freqs,
            rotary_dim,
        })
    }

    /// RMSNorm of `x` over the hidden width with `weight` (the hand-written backward pass's).
    fn rms_norm(&self, x: &Tensor, weight: &Tensor) -> Tensor {
        x.rms_norm(
            [self.config.hidden_size as i64],
            Some(weight),
            self.config.norm.eps,
        )
    }

    /// The model's norm of `x` over the hidden width.
    fn norm(&self, x: &Tensor, norm: &NormWeights) -> Tensor {
        let d = [self.config.hidden_size as i64];
        match self.config.norm.kind {
            NormKind::Rms => x.rms_norm(d, Some(&norm.weight), self.config.norm.eps),
            NormKind::Layer => x.layer_norm(
                d,
                Some(&norm.weight),
                norm.bias.as_ref(),
                self.config.norm.eps,
                false,
            ),
        }
    }

    /// The token (and learned position) embeddings of `ids` (`[B, S]`) at positions `0..S`.
    fn embed(&self, ids: &Tensor) -> Tensor {
        let (batch, length) = (ids.size()[0], ids.size()[1]);
        // Half-precision embeddings are widened: the residual stream is float32.
        let mut x = self
            .embeddings
            .index_select(0, &ids.flatten(0, -1))
            .reshape([batch, length, -1])
            .to_kind(Kind::Float);
        if let Some(scale) = self.config.embedding_scale {
            // transformers multiplies by the scale rounded to the weights' float32.
            x = x * f64::from(scale as f32);
        }
        if let Some(positions) = &self.position_embeddings {
            x = x + positions.narrow(0, 0, length).unsqueeze(0);
        }
        x
    }

    /// Per RoPE table, cos and sin for `positions` (`[T]`), each `[T, rotary_dim]` (none with
    /// learned positions).
    fn rope_tables_all(&self, positions: &Tensor) -> RopeTables {
        let positions = positions.to_kind(Kind::Float).unsqueeze(1);
        self.inv_freqs
            .iter()
            .map(|inv_freq| {
                let angles = &positions * inv_freq.unsqueeze(0);
                let angles = Tensor::cat(&[&angles, &angles], 1);
                (angles.cos(), angles.sin())
            })
            .collect()
    }

    /// Rotary embedding of `x` (`[..., T, head_dim]`) over all of its last dimension, the
    /// rotate-half form of Hugging Face. The halves are taken with `chunk` (whose backward
    /// concatenates) rather than `narrow` (whose backward writes into a zeroed buffer).
    fn rope(x: &Tensor, (cos, sin): &(Tensor, Tensor)) -> Tensor {
        let halves = x.chunk(2, -1);
        let rotated = Tensor::cat(&[&halves[1].neg(), &halves[0]], -1);
        x * cos + rotated * sin
    }

    /// [`Self::rope`] of the first `rotary_dim` dimensions of each head (all of them unless
    /// partial, as GPT-NeoX), the rest passed through.
    fn rope_partial(&self, x: &Tensor, tables: &(Tensor, Tensor)) -> Tensor {
        let hd = self.config.head_dim as i64;
        if self.rotary_dim == hd {
            return Self::rope(x, tables);
        }
        let parts = x.split_with_sizes([self.rotary_dim, hd - self.rotary_dim], -1);
        Tensor::cat(
            &[Self::rope(&parts[0], tables), parts[1].shallow_clone()],
            -1,
        )
    }

    /// Queries, keys and values of `h` (`[B, S, d]`, already normed) with the RoPE `tables` of
    /// their positions. Returns q `[B, H, S, hd]`, k and v `[B, KV, S, hd]`.
    fn qkv(
        &self,
        layer: &DecoderLayer,
        h: &Tensor,
        tables: &RopeTables,
    ) -> (Tensor, Tensor, Tensor) {
        self.heads_with_rope(layer, &self.project_qkv(layer, h), tables)
    }

    /// The fused query/key/value projection of `h`, with its bias when the model has one.
    fn project_qkv(&self, layer: &DecoderLayer, h: &Tensor) -> Tensor {
        with_bias(linear(h, &layer.qkv), &layer.qkv_bias)
    }

    /// Splits the fused projection's output `qkv` (`[B, S, (H + 2 KV) hd]`) into heads and
    /// applies the query/key norms (when the model has them) and RoPE (with rotary positions) to
    /// the queries and keys, in one go: they are adjacent in the fused projection's output.
    fn heads_with_rope(
        &self,
        layer: &DecoderLayer,
        qkv: &Tensor,
        tables: &RopeTables,
    ) -> (Tensor, Tensor, Tensor) {
        let (batch, length) = (qkv.size()[0], qkv.size()[1]);
        let hd = self.config.head_dim as i64;
        let (heads, kv_heads) = (self.config.heads as i64, self.config.kv_heads as i64);
        let parts = qkv.split_with_sizes([(heads + kv_heads) * hd, kv_heads * hd], -1);
        let mut qk = parts[0].reshape([batch, length, heads + kv_heads, hd]);
        if let Some(weight) = &layer.qk_norm {
            qk = qk.rms_norm([hd], None::<&Tensor>, self.config.norm.eps) * weight;
        }
        let mut qk = qk.transpose(1, 2);
        if let Some(table) = tables.get(layer.rope) {
            qk = self.rope_partial(&qk, table);
        }
        let qk = qk.split_with_sizes([heads, kv_heads], 1);
        let v = parts[1]
            .reshape([batch, length, kv_heads, hd])
            .transpose(1, 2);
        (qk[0].shallow_clone(), qk[1].shallow_clone(), v)
    }

    /// The attention block of a layer for `x` (`[B, S, d]`): its output before the residual add
    /// (after the post-attention norm when the model has one), and the keys and values.
    fn attention_block(
        &self,
        layer: &DecoderLayer,
        x: &Tensor,
        tables: &RopeTables,
    ) -> (Tensor, Tensor, Tensor) {
        let (q, k, v) = self.qkv(layer, &self.norm(x, &layer.attn_norm), tables);
        let attended = self.attend(&q, &k, &v, 0, layer.window);
        (self.attention_output(layer, &attended), k, v)
    }

    /// The output projection of attended values, with its bias and post-attention norm.
    fn attention_output(&self, layer: &DecoderLayer, attended: &Tensor) -> Tensor {
        let out = with_bias(linear(attended, &layer.wo), &layer.wo_bias);
        match &layer.post_attn_norm {
            Some(norm) => self.norm(&out, norm),
            None => out,
        }
    }

    /// The residual stream the FFN's output is added to, and the FFN's input before its norm:
    /// `x + a` and `x + a` for sequential residuals, `x + a` and `x` for parallel ones (GPT-NeoX).
    fn residual_and_ffn_input(&self, x: &Tensor, attention: &Tensor) -> (Tensor, Tensor) {
        let residual = x + attention;
        if self.config.parallel_residual {
            (residual, x.shallow_clone())
        } else {
            let input = residual.shallow_clone();
            (residual, input)
        }
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
        let mut scores = q.matmul(&k.transpose(-1, -2)) * self.config.query_scale; // [B, KV, G*S, T]
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
        weights: &DecoderLayer,
        runs: &[ResumedRun],
        xs: Vec<Option<Tensor>>,
    ) -> Vec<Option<Tensor>> {
        let present: Vec<usize> = (0..xs.len()).filter(|&r| xs[r].is_some()).collect();
        let parts: Vec<Tensor> = xs.into_iter().flatten().collect();
        let sizes: Vec<i64> = parts.iter().map(|x| x.size()[0]).collect();
        let x = cat_rows(&parts);
        let qkv = self.project_qkv(weights, &self.norm(&x, &weights.attn_norm));
        let attended: Vec<Tensor> = present
            .iter()
            .zip(qkv.split_with_sizes(&sizes, 0))
            .map(|(&r, qkv)| {
                let run = &runs[r];
                let (q, k, v) = self.heads_with_rope(weights, &qkv, &run.tables);
                let prefix = cached_prefix(run.clean, run.start, j, weights.window);
                self.attend_after_prefix(&q, &k, &v, &prefix, run.start, weights.window)
            })
            .collect();
        let attention = self.attention_output(weights, &cat_rows(&attended));
        let (residual, ffn_input) = self.residual_and_ffn_input(&x, &attention);
        let act = self.ffn_activation(weights, &ffn_input);
        let x = residual + self.ffn_output(weights, &act);
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
                    let tables = self.rope_tables_all(&Tensor::arange_start(
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
                            + self.ffn_output(weights, activations);
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
                    let features = self.norm(&x.index_select(1, &index), &self.output_norm);
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
    /// `start`; with a sliding `window`, each query sees only the keys within it: the prefix
    /// comes cut to what the first query sees ([`cached_prefix`]), and the rest is masked.
    fn attend_after_prefix(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        prefix: &CachedPrefix,
        start: i64,
        window: Option<i64>,
    ) -> Tensor {
        let (n, queries) = (q.size()[0], q.size()[2]);
        let (kv_heads, groups) = (
            self.config.kv_heads as i64,
            (self.config.heads / self.config.kv_heads) as i64,
        );
        let hd = self.config.head_dim as i64;
        let (prefix_k, prefix_v, first_seen) = (&prefix.keys, &prefix.values, prefix.first);
        let prefix = prefix_k.size()[1];
        let scale = self.config.query_scale;
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

    /// The knowledge neurons' values for the FFN input `x` (before the FFN norm): `act(gate) *
    /// up` for gated FFNs, `act(fc)` for plain ones.
    fn ffn_activation(&self, layer: &DecoderLayer, x: &Tensor) -> Tensor {
        let h = self.norm(x, &layer.ffn_norm);
        let projected = with_bias(linear(&h, &layer.up), &layer.up_bias);
        let activation = self.config.ffn.activation;
        if !self.config.ffn.gated {
            return activate(&projected, activation);
        }
        if activation == Activation::Silu {
            // In autograd, `swiglu` splits (whose backward concatenates) rather than narrows
            // (whose backward zero-fills).
            return swiglu(&projected);
        }
        let halves = projected.chunk(2, -1);
        activate(&halves[0], activation) * &halves[1]
    }

    /// The FFN's contribution to the residual stream from the neurons' values `act`: the output
    /// projection with its bias, then the post-FFN norm when the model has one.
    fn ffn_output(&self, layer: &DecoderLayer, act: &Tensor) -> Tensor {
        let out = with_bias(linear(act, &layer.down), &layer.down_bias);
        match &layer.post_ffn_norm {
            Some(norm) => self.norm(&out, norm),
            None => out,
        }
    }

    fn logits(&self, x: &Tensor) -> Tensor {
        linear(&self.norm(x, &self.output_norm), &self.lm_head)
    }
}

/// The clean pass's cached keys and values at one layer that a query at a resumed pass's first
/// position sees: what a resumed row attends to without recomputing it.
struct CachedPrefix {
    /// `[KV, P, hd]` each: the positions `first..start`.
    keys: Tensor,
    values: Tensor,
    /// The first position the query sees (0 without a window).
    first: i64,
}

/// The [`CachedPrefix`] of layer `j` for queries from `start` on: the positions before
/// `start`, from the first within the sliding `window` of the query at `start` (a query at `p`
/// sees keys `p - window < j <= p`).
fn cached_prefix(clean: &CleanPass, start: i64, j: usize, window: Option<i64>) -> CachedPrefix {
    let first = window.map_or(0, |w| (start - w + 1).clamp(0, start));
    CachedPrefix {
        keys: clean.keys[j].narrow(1, first, start - first),
        values: clean.values[j].narrow(1, first, start - first),
        first,
    }
}

/// Positions a resumed pass recomputes: from the answer position to the prompt's end.
fn recomputed_positions(clean: &CleanPass) -> usize {
    clean.prompt.token_ids.len() - clean.prompt.answer_position
}

/// `x + bias` when there is a bias.
fn with_bias(x: Tensor, bias: &Option<Tensor>) -> Tensor {
    match bias {
        Some(bias) => x + bias,
        None => x,
    }
}

/// The FFN nonlinearity (transformers' `silu`, `gelu_new` / `gelu_pytorch_tanh`, `gelu`).
fn activate(x: &Tensor, activation: Activation) -> Tensor {
    match activation {
        Activation::Silu => x.silu(),
        Activation::GeluTanh => x.gelu("tanh"),
        Activation::GeluErf => x.gelu("none"),
    }
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

impl KnowledgeModel for DecoderLm {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn device(&self) -> Device {
        self.device
    }

    fn tokenizer(&self) -> &dyn Tokenizer {
        self.tokenizer.as_ref()
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
                let tables = self
                    .rope_tables_all(&Tensor::arange(longest as i64, (Kind::Int64, self.device)));
                let mut x = self.embed(&ids);
                let mut captured = Vec::new();
                for (l, layer) in self.layers.iter().enumerate() {
                    let (attention, _, _) = self.attention_block(layer, &x, &tables);
                    let (residual, ffn_input) = self.residual_and_ffn_input(&x, &attention);
                    let mut act = self.ffn_activation(layer, &ffn_input);
                    apply_edits(&mut act, l, edits, &answer);
                    if capture_activations {
                        captured.push(rows_at(&act, &answer));
                    }
                    x = residual + self.ffn_output(layer, &act);
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
                let ids = Tensor::from_slice(&prompt.token_ids)
                    .to_device(self.device)
                    .unsqueeze(0);
                let length = ids.size()[1];
                let tables =
                    self.rope_tables_all(&Tensor::arange(length, (Kind::Int64, self.device)));
                let answer = prompt.answer_position as i64;
                let mut x = self.embed(&ids);
                let mut hidden_in = vec![x.get(0)];
                let (mut residuals, mut activations, mut keys, mut values) =
                    (Vec::new(), Vec::new(), Vec::new(), Vec::new());
                for layer in &self.layers {
                    let (attention, k, v) = self.attention_block(layer, &x, &tables);
                    let (residual, ffn_input) = self.residual_and_ffn_input(&x, &attention);
                    let act = self.ffn_activation(layer, &ffn_input);
                    activations.push(act.get(0).get(answer));
                    residuals.push(residual.get(0));
                    keys.push(k.get(0));
                    values.push(v.get(0));
                    x = residual + self.ffn_output(layer, &act);
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

    fn residual_readout(&self) -> Option<(Tensor, f64)> {
        let c = &self.config;
        (c.norm.kind == NormKind::Rms && !c.sandwich_norms && !c.parallel_residual)
            .then(|| (self.output_norm.weight.shallow_clone(), c.norm.eps))
    }

    /// On the CPU, where the hand-written pass keeps ~40 % less per row than autograd's graph,
    /// two SmolLM2 prompts' rows (2 x 600) fit within 1.5 GB; elsewhere the caller's default.
    fn rows_in_flight_hint(&self) -> Option<usize> {
        (self.device == Device::Cpu).then_some(CPU_ROWS_IN_FLIGHT)
    }

    /// Counted from the shapes: per layer a row passes through, what the hand-written pass
    /// keeps for its backward pass (layer input, queries / keys / values, attention weights over
    /// up to 128 positions, the residual after attention, the gate and up
    /// projections, the outputs before sandwich norms), plus the output head's working memory
    /// (a 2048-entry block of logits and three hidden-size vectors); 1.6
    /// times that where autograd keeps its graph instead.
    fn bytes_per_row_hint(&self) -> Option<u64> {
        let c = &self.config;
        let (d, f, hd) = (c.hidden_size as u64, c.ffn_width as u64, c.head_dim as u64);
        let (heads, kv) = (c.heads as u64, c.kv_heads as u64);
        let mut per_layer = 2 * d + (heads + 2 * kv) * hd + heads * BUDGETED_PROMPT_TOKENS + 2 * f;
        if c.qk_norm {
            per_layer += (heads + kv) * hd;
        }
        if c.sandwich_norms {
            per_layer += 2 * d;
        }
        let floats = c.num_layers as u64 * per_layer + HEAD_VOCAB_BLOCK as u64 + 3 * d;
        let bytes = 4 * floats;
        Some(if self.hand_written_backward {
            bytes
        } else {
            bytes * 8 / 5
        })
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

    /// On the CPU, when its products run on AMX (weights of bfloat16 values): there reading
    /// the weights from memory, not the arithmetic, bounds a pass's products. 1B-shaped
    /// checkpoint: 2.5 s per prompt against 2.9 s as two half passes.
    fn lone_pass_shares_products_hint(&self) -> bool {
        self.device == Device::Cpu && kn_kernels::matmul::amx_products(&self.lm_head)
    }

    /// On the CPU, runs whose answer position is their last token go through the hand-written
    /// pass of `decoder/backward.rs` when it covers the architecture (less memory, no autograd
    /// bookkeeping); everything else (several recomputed positions, CUDA, GPT-2 / GPT-Neo /
    /// GPT-NeoX / Phi-3) through autograd.
    fn start_gradients_batch(
        &self,
        runs: &[(&CleanPass, &[(usize, Tensor)])],
        head: &mut dyn FnMut(&[Tensor]) -> Result<Vec<Tensor>>,
    ) -> Result<Vec<Vec<Tensor>>> {
        if self.device == Device::Cpu && self.hand_written_backward && backward::covers(runs) {
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
        guard(|| Ok(self.lm_head.get(token).to_kind(Kind::Float).copy()))
    }
}
