//! Llama (2 and 3.x, with `linear` or `llama3` RoPE scaling), Mistral (sliding windows on every
//! layer), Qwen2 (biased query/key/value projections, sliding windows from `max_window_layers`
//! or `layer_types`) and Qwen3 (per-head query/key RMSNorm), from `config.json`; and Llama and
//! Qwen2 from GGUF metadata (`llama.*`, `qwen2.*`).

use crate::decoder::{
    bool_key, refuse_unless_neutral, rotary_dim, single_rope, str_key, windows_from_layer_types,
    Activation, CommonSizes, DecoderConfig, Ffn, Norm, NormKind, Part, Positions, QkvLayout, Rope,
    RopeScaling, TensorNames,
};
use crate::gguf_keys::GgufKeys;
use crate::limits::{json_positive, json_size, ConfigError, Size};

/// The Hugging Face module path of `part` in a Llama-family layer.
pub(crate) fn hf_part(part: Part) -> Option<&'static str> {
    Some(match part {
        Part::AttnNorm => "input_layernorm",
        Part::Q => "self_attn.q_proj",
        Part::K => "self_attn.k_proj",
        Part::V => "self_attn.v_proj",
        Part::O => "self_attn.o_proj",
        Part::QNorm => "self_attn.q_norm",
        Part::KNorm => "self_attn.k_norm",
        Part::FfnNorm => "post_attention_layernorm",
        Part::Gate => "mlp.gate_proj",
        Part::Up => "mlp.up_proj",
        Part::Down => "mlp.down_proj",
        _ => return None,
    })
}

/// Hugging Face names of the family.
pub const NAMES: TensorNames = super::hf_names(hf_part);

/// llama.cpp's module path of `part` in a GGUF layer.
pub(crate) fn gguf_part(part: Part) -> Option<&'static str> {
    Some(match part {
        Part::AttnNorm => "attn_norm",
        Part::Q => "attn_q",
        Part::K => "attn_k",
        Part::V => "attn_v",
        Part::O => "attn_output",
        Part::QNorm => "attn_q_norm",
        Part::KNorm => "attn_k_norm",
        Part::FfnNorm => "ffn_norm",
        Part::Gate => "ffn_gate",
        Part::Up => "ffn_up",
        Part::Down => "ffn_down",
        _ => return None,
    })
}

/// llama.cpp's GGUF names (query/key rows in its RoPE order).
pub const GGUF_NAMES: TensorNames = TensorNames {
    embeddings: "token_embd.weight",
    positions: None,
    output_norm: "output_norm",
    lm_head: "output.weight",
    layer: "blk.{}.",
    part: gguf_part,
    qkv_layout: QkvLayout::Stacked,
    transposed: false,
    rope_permuted: true,
};

/// The Llama-family mapping of `config.json`.
pub fn from_hf_json(
    model_type: &str,
    json: &serde_json::Value,
) -> Result<DecoderConfig, ConfigError> {
    for key in ["attn_logit_softcapping", "final_logit_softcapping"] {
        refuse_unless_neutral(json, key, &[], "logit soft-capping")?;
    }
    refuse_unless_neutral(
        json,
        "mlp_bias",
        &[false.into()],
        "an FFN with biases in this family",
    )?;
    refuse_unless_neutral(
        json,
        "use_qk_norm",
        &[false.into()],
        "Llama 4's query/key norm",
    )?;
    if let Some(act) = str_key(json, "hidden_act")? {
        if Activation::parse("hidden_act", act)? != Activation::Silu {
            return Err(ConfigError::new(
                "hidden_act",
                format!("{act:?} is not supported (this family's FFN is SwiGLU: \"silu\")"),
            ));
        }
    }
    let sizes = CommonSizes::read(json)?;
    let (rope, partial) = single_rope(json, "rope_theta", 10_000.0)?;
    let partial = match json
        .get("partial_rotary_factor")
        .and_then(serde_json::Value::as_f64)
    {
        Some(f) => Some(f),
        None => partial,
    };
    if partial.is_some_and(|f| f != 1.0) {
        return Err(ConfigError::new(
            "partial_rotary_factor",
            "partial rotary embeddings are not implemented for this family",
        ));
    }
    let windows = sliding_windows(json, model_type, sizes.num_layers)?;
    Ok(DecoderConfig {
        model_type: model_type.to_string(),
        vocab_size: sizes.vocab_size,
        hidden_size: sizes.hidden_size,
        num_layers: sizes.num_layers,
        num_layers_key: "num_hidden_layers",
        heads: sizes.heads,
        kv_heads: sizes.kv_heads,
        head_dim: sizes.head_dim,
        ffn_width: sizes.ffn_width,
        max_positions: sizes.max_positions,
        norm: Norm {
            kind: NormKind::Rms,
            eps: json_positive(json, "rms_norm_eps", 1e-6)?,
            unit_offset: false,
        },
        ffn: Ffn {
            gated: true,
            activation: Activation::Silu,
            bias: false,
        },
        // Qwen2's projections always have biases (its config has no key for it).
        attention_bias: model_type == "qwen2" || bool_key(json, "attention_bias")?.unwrap_or(false),
        output_bias: model_type != "qwen2" && bool_key(json, "attention_bias")?.unwrap_or(false),
        qk_norm: model_type == "qwen3",
        sandwich_norms: false,
        query_scale: 1.0 / (sizes.head_dim as f64).sqrt(),
        positions: Positions::Rotary {
            rotary_dim: rotary_dim(sizes.head_dim, partial, "partial_rotary_factor")?,
            ropes: vec![rope],
            layer_rope: vec![0; sizes.num_layers],
        },
        sliding_windows: windows,
        parallel_residual: false,
        embedding_scale: None,
        tied_embeddings: bool_key(json, "tie_word_embeddings")?.unwrap_or(false),
        add_bos: false,
        bos_id: json.get("bos_token_id").and_then(serde_json::Value::as_i64),
        tensors: NAMES,
    })
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
            if let Some(types) = json.get("layer_types").filter(|v| !v.is_null()) {
                return windows_from_layer_types(types, layers, window);
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
            let window = window()?;
            Ok((0..layers)
                .map(|l| (l as u64 >= from).then_some(window))
                .collect())
        }
        _ => Ok(vec![None; layers]),
    }
}

/// llama.cpp's GGUF names of Qwen2 (biased query/key/value projections, rows not permuted:
/// its converter permutes Llama's only).
pub const QWEN2_GGUF_NAMES: TensorNames = TensorNames {
    rope_permuted: false,
    ..GGUF_NAMES
};

/// The `llama.*` or `qwen2.*` metadata of a GGUF file (`arch`); `vocab_fallback` (the
/// tokenizer's size) when it has no `ARCH.vocab_size`. Qwen2's files carry no sliding window
/// (Qwen2 / Qwen2.5 checkpoints ship with `use_sliding_window` off).
pub fn from_gguf(
    file: &kn_gguf::GgufFile,
    arch: &'static str,
    vocab_fallback: usize,
) -> Result<DecoderConfig, ConfigError> {
    let (qwen2, num_layers_key, tensors) = match arch {
        "qwen2" => (true, "qwen2.block_count", QWEN2_GGUF_NAMES),
        _ => (false, "llama.block_count", GGUF_NAMES),
    };
    let keys = GgufKeys::new(file, arch);
    keys.refuse_rope_scaling()?;
    let hidden_size = keys.size("embedding_length", Size::Hidden)?;
    let heads = keys.size("attention.head_count", Size::Heads)?;
    let head_dim = keys.head_dim("rope.dimension_count", hidden_size, heads)?;
    let num_layers = keys.size("block_count", Size::Layers)?;
    Ok(DecoderConfig {
        model_type: arch.to_string(),
        vocab_size: keys.vocab_size(vocab_fallback)?,
        hidden_size,
        num_layers,
        num_layers_key,
        heads,
        kv_heads: keys
            .optional("attention.head_count_kv", Size::Heads)?
            .unwrap_or(heads),
        head_dim,
        ffn_width: keys.size("feed_forward_length", Size::Ffn)?,
        max_positions: keys.size("context_length", Size::Positions)?,
        norm: Norm {
            kind: NormKind::Rms,
            eps: keys.required_real("attention.layer_norm_rms_epsilon")?,
            unit_offset: false,
        },
        ffn: Ffn {
            gated: true,
            activation: Activation::Silu,
            bias: false,
        },
        attention_bias: qwen2,
        output_bias: false,
        qk_norm: false,
        sandwich_norms: false,
        query_scale: 1.0 / (head_dim as f64).sqrt(),
        positions: Positions::Rotary {
            rotary_dim: head_dim,
            ropes: vec![Rope {
                base: keys.real("rope.freq_base")?.unwrap_or(10_000.0),
                scaling: RopeScaling::None,
            }],
            layer_rope: vec![0; num_layers],
        },
        sliding_windows: vec![None; num_layers],
        parallel_residual: false,
        embedding_scale: None,
        // GGUF has no flag: a missing output.weight means tied.
        tied_embeddings: true,
        add_bos: false,
        bos_id: None,
        tensors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decoder::RopeScaling;

    fn rope(config: &DecoderConfig) -> &Rope {
        match &config.positions {
            Positions::Rotary { ropes, .. } => &ropes[0],
            Positions::Learned => panic!("rotary"),
        }
    }

    pub(crate) fn tiny() -> serde_json::Value {
        serde_json::json!({
            "model_type": "llama", "vocab_size": 100, "hidden_size": 16, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 32,
            "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0
        })
    }

    fn with(key: &str, value: serde_json::Value) -> Result<DecoderConfig, ConfigError> {
        let mut json = tiny();
        json[key] = value;
        DecoderConfig::from_hf_json(&json.to_string(), false)
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
        let error = DecoderConfig::from_hf_json(&json.to_string(), false).unwrap_err();
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
        let new = DecoderConfig::from_hf_json(&json.to_string(), false).unwrap();
        assert_eq!(rope(&old), rope(&new));
        // Wavelength 2 pi (kept), 2 pi x 10^4 (> 8192: divided by 8), and one in between.
        let mut inv_freq = [1.0, 1e-4, 2.0 * std::f64::consts::PI / 4096.0];
        rope(&new).scaling.apply(&mut inv_freq);
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
        assert_eq!(rope(&linear).scaling, RopeScaling::Linear { factor: 2.0 });
    }

    #[test]
    fn sliding_windows_follow_each_family_and_layer_types() {
        let mut json = tiny();
        json["model_type"] = "mistral".into();
        json["sliding_window"] = 4.into();
        let mistral = DecoderConfig::from_hf_json(&json.to_string(), false).unwrap();
        assert_eq!(mistral.sliding_windows, [Some(4), Some(4)]);
        json["sliding_window"] = serde_json::Value::Null;
        assert_eq!(
            DecoderConfig::from_hf_json(&json.to_string(), false)
                .unwrap()
                .sliding_windows,
            [None, None]
        );
        json["model_type"] = "qwen2".into();
        json["sliding_window"] = 8.into();
        json["use_sliding_window"] = true.into();
        json["max_window_layers"] = 1.into();
        let qwen = DecoderConfig::from_hf_json(&json.to_string(), false).unwrap();
        assert_eq!(qwen.sliding_windows, [None, Some(8)]);
        assert!(qwen.attention_bias && !qwen.qk_norm);
        json["layer_types"] = serde_json::json!(["sliding_attention", "full_attention"]);
        let typed = DecoderConfig::from_hf_json(&json.to_string(), false).unwrap();
        assert_eq!(typed.sliding_windows, [Some(8), None]);
        json["layer_types"] = serde_json::json!(["sliding_attention"]);
        assert_eq!(
            DecoderConfig::from_hf_json(&json.to_string(), false)
                .unwrap_err()
                .key,
            "layer_types"
        );
        // Without use_sliding_window, Qwen attends fully whatever layer_types says.
        json["use_sliding_window"] = false.into();
        assert_eq!(
            DecoderConfig::from_hf_json(&json.to_string(), false)
                .unwrap()
                .sliding_windows,
            [None, None]
        );
        json["use_sliding_window"] = true.into();
        json["model_type"] = "qwen3".into();
        json.as_object_mut().unwrap().remove("layer_types");
        assert!(
            DecoderConfig::from_hf_json(&json.to_string(), false)
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
            ("model_type", serde_json::json!("falcon")),
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
