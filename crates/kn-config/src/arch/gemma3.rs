//! Gemma-3 text models (`gemma3_text`: Gemma-3-270M, 1B): RMSNorm multiplying by `1 + w`,
//! sandwich norms around attention and FFN, GELU-tanh gated FFN, per-head query/key norms,
//! `query_pre_attn_scalar`, embeddings scaled by `sqrt(hidden_size)`, sliding windows on the
//! `sliding_attention` layers with their own RoPE base (`rope_local_base_freq`, 10,000) and the
//! global RoPE (with its scaling) on the others.
//!
//! transformers 4.x writes `rope_theta`, `rope_local_base_freq`, `rope_scaling` (global) and
//! `sliding_window_pattern` (every 6th layer global); 5.x writes `layer_types` and
//! `rope_parameters` as a table per layer type. Both are read.

use crate::decoder::{
    bool_key, refuse_unless_neutral, rope_table, str_key, windows_from_layer_types, Activation,
    CommonSizes, DecoderConfig, Ffn, Norm, NormKind, Part, Positions, TensorNames,
};
use crate::limits::{json_positive, json_size, ConfigError, Size};

fn part(part: Part) -> Option<&'static str> {
    Some(match part {
        Part::AttnNorm => "input_layernorm",
        Part::Q => "self_attn.q_proj",
        Part::K => "self_attn.k_proj",
        Part::V => "self_attn.v_proj",
        Part::O => "self_attn.o_proj",
        Part::QNorm => "self_attn.q_norm",
        Part::KNorm => "self_attn.k_norm",
        Part::PostAttnNorm => "post_attention_layernorm",
        Part::FfnNorm => "pre_feedforward_layernorm",
        Part::PostFfnNorm => "post_feedforward_layernorm",
        Part::Gate => "mlp.gate_proj",
        Part::Up => "mlp.up_proj",
        Part::Down => "mlp.down_proj",
        _ => return None,
    })
}

/// Hugging Face names of `Gemma3ForCausalLM`.
pub const NAMES: TensorNames = super::hf_names(part);

/// The `gemma3_text` mapping of `config.json`.
pub fn from_hf_json(json: &serde_json::Value) -> Result<DecoderConfig, ConfigError> {
    for key in ["attn_logit_softcapping", "final_logit_softcapping"] {
        refuse_unless_neutral(json, key, &[], "logit soft-capping")?;
    }
    refuse_unless_neutral(
        json,
        "use_bidirectional_attention",
        &[false.into()],
        "bidirectional attention",
    )?;
    let act = str_key(json, "hidden_activation")?
        .or(str_key(json, "hidden_act")?)
        .unwrap_or("gelu_pytorch_tanh");
    let activation = Activation::parse("hidden_activation", act)?;
    let sizes = CommonSizes::read(json)?;
    let layers = sizes.num_layers;
    let window = || json_size(json, "sliding_window", Size::Positions);
    let windows = match json.get("layer_types").filter(|v| !v.is_null()) {
        Some(types) => windows_from_layer_types(types, layers, window)?,
        None => {
            let pattern = match json.get("sliding_window_pattern").filter(|v| !v.is_null()) {
                Some(_) => json_size(json, "sliding_window_pattern", Size::Layers)?,
                None => 6,
            };
            (0..layers)
                .map(|l| ((l + 1) % pattern != 0).then(window).transpose())
                .collect::<Result<_, _>>()?
        }
    };
    // The global table: 5.x rope_parameters.full_attention, or 4.x rope_theta + rope_scaling;
    // the local one: 5.x rope_parameters.sliding_attention, or 4.x rope_local_base_freq.
    let tables = json.get("rope_parameters").filter(|v| !v.is_null());
    let per_type = tables
        .is_some_and(|t| t.get("full_attention").is_some() || t.get("sliding_attention").is_some());
    let (global, global_partial) = if per_type {
        rope_table(
            tables.and_then(|t| t.get("full_attention")),
            "rope_parameters.full_attention",
            1_000_000.0,
        )?
    } else {
        let base = json_positive(json, "rope_theta", 1_000_000.0)?;
        let scaling = json.get("rope_scaling").filter(|v| !v.is_null()).or(tables);
        rope_table(scaling, "rope_scaling", base)?
    };
    let (local, local_partial) = if per_type {
        rope_table(
            tables.and_then(|t| t.get("sliding_attention")),
            "rope_parameters.sliding_attention",
            10_000.0,
        )?
    } else {
        rope_table(
            None,
            "rope_local_base_freq",
            json_positive(json, "rope_local_base_freq", 10_000.0)?,
        )?
    };
    if global_partial.or(local_partial).is_some_and(|f| f != 1.0) {
        return Err(ConfigError::new(
            "rope_parameters",
            "partial rotary embeddings are not implemented for Gemma-3",
        ));
    }
    let query_pre_attn_scalar =
        json_positive(json, "query_pre_attn_scalar", sizes.head_dim as f64)?;
    Ok(DecoderConfig {
        model_type: "gemma3_text".into(),
        vocab_size: sizes.vocab_size,
        hidden_size: sizes.hidden_size,
        num_layers: layers,
        num_layers_key: "num_hidden_layers",
        heads: sizes.heads,
        kv_heads: sizes.kv_heads,
        head_dim: sizes.head_dim,
        ffn_width: sizes.ffn_width,
        max_positions: sizes.max_positions,
        norm: Norm {
            kind: NormKind::Rms,
            eps: json_positive(json, "rms_norm_eps", 1e-6)?,
            unit_offset: true,
        },
        ffn: Ffn {
            gated: true,
            activation,
            bias: false,
        },
        attention_bias: bool_key(json, "attention_bias")?.unwrap_or(false),
        output_bias: bool_key(json, "attention_bias")?.unwrap_or(false),
        qk_norm: true,
        sandwich_norms: true,
        query_scale: query_pre_attn_scalar.powf(-0.5),
        positions: Positions::Rotary {
            rotary_dim: sizes.head_dim,
            layer_rope: windows.iter().map(|w| usize::from(w.is_some())).collect(),
            ropes: vec![global, local],
        },
        sliding_windows: windows,
        parallel_residual: false,
        embedding_scale: Some((sizes.hidden_size as f64).sqrt()),
        tied_embeddings: bool_key(json, "tie_word_embeddings")?.unwrap_or(true),
        add_bos: false,
        bos_id: json.get("bos_token_id").and_then(serde_json::Value::as_i64),
        tensors: NAMES,
    })
}
