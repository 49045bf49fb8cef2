//! The configuration of a Llama-family causal LM (RMSNorm, RoPE, grouped-query attention,
//! SwiGLU), from a Hugging Face `config.json` (transformers 4.x `rope_theta` +
//! `rope_scaling`, or 5.x `rope_parameters`) or from GGUF metadata (`llama.*` keys).
//!
//! The family: `llama` (Llama 2 and 3.x, with `linear` or `llama3` position scaling),
//! `mistral` (sliding-window attention), `qwen2` (biased query/key/value projections, sliding
//! windows on the layers `layer_types` or `max_window_layers` name) and `qwen3` (per-head
//! RMSNorm of queries and keys). A key that changes this math and is not implemented is
//! refused, naming it ([`REFUSED_KEYS`]).

use crate::limits::{
    check_positive, check_size, json_positive, json_size, json_size_opt, ConfigError, Size,
};

/// The `model_type`s this configuration covers.
pub const MODEL_TYPES: [&str; 4] = ["llama", "mistral", "qwen2", "qwen3"];

/// Keys that would change the computation in ways not implemented: refused when present with
/// a value other than the neutral one (null, false, or the default noted).
pub const REFUSED_KEYS: [&str; 6] = [
    "attn_logit_softcapping",
    "final_logit_softcapping",
    "mlp_bias",
    "use_qk_norm",
    "partial_rotary_factor (other than 1)",
    "hidden_act (other than silu)",
];

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

/// Hyper-parameters of a Llama-family model, every size bounded and every setting checked.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    /// `llama`, `mistral`, `qwen2` or `qwen3`.
    pub model_type: String,
    /// Whether the output projection may be the input embedding when the file has none.
    pub tied_embeddings: bool,
    /// Vocabulary entries.
    pub vocab_size: usize,
    /// Residual width.
    pub hidden_size: usize,
    /// Decoder layers.
    pub num_layers: usize,
    /// The key the layer count was read from (`num_hidden_layers`, `llama.block_count`), for
    /// the loader's check against the layers the weights hold.
    pub num_layers_key: &'static str,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// FFN intermediate width.
    pub ffn_width: usize,
    /// RoPE base (theta).
    pub rope_base: f64,
    /// RoPE frequency scaling.
    pub rope_scaling: RopeScaling,
    /// Whether the query, key and value projections have biases (Qwen2, Llama's
    /// `attention_bias`).
    pub attention_bias: bool,
    /// Whether queries and keys are RMS-normed per head before RoPE (Qwen3).
    pub qk_norm: bool,
    /// Per layer: the sliding attention window (a query sees the `w` positions up to and
    /// including its own), or `None` for full causal attention.
    pub sliding_windows: Vec<Option<usize>>,
    /// RMSNorm epsilon.
    pub rms_eps: f64,
    /// Context length.
    pub max_positions: usize,
    /// Whether the tokenizer prepends the BOS token.
    pub add_bos: bool,
    /// The BOS token id.
    pub bos_id: Option<i64>,
}

impl LlamaConfig {
    /// Reads `config.json` text; `add_bos` comes from `tokenizer_config.json`.
    pub fn from_hf_json(text: &str, add_bos: bool) -> Result<Self, ConfigError> {
        let json: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| ConfigError::new("config.json", format!("not valid JSON: {e}")))?;
        if !json.is_object() {
            return Err(ConfigError::new("config.json", "not a JSON object"));
        }
        let model_type = match json.get("model_type").and_then(|v| v.as_str()) {
            Some(kind) if MODEL_TYPES.contains(&kind) => kind.to_string(),
            Some(kind) => {
                return Err(ConfigError::new(
                    "model_type",
                    format!(
                        "{kind:?} is not a Llama-family model ({})",
                        MODEL_TYPES.join(", ")
                    ),
                ))
            }
            None => "llama".to_string(),
        };
        refuse_unimplemented(&json)?;
        let (rope_base, rope_scaling) = rope(&json)?;
        let hidden_size = json_size(&json, "hidden_size", Size::Hidden)?;
        let heads = json_size(&json, "num_attention_heads", Size::Heads)?;
        let head_dim = match json_size_opt(&json, "head_dim", Size::HeadDim)? {
            Some(dim) => dim,
            None => check_size(
                "hidden_size / num_attention_heads",
                (hidden_size / heads) as u64,
                Size::HeadDim,
            )?,
        };
        let num_layers = json_size(&json, "num_hidden_layers", Size::Layers)?;
        let config = Self {
            sliding_windows: sliding_windows(&json, &model_type, num_layers)?,
            attention_bias: match model_type.as_str() {
                // Qwen2's projections always have biases (its config has no key for it).
                "qwen2" => true,
                _ => bool_key(&json, "attention_bias")?.unwrap_or(false),
            },
            qk_norm: model_type == "qwen3",
            model_type,
            rope_scaling,
            tied_embeddings: bool_key(&json, "tie_word_embeddings")?.unwrap_or(false),
            vocab_size: json_size(&json, "vocab_size", Size::Vocabulary)?,
            hidden_size,
            num_layers,
            num_layers_key: "num_hidden_layers",
            heads,
            kv_heads: json_size_opt(&json, "num_key_value_heads", Size::Heads)?.unwrap_or(heads),
            head_dim,
            ffn_width: json_size(&json, "intermediate_size", Size::Ffn)?,
            rope_base,
            rms_eps: json_positive(&json, "rms_norm_eps", 1e-6)?,
            max_positions: json_size(&json, "max_position_embeddings", Size::Positions)?,
            add_bos,
            bos_id: json.get("bos_token_id").and_then(serde_json::Value::as_i64),
        };
        config.validate()?;
        Ok(config)
    }

    /// Reads the `llama.*` metadata of a GGUF file; `add_bos` and `bos_id` come from its
    /// tokenizer metadata, `vocab_size` defaults to the tokenizer's `tokens` count.
    pub fn from_gguf(
        file: &kn_gguf::GgufFile,
        vocab_fallback: usize,
        add_bos: bool,
        bos_id: Option<i64>,
    ) -> Result<Self, ConfigError> {
        let arch = "llama";
        let size = |name: &'static str, kind: Size| -> Result<usize, ConfigError> {
            let key = format!("{arch}.{name}");
            let value = file
                .get_u64(&key)
                .map_err(|e| ConfigError::new(key.clone(), e.to_string()))?;
            check_size(&key, value, kind)
        };
        let optional = |name: &'static str, kind: Size| -> Result<Option<usize>, ConfigError> {
            match file.get(&format!("{arch}.{name}")) {
                Some(_) => size(name, kind).map(Some),
                None => Ok(None),
            }
        };
        let real = |name: &'static str| -> Result<Option<f64>, ConfigError> {
            let key = format!("{arch}.{name}");
            match file.get(&key) {
                None => Ok(None),
                Some(_) => {
                    let value = file
                        .get_f32(&key)
                        .map_err(|e| ConfigError::new(key.clone(), e.to_string()))?;
                    check_positive(&key, f64::from(value)).map(Some)
                }
            }
        };
        let hidden_size = size("embedding_length", Size::Hidden)?;
        let heads = size("attention.head_count", Size::Heads)?;
        let head_dim = match optional("rope.dimension_count", Size::HeadDim)? {
            Some(dim) => dim,
            None => check_size(
                "llama.embedding_length / llama.attention.head_count",
                (hidden_size / heads) as u64,
                Size::HeadDim,
            )?,
        };
        let vocab_size = match optional("vocab_size", Size::Vocabulary)? {
            Some(v) => v,
            None => check_size(
                "tokenizer.ggml.tokens",
                vocab_fallback as u64,
                Size::Vocabulary,
            )?,
        };
        if let Some(kind) = file
            .get(&format!("{arch}.rope.scaling.type"))
            .and_then(|_| file.get_str(&format!("{arch}.rope.scaling.type")).ok())
            .filter(|kind| *kind != "none")
        {
            return Err(ConfigError::new(
                format!("{arch}.rope.scaling.type"),
                format!("RoPE scaling {kind:?} from GGUF metadata is not supported"),
            ));
        }
        let num_layers = size("block_count", Size::Layers)?;
        let config = Self {
            model_type: arch.to_string(),
            rope_scaling: RopeScaling::None,
            attention_bias: false,
            qk_norm: false,
            sliding_windows: vec![None; num_layers],
            // GGUF has no flag: a missing output.weight means tied.
            tied_embeddings: true,
            vocab_size,
            hidden_size,
            num_layers,
            num_layers_key: "llama.block_count",
            heads,
            kv_heads: optional("attention.head_count_kv", Size::Heads)?.unwrap_or(heads),
            head_dim,
            ffn_width: size("feed_forward_length", Size::Ffn)?,
            rope_base: real("rope.freq_base")?.unwrap_or(10_000.0),
            rms_eps: real("attention.layer_norm_rms_epsilon")?.ok_or_else(|| {
                ConfigError::new("llama.attention.layer_norm_rms_epsilon", "missing")
            })?,
            max_positions: size("context_length", Size::Positions)?,
            add_bos,
            bos_id,
        };
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
        if self.head_dim % 2 != 0 {
            return Err(ConfigError::new(
                "head_dim",
                format!("{} must be even for RoPE", self.head_dim),
            ));
        }
        Ok(())
    }
}

/// Refuses the keys of [`REFUSED_KEYS`] with a value that changes the math.
fn refuse_unimplemented(json: &serde_json::Value) -> Result<(), ConfigError> {
    let value = |key: &str| json.get(key).filter(|v| !v.is_null());
    for key in ["attn_logit_softcapping", "final_logit_softcapping"] {
        if let Some(v) = value(key) {
            return Err(ConfigError::new(
                key,
                format!("{v}: logit soft-capping is not implemented"),
            ));
        }
    }
    for key in ["mlp_bias", "use_qk_norm"] {
        if let Some(v) = value(key).filter(|v| **v != serde_json::Value::Bool(false)) {
            return Err(ConfigError::new(
                key,
                format!("{v} is not implemented for this family"),
            ));
        }
    }
    if let Some(v) = value("partial_rotary_factor").filter(|v| v.as_f64() != Some(1.0)) {
        return Err(ConfigError::new(
            "partial_rotary_factor",
            format!("{v}: partial rotary embeddings are not implemented for this family"),
        ));
    }
    if let Some(v) = value("hidden_act").filter(|v| v.as_str() != Some("silu")) {
        return Err(ConfigError::new(
            "hidden_act",
            format!("{v} is not supported (this family's FFN is SwiGLU: \"silu\")"),
        ));
    }
    Ok(())
}

/// The RoPE base and scaling, from transformers 4.x keys (`rope_theta`, `rope_scaling`) or
/// 5.x (`rope_parameters`, which holds both).
fn rope(json: &serde_json::Value) -> Result<(f64, RopeScaling), ConfigError> {
    let scaling_key = ["rope_parameters", "rope_scaling"]
        .into_iter()
        .find(|key| json.get(*key).is_some_and(|v| !v.is_null()));
    let table = scaling_key.and_then(|key| json.get(key));
    if let Some(table) = table {
        if !table.is_object() {
            return Err(ConfigError::new(
                scaling_key.unwrap_or("rope_scaling"),
                "is not a JSON object",
            ));
        }
    }
    let key = scaling_key.unwrap_or("rope_scaling");
    let base = match (json.get("rope_theta").filter(|v| !v.is_null()), table) {
        (Some(_), _) => json_positive(json, "rope_theta", 10_000.0)?,
        (None, Some(table)) if table.get("rope_theta").is_some() => {
            json_positive(table, "rope_theta", 10_000.0)
                .map_err(|e| ConfigError::new(format!("{key}.rope_theta"), e.reason))?
        }
        _ => 10_000.0,
    };
    let Some(table) = table else {
        return Ok((base, RopeScaling::None));
    };
    let kind = table
        .get("rope_type")
        .or_else(|| table.get("type"))
        .and_then(|v| v.as_str())
        .unwrap_or("default");
    let number = |name: &str| -> Result<f64, ConfigError> {
        let value = table
            .get(name)
            .and_then(serde_json::Value::as_f64)
            .ok_or_else(|| ConfigError::new(format!("{key}.{name}"), "missing or not a number"))?;
        check_positive(&format!("{key}.{name}"), value)
    };
    let scaling = match kind {
        "default" => RopeScaling::None,
        "linear" => RopeScaling::Linear {
            factor: number("factor")?,
        },
        "llama3" => {
            let scaling = RopeScaling::Llama3 {
                factor: number("factor")?,
                low_freq_factor: number("low_freq_factor")?,
                high_freq_factor: number("high_freq_factor")?,
                original_max_positions: number("original_max_position_embeddings")?,
            };
            if let RopeScaling::Llama3 {
                low_freq_factor,
                high_freq_factor,
                ..
            } = scaling
            {
                if high_freq_factor <= low_freq_factor {
                    return Err(ConfigError::new(
                        format!("{key}.high_freq_factor"),
                        "must be above low_freq_factor",
                    ));
                }
            }
            scaling
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
    Ok((base, scaling))
}

/// Per layer, the sliding attention window or `None`, as transformers reads it per family:
/// Llama has none; Mistral slides on every layer when `sliding_window` is set; Qwen2/3 slide
/// only with `use_sliding_window`, on the layers `layer_types` marks `sliding_attention` (5.x)
/// or, without it, from layer `max_window_layers` on.
fn sliding_windows(
    json: &serde_json::Value,
    model_type: &str,
    layers: usize,
) -> Result<Vec<Option<usize>>, ConfigError> {
    let window = || json_size(json, "sliding_window", Size::Positions);
    match model_type {
        "mistral" => match json.get("sliding_window").filter(|v| !v.is_null()) {
            Some(_) => Ok(vec![Some(window()?); layers]),
            None => Ok(vec![None; layers]),
        },
        "qwen2" | "qwen3" if bool_key(json, "use_sliding_window")?.unwrap_or(false) => {
            let window = window()?;
            if let Some(types) = json.get("layer_types").filter(|v| !v.is_null()) {
                let types = types
                    .as_array()
                    .filter(|t| t.len() == layers)
                    .ok_or_else(|| {
                        ConfigError::new(
                            "layer_types",
                            format!("must list one type for each of the {layers} layers"),
                        )
                    })?;
                return types
                    .iter()
                    .map(|kind| match kind.as_str() {
                        Some("full_attention") => Ok(None),
                        Some("sliding_attention") => Ok(Some(window)),
                        _ => Err(ConfigError::new(
                            "layer_types",
                            format!("{kind} is not supported (full_attention, sliding_attention)"),
                        )),
                    })
                    .collect();
            }
            // Layers before max_window_layers attend fully (0: every layer slides).
            let from = match json.get("max_window_layers").filter(|v| !v.is_null()) {
                Some(v) => v.as_u64().ok_or_else(|| {
                    ConfigError::new(
                        "max_window_layers",
                        format!("{v} is not a non-negative integer"),
                    )
                })?,
                None => 28,
            };
            Ok((0..layers)
                .map(|l| (l as u64 >= from).then_some(window))
                .collect())
        }
        _ => Ok(vec![None; layers]),
    }
}

fn bool_key(json: &serde_json::Value, key: &str) -> Result<Option<bool>, ConfigError> {
    match json.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(ConfigError::new(
            key,
            format!("{other} is not true or false"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn tiny() -> serde_json::Value {
        serde_json::json!({
            "model_type": "llama", "vocab_size": 100, "hidden_size": 16, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 32,
            "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0
        })
    }

    fn with(key: &str, value: serde_json::Value) -> Result<LlamaConfig, ConfigError> {
        let mut json = tiny();
        json[key] = value;
        LlamaConfig::from_hf_json(&json.to_string(), false)
    }

    #[test]
    fn a_tiny_config_reads() {
        let config = with("model_type", "llama".into()).unwrap();
        assert_eq!(
            (config.num_layers, config.head_dim, config.kv_heads),
            (2, 4, 2)
        );
    }

    #[test]
    fn every_size_key_is_bounded_and_named() {
        for key in [
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "num_key_value_heads",
            "intermediate_size",
            "max_position_embeddings",
            "head_dim",
        ] {
            for value in [
                serde_json::json!(1e9),
                serde_json::json!(1u64 << 62),
                serde_json::json!(0),
            ] {
                let error = with(key, value.clone()).unwrap_err();
                assert_eq!(error.key, key, "{key} = {value}: {error}");
            }
        }
    }

    #[test]
    fn nan_producing_settings_are_refused() {
        for (key, value) in [
            ("rms_norm_eps", serde_json::json!(-1e-6)),
            ("rms_norm_eps", serde_json::json!(0.0)),
            ("rope_theta", serde_json::json!(0)),
            ("rope_theta", serde_json::json!(-10000.0)),
        ] {
            assert_eq!(with(key, value).unwrap_err().key, key);
        }
        let mut json = tiny();
        json.as_object_mut().unwrap().remove("rope_theta");
        json["rope_parameters"] = serde_json::json!({"rope_type": "default", "rope_theta": 0.0});
        let error = LlamaConfig::from_hf_json(&json.to_string(), false).unwrap_err();
        assert_eq!(error.key, "rope_parameters.rope_theta");
    }

    #[test]
    fn llama3_scaling_reads_from_both_key_generations_and_scales_low_frequencies() {
        let table = serde_json::json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192});
        let old = with("rope_scaling", table.clone()).unwrap();
        let mut json = tiny();
        json.as_object_mut().unwrap().remove("rope_theta");
        let mut new_table = table;
        new_table["rope_theta"] = 10000.0.into();
        json["rope_parameters"] = new_table;
        let new = LlamaConfig::from_hf_json(&json.to_string(), false).unwrap();
        assert_eq!(old.rope_scaling, new.rope_scaling);
        assert_eq!(old.rope_base, new.rope_base);
        // Wavelength 2 pi (kept), 2 pi x 10^4 (> 8192: divided by 8), and one in between.
        let mut inv_freq = [1.0, 1e-4, 2.0 * std::f64::consts::PI / 4096.0];
        new.rope_scaling.apply(&mut inv_freq);
        assert_eq!(inv_freq[0], 1.0);
        assert!((inv_freq[1] - 1e-4 / 8.0).abs() < 1e-18);
        // 8192 / 4096 = 2: smooth = (2 - 1) / 3; f (1 - s) / 8 + f s.
        let f = 2.0 * std::f64::consts::PI / 4096.0;
        let s = 1.0 / 3.0;
        assert!((inv_freq[2] - ((1.0 - s) * f / 8.0 + s * f)).abs() < 1e-15);
        let linear = with(
            "rope_scaling",
            serde_json::json!({"type": "linear", "factor": 2.0}),
        )
        .unwrap();
        assert_eq!(linear.rope_scaling, RopeScaling::Linear { factor: 2.0 });
    }

    #[test]
    fn sliding_windows_follow_each_family_and_layer_types() {
        let mut json = tiny();
        json["model_type"] = "mistral".into();
        json["sliding_window"] = 4.into();
        let mistral = LlamaConfig::from_hf_json(&json.to_string(), false).unwrap();
        assert_eq!(mistral.sliding_windows, [Some(4), Some(4)]);
        json["sliding_window"] = serde_json::Value::Null;
        assert_eq!(
            LlamaConfig::from_hf_json(&json.to_string(), false)
                .unwrap()
                .sliding_windows,
            [None, None]
        );
        json["model_type"] = "qwen2".into();
        json["sliding_window"] = 8.into();
        json["use_sliding_window"] = true.into();
        json["max_window_layers"] = 1.into();
        let qwen = LlamaConfig::from_hf_json(&json.to_string(), false).unwrap();
        assert_eq!(qwen.sliding_windows, [None, Some(8)]);
        assert!(qwen.attention_bias && !qwen.qk_norm);
        json["layer_types"] = serde_json::json!(["sliding_attention", "full_attention"]);
        let typed = LlamaConfig::from_hf_json(&json.to_string(), false).unwrap();
        assert_eq!(typed.sliding_windows, [Some(8), None]);
        json["layer_types"] = serde_json::json!(["sliding_attention"]);
        assert_eq!(
            LlamaConfig::from_hf_json(&json.to_string(), false)
                .unwrap_err()
                .key,
            "layer_types"
        );
        // Without use_sliding_window, Qwen attends fully whatever layer_types says.
        json["use_sliding_window"] = false.into();
        assert_eq!(
            LlamaConfig::from_hf_json(&json.to_string(), false)
                .unwrap()
                .sliding_windows,
            [None, None]
        );
        json["use_sliding_window"] = true.into();
        json["model_type"] = "qwen3".into();
        json.as_object_mut().unwrap().remove("layer_types");
        assert!(
            LlamaConfig::from_hf_json(&json.to_string(), false)
                .unwrap()
                .qk_norm
        );
    }

    #[test]
    fn keys_that_change_the_math_are_refused_by_name() {
        for (key, value) in [
            ("attn_logit_softcapping", serde_json::json!(50.0)),
            ("final_logit_softcapping", serde_json::json!(30.0)),
            ("mlp_bias", serde_json::json!(true)),
            ("use_qk_norm", serde_json::json!(true)),
            ("partial_rotary_factor", serde_json::json!(0.5)),
            ("hidden_act", serde_json::json!("gelu_pytorch_tanh")),
            ("model_type", serde_json::json!("gpt_neox")),
        ] {
            assert_eq!(with(key, value).unwrap_err().key, key);
        }
        for (key, value) in [
            ("mlp_bias", serde_json::json!(false)),
            ("attn_logit_softcapping", serde_json::Value::Null),
            ("partial_rotary_factor", serde_json::json!(1.0)),
        ] {
            with(key, value).unwrap();
        }
    }

    #[test]
    fn unsupported_rope_scaling_is_refused_naming_the_key() {
        let error = with(
            "rope_scaling",
            serde_json::json!({"rope_type": "yarn", "factor": 4.0}),
        )
        .unwrap_err();
        assert_eq!(error.key, "rope_scaling");
        assert!(error.reason.contains("yarn"));
    }
}
