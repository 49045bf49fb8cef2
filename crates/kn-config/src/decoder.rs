//! The one configuration of every decoder-only model `kn` runs: what the architectures of the
//! family vary (norms, FFN, attention, positions, residual, embeddings), read from a Hugging Face
//! `config.json` by the architecture's own mapping (`crate::arch`) or from GGUF metadata.
//!
//! The layer math that reads it is written once, in `kn-model`'s decoder. A key that changes
//! that math is either mapped here or refused by the architecture's mapping, naming the key.

use crate::limits::{check_positive, check_size, json_positive, json_size, ConfigError, Size};

/// How a norm normalizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormKind {
    /// RMSNorm: `x / rms(x) * w`.
    Rms,
    /// LayerNorm with bias: `(x - mean) / std * w + b`.
    Layer,
}

/// The norms of a model (all of its norms are of one kind).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Norm {
    /// RMSNorm or LayerNorm.
    pub kind: NormKind,
    /// The epsilon added to the variance.
    pub eps: f64,
    /// Whether the stored weight is `w - 1` (Gemma: the norm multiplies by `1 + w`); the loader
    /// adds the one back.
    pub unit_offset: bool,
}

/// The FFN's nonlinearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `x * sigmoid(x)` (transformers `silu`).
    Silu,
    /// GELU with the tanh approximation (`gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
    /// Exact GELU with erf (`gelu`).
    GeluErf,
}

impl Activation {
    /// Reads transformers' activation name; `key` names the configuration key for errors.
    pub fn parse(key: &str, name: &str) -> Result<Self, ConfigError> {
        match name {
            "silu" | "swish" => Ok(Activation::Silu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Activation::GeluTanh),
            "gelu" => Ok(Activation::GeluErf),
            other => Err(ConfigError::new(
                key,
                format!("activation {other:?} is not supported (silu, gelu, gelu_new, gelu_pytorch_tanh)"),
            )),
        }
    }
}

/// The feed-forward block. The knowledge neuron is always the input of its output projection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ffn {
    /// `act(gate(x)) * up(x)` (Llama, Gemma) rather than `act(fc(x))` (GPT-2, NeoX).
    pub gated: bool,
    /// The nonlinearity.
    pub activation: Activation,
    /// Whether its projections have biases.
    pub bias: bool,
}

/// RoPE frequency scaling (transformers' `rope_type`).
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE.
    None,
    /// `linear`: every inverse frequency divided by `factor`.
    Linear {
        /// The divisor.
        factor: f64,
    },
    /// `llama3`: low frequencies divided by `factor`, high ones kept, a smooth blend between
    /// (Llama 3.1 and later).
    Llama3 {
        /// The divisor of low frequencies.
        factor: f64,
        /// Wavelengths above `original_max_positions / low_freq_factor` are scaled.
        low_freq_factor: f64,
        /// Wavelengths below `original_max_positions / high_freq_factor` are kept.
        high_freq_factor: f64,
        /// The context the model was pretrained with.
        original_max_positions: f64,
    },
}

impl RopeScaling {
    /// Applies the scaling to RoPE's inverse frequencies (transformers'
    /// `_compute_linear_scaling_rope_parameters` / `_compute_llama3_parameters`).
    pub fn apply(&self, inv_freq: &mut [f64]) {
        match *self {
            RopeScaling::None => {}
            RopeScaling::Linear { factor } => inv_freq.iter_mut().for_each(|f| *f /= factor),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_positions,
            } => {
                let low_freq_wavelen = original_max_positions / low_freq_factor;
                let high_freq_wavelen = original_max_positions / high_freq_factor;
                for f in inv_freq.iter_mut() {
                    let wavelen = 2.0 * std::f64::consts::PI / *f;
                    if wavelen > low_freq_wavelen {
                        *f /= factor;
                    } else if wavelen >= high_freq_wavelen {
                        let smooth = (original_max_positions / wavelen - low_freq_factor)
                            / (high_freq_factor - low_freq_factor);
                        *f = (1.0 - smooth) * *f / factor + smooth * *f;
                    }
                }
            }
        }
    }
}

/// One RoPE table: its base and scaling.
#[derive(Debug, Clone, PartialEq)]
pub struct Rope {
    /// The base (theta).
    pub base: f64,
    /// The frequency scaling.
    pub scaling: RopeScaling,
}

impl Rope {
    /// The inverse frequencies of the first `rotary_dim` dimensions of a head, scaled.
    pub fn inverse_frequencies(&self, rotary_dim: usize) -> Vec<f64> {
        let mut frequencies: Vec<f64> = (0..rotary_dim / 2)
            .map(|i| 1.0 / self.base.powf(2.0 * i as f64 / rotary_dim as f64))
            .collect();
        self.scaling.apply(&mut frequencies);
        frequencies
    }
}

/// How positions enter the model.
#[derive(Debug, Clone, PartialEq)]
pub enum Positions {
    /// Rotary embeddings of the first `rotary_dim` dimensions of every query and key head
    /// (`head_dim` unless partial, as GPT-NeoX's `rotary_pct`), with `layer_rope[l]` indexing
    /// `ropes` for layer `l` (Gemma-3's local and global layers have different bases).
    Rotary {
        /// Dimensions rotated per head (even, at most `head_dim`).
        rotary_dim: usize,
        /// The distinct tables.
        ropes: Vec<Rope>,
        /// Per layer, the index of its table.
        layer_rope: Vec<usize>,
    },
    /// Learned absolute position embeddings added to the token embeddings (GPT-2, GPT-Neo).
    Learned,
}

/// Which of a layer's weights a tensor name stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The norm before attention.
    AttnNorm,
    /// Separate query, key and value projections.
    Q,
    /// Key projection.
    K,
    /// Value projection.
    V,
    /// A fused query/key/value projection (see [`QkvLayout`]).
    Qkv,
    /// Attention output projection.
    O,
    /// Per-head norms of queries and keys (Qwen3, Gemma-3).
    QNorm,
    /// See [`Part::QNorm`].
    KNorm,
    /// The norm of the attention output before the residual (Gemma's sandwich norms).
    PostAttnNorm,
    /// The norm before the FFN.
    FfnNorm,
    /// The norm of the FFN output before the residual (Gemma).
    PostFfnNorm,
    /// Gated FFN: the gate projection.
    Gate,
    /// Gated FFN: the up projection.
    Up,
    /// A fused gate/up projection (Phi-3: gate rows, then up rows).
    GateUp,
    /// Plain FFN: its input projection.
    Fc,
    /// The FFN's output projection, whose input is the knowledge neuron.
    Down,
}

/// How a fused query/key/value projection orders its output rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QkvLayout {
    /// All query rows, then key rows, then value rows (Phi-3, GPT-2's `c_attn`).
    Stacked,
    /// Per head: its query, key and value rows (GPT-NeoX's `query_key_value`).
    PerHead,
}

/// Where a file layout keeps a model's tensors. Names of norms and of linear layers that may
/// have a bias are module paths (the loader adds `.weight` / `.bias`).
#[derive(Debug, Clone, Copy)]
pub struct TensorNames {
    /// The token embedding weight (full name).
    pub embeddings: &'static str,
    /// The learned position embedding weight (full name), for [`Positions::Learned`].
    pub positions: Option<&'static str>,
    /// The final norm's module path.
    pub output_norm: &'static str,
    /// The output head's weight (full name); absent when tied.
    pub lm_head: &'static str,
    /// A layer's prefix: `{}` stands for the layer index.
    pub layer: &'static str,
    /// A part's module path within the layer (`None`: this layout has no such part).
    pub part: fn(Part) -> Option<&'static str>,
    /// The fused projection's row order, when `part(Qkv)` exists.
    pub qkv_layout: QkvLayout,
    /// Whether linear weights are stored `[in, out]` (GPT-2's `Conv1D`) rather than `[out, in]`.
    pub transposed: bool,
    /// Whether query/key rows are in llama.cpp's pairwise-interleaved RoPE order (GGUF).
    pub rope_permuted: bool,
}

impl TensorNames {
    /// The module path of `part` in layer `layer`, if the layout has it.
    pub fn layer_part(&self, layer: usize, part: Part) -> Option<String> {
        (self.part)(part)
            .map(|name| format!("{}{name}", self.layer.replace("{}", &layer.to_string())))
    }
}

/// Hyper-parameters of a decoder-only model, every size bounded and every setting checked.
#[derive(Debug, Clone)]
pub struct DecoderConfig {
    /// The architecture (`llama`, `gemma3_text`, `gpt2`, ...).
    pub model_type: String,
    /// Vocabulary entries.
    pub vocab_size: usize,
    /// Residual width.
    pub hidden_size: usize,
    /// Decoder layers.
    pub num_layers: usize,
    /// The key the layer count was read from, for the loader's check against the weights.
    pub num_layers_key: &'static str,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// FFN intermediate width (the number of knowledge-neuron candidates per layer).
    pub ffn_width: usize,
    /// Context length.
    pub max_positions: usize,
    /// The norms.
    pub norm: Norm,
    /// The FFN.
    pub ffn: Ffn,
    /// Whether the query, key and value projections have biases.
    pub attention_bias: bool,
    /// Whether the attention output projection has a bias.
    pub output_bias: bool,
    /// Whether queries and keys are normed per head before RoPE.
    pub qk_norm: bool,
    /// Whether the attention and FFN outputs are normed before their residual adds (Gemma).
    pub sandwich_norms: bool,
    /// The factor of the attention scores (`1 / sqrt(head_dim)`, Gemma's
    /// `query_pre_attn_scalar^-0.5`, GPT-Neo's 1).
    pub query_scale: f64,
    /// Positions: rotary or learned.
    pub positions: Positions,
    /// Per layer: the sliding attention window (a query sees the `w` positions up to and
    /// including its own), or `None` for full causal attention.
    pub sliding_windows: Vec<Option<usize>>,
    /// Whether attention and FFN read the same layer input and add to it together
    /// (GPT-NeoX's `use_parallel_residual`).
    pub parallel_residual: bool,
    /// A factor of the token embeddings (Gemma: `sqrt(hidden_size)`).
    pub embedding_scale: Option<f64>,
    /// Whether the output head may be the token embedding when the file has none.
    pub tied_embeddings: bool,
    /// Whether the tokenizer prepends the BOS token.
    pub add_bos: bool,
    /// The BOS token id.
    pub bos_id: Option<i64>,
    /// Where its tensors are.
    pub tensors: TensorNames,
}

impl DecoderConfig {
    /// Reads a Hugging Face `config.json` of any supported architecture; `add_bos` comes from
    /// `tokenizer_config.json`.
    pub fn from_hf_json(text: &str, add_bos: bool) -> Result<Self, ConfigError> {
        let json: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| ConfigError::new("config.json", format!("not valid JSON: {e}")))?;
        if !json.is_object() {
            return Err(ConfigError::new("config.json", "not a JSON object"));
        }
        let model_type = json
            .get("model_type")
            .and_then(|v| v.as_str())
            .unwrap_or("llama")
            .to_string();
        let mut config = crate::arch::from_hf_json(&model_type, &json)?;
        config.add_bos = add_bos;
        config.validate()?;
        Ok(config)
    }

    /// Reads GGUF metadata (`general.architecture` `llama`, `qwen2` or `gemma3`); `add_bos` and `bos_id`
    /// come from its tokenizer metadata, `vocab_fallback` (the tokenizer's size) when
    /// `vocab_size` is absent.
    pub fn from_gguf(
        file: &kn_gguf::GgufFile,
        vocab_fallback: usize,
        add_bos: bool,
        bos_id: Option<i64>,
    ) -> Result<Self, ConfigError> {
        let architecture = file
            .get_str("general.architecture")
            .map_err(|e| ConfigError::new("general.architecture", e.to_string()))?;
        let mut config = match architecture {
            "llama" => crate::arch::llama::from_gguf(file, "llama", vocab_fallback)?,
            "qwen2" => crate::arch::llama::from_gguf(file, "qwen2", vocab_fallback)?,
            "gemma3" => crate::arch::gemma3::from_gguf(file, vocab_fallback)?,
            other => {
                return Err(ConfigError::new(
                    "general.architecture",
                    format!("{other:?} is not supported in GGUF files (llama, qwen2, gemma3)"),
                ))
            }
        };
        config.add_bos = add_bos;
        config.bos_id = bos_id;
        config.validate()?;
        Ok(config)
    }

    /// The checks that relate keys to each other.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.heads % self.kv_heads != 0 {
            return Err(ConfigError::new(
                "num_key_value_heads",
                format!(
                    "{} attention heads cannot be grouped over {} key-value heads",
                    self.heads, self.kv_heads
                ),
            ));
        }
        if let Positions::Rotary {
            rotary_dim,
            ropes,
            layer_rope,
        } = &self.positions
        {
            if *rotary_dim == 0 || rotary_dim % 2 != 0 || *rotary_dim > self.head_dim {
                return Err(ConfigError::new(
                    "head_dim",
                    format!(
                        "the rotary dimensions ({rotary_dim}) must be even, positive and at most head_dim {}",
                        self.head_dim
                    ),
                ));
            }
            if layer_rope.len() != self.num_layers || layer_rope.iter().any(|&r| r >= ropes.len()) {
                return Err(ConfigError::new(
                    "rope_parameters",
                    "one RoPE table per layer",
                ));
            }
        }
        if self.sliding_windows.len() != self.num_layers {
            return Err(ConfigError::new(
                "layer_types",
                "one attention type per layer",
            ));
        }
        Ok(())
    }

    /// Whether this is exactly a plain Llama (what `kn-model`'s hand-written backward pass
    /// computes): RMSNorm, gated SiLU FFN without biases, full rotary positions with one table,
    /// the standard score scale, sequential residuals, no norms beyond Llama's, no windows.
    pub fn is_plain_llama(&self) -> bool {
        self.norm.kind == NormKind::Rms
            && self.ffn
                == Ffn {
                    gated: true,
                    activation: Activation::Silu,
                    bias: false,
                }
            && !self.attention_bias
            && !self.output_bias
            && !self.qk_norm
            && !self.sandwich_norms
            && !self.parallel_residual
            && self.embedding_scale.is_none()
            && self.sliding_windows.iter().all(Option::is_none)
            && (self.query_scale - 1.0 / (self.head_dim as f64).sqrt()).abs() < 1e-12
            && matches!(&self.positions, Positions::Rotary { rotary_dim, ropes, .. }
                if *rotary_dim == self.head_dim && ropes.len() == 1)
    }
}

// Readers shared by the architectures' mappings.

/// A boolean key (`None` when absent or null).
pub fn bool_key(json: &serde_json::Value, key: &str) -> Result<Option<bool>, ConfigError> {
    match json.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(ConfigError::new(
            key,
            format!("{other} is not true or false"),
        )),
    }
}

/// A string key (`None` when absent or null).
pub fn str_key<'a>(json: &'a serde_json::Value, key: &str) -> Result<Option<&'a str>, ConfigError> {
    match json.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ConfigError::new(key, format!("{other} is not a string"))),
    }
}

/// Refuses `key` when it is present with a value other than null or one of `neutral`.
pub fn refuse_unless_neutral(
    json: &serde_json::Value,
    key: &str,
    neutral: &[serde_json::Value],
    what: &str,
) -> Result<(), ConfigError> {
    match json.get(key) {
        Some(value) if !value.is_null() && !neutral.contains(value) => Err(ConfigError::new(
            key,
            format!("{value}: {what} is not implemented"),
        )),
        _ => Ok(()),
    }
}

/// The rotary dimensions of a head: `head_dim * partial_rotary_factor` (the factor read from
/// `key`), as transformers' `int(head_dim * factor)`.
pub fn rotary_dim(head_dim: usize, factor: Option<f64>, key: &str) -> Result<usize, ConfigError> {
    let Some(factor) = factor else {
        return Ok(head_dim);
    };
    if !(factor > 0.0 && factor <= 1.0) {
        return Err(ConfigError::new(key, format!("{factor} must be in (0, 1]")));
    }
    Ok((head_dim as f64 * factor) as usize)
}

/// One RoPE table from a transformers rope table (`rope_scaling` of 4.x, `rope_parameters` of
/// 5.x, or one of Gemma-3's per-layer-type tables), named `key` in errors; `base` is used when
/// the table has no `rope_theta`. Returns the table and its `partial_rotary_factor`, if any.
pub fn rope_table(
    table: Option<&serde_json::Value>,
    key: &str,
    base: f64,
) -> Result<(Rope, Option<f64>), ConfigError> {
    let Some(table) = table.filter(|t| !t.is_null()) else {
        return Ok((
            Rope {
                base,
                scaling: RopeScaling::None,
            },
            None,
        ));
    };
    if !table.is_object() {
        return Err(ConfigError::new(key, "is not a JSON object"));
    }
    let base = match table.get("rope_theta") {
        Some(v) if !v.is_null() => json_positive(table, "rope_theta", base)
            .map_err(|e| ConfigError::new(format!("{key}.rope_theta"), e.reason))?,
        _ => base,
    };
    let number = |name: &str| -> Result<f64, ConfigError> {
        let value = table
            .get(name)
            .and_then(serde_json::Value::as_f64)
            .ok_or_else(|| ConfigError::new(format!("{key}.{name}"), "missing or not a number"))?;
        check_positive(&format!("{key}.{name}"), value)
    };
    let partial = match table.get("partial_rotary_factor") {
        Some(v) if !v.is_null() => Some(number("partial_rotary_factor")?),
        _ => None,
    };
    let kind = table
        .get("rope_type")
        .or_else(|| table.get("type"))
        .and_then(|v| v.as_str())
        .unwrap_or("default");
    let scaling = match kind {
        "default" => RopeScaling::None,
        "linear" => RopeScaling::Linear {
            factor: number("factor")?,
        },
        "llama3" => {
            let (low, high) = (number("low_freq_factor")?, number("high_freq_factor")?);
            if high <= low {
                return Err(ConfigError::new(
                    format!("{key}.high_freq_factor"),
                    "must be above low_freq_factor",
                ));
            }
            RopeScaling::Llama3 {
                factor: number("factor")?,
                low_freq_factor: low,
                high_freq_factor: high,
                original_max_positions: number("original_max_position_embeddings")?,
            }
        }
        other => {
            return Err(ConfigError::new(
                key,
                format!(
                    "RoPE scaling of type {other:?} is not supported (default, linear, llama3)"
                ),
            ))
        }
    };
    Ok((Rope { base, scaling }, partial))
}

/// The RoPE table of a model with one table: transformers 4.x (`rope_theta` beside
/// `rope_scaling`) or 5.x (`rope_parameters` holding both); `theta_key` is the 4.x base key
/// (`rope_theta`, NeoX's `rotary_emb_base`). Returns the table and its partial rotary factor.
pub fn single_rope(
    json: &serde_json::Value,
    theta_key: &str,
    default_base: f64,
) -> Result<(Rope, Option<f64>), ConfigError> {
    let base = match json.get(theta_key) {
        Some(v) if !v.is_null() => json_positive(json, theta_key, default_base)?,
        _ => default_base,
    };
    let (key, table) = ["rope_parameters", "rope_scaling"]
        .into_iter()
        .find_map(|key| json.get(key).filter(|v| !v.is_null()).map(|t| (key, t)))
        .map_or(("rope_scaling", None), |(key, t)| (key, Some(t)));
    rope_table(table, key, base)
}

/// Per layer, a sliding window or none, from transformers 5.x `layer_types`
/// (`sliding_attention` / `full_attention`); `window` is read only when a layer slides.
pub fn windows_from_layer_types(
    types: &serde_json::Value,
    layers: usize,
    window: impl Fn() -> Result<usize, ConfigError>,
) -> Result<Vec<Option<usize>>, ConfigError> {
    let types = types
        .as_array()
        .filter(|t| t.len() == layers)
        .ok_or_else(|| {
            ConfigError::new(
                "layer_types",
                format!("must list one type for each of the {layers} layers"),
            )
        })?;
    types
        .iter()
        .map(|kind| match kind.as_str() {
            Some("full_attention") => Ok(None),
            Some("sliding_attention") => window().map(Some),
            _ => Err(ConfigError::new(
                "layer_types",
                format!("{kind} is not supported (full_attention, sliding_attention)"),
            )),
        })
        .collect()
}

/// The sizes every architecture has under the Llama names.
pub struct CommonSizes {
    /// `vocab_size`.
    pub vocab_size: usize,
    /// `hidden_size`.
    pub hidden_size: usize,
    /// `num_hidden_layers`.
    pub num_layers: usize,
    /// `num_attention_heads`.
    pub heads: usize,
    /// `num_key_value_heads` (default: `heads`).
    pub kv_heads: usize,
    /// `head_dim` (default: hidden / heads).
    pub head_dim: usize,
    /// `intermediate_size`.
    pub ffn_width: usize,
    /// `max_position_embeddings`.
    pub max_positions: usize,
}

impl CommonSizes {
    /// Reads them (Llama-style keys).
    pub fn read(json: &serde_json::Value) -> Result<Self, ConfigError> {
        let hidden_size = json_size(json, "hidden_size", Size::Hidden)?;
        let heads = json_size(json, "num_attention_heads", Size::Heads)?;
        let head_dim = match crate::limits::json_size_opt(json, "head_dim", Size::HeadDim)? {
            Some(dim) => dim,
            None => check_size(
                "hidden_size / num_attention_heads",
                (hidden_size / heads) as u64,
                Size::HeadDim,
            )?,
        };
        Ok(Self {
            vocab_size: json_size(json, "vocab_size", Size::Vocabulary)?,
            hidden_size,
            num_layers: json_size(json, "num_hidden_layers", Size::Layers)?,
            heads,
            kv_heads: crate::limits::json_size_opt(json, "num_key_value_heads", Size::Heads)?
                .unwrap_or(heads),
            head_dim,
            ffn_width: json_size(json, "intermediate_size", Size::Ffn)?,
            max_positions: json_size(json, "max_position_embeddings", Size::Positions)?,
        })
    }
}
