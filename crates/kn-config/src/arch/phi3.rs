//! Phi-3 (`phi3`): a Llama layer with fused projections (`qkv_proj`: query, key, value rows
//! stacked; `gate_up_proj`: gate rows, then up rows), optional partial rotary embeddings and a
//! sliding window on every layer when `sliding_window` is set. `longrope` scaling is refused.

use crate::decoder::{
    bool_key, refuse_unless_neutral, rotary_dim, single_rope, str_key, Activation, CommonSizes,
    DecoderConfig, Ffn, Norm, NormKind, Part, Positions, TensorNames,
};
use crate::limits::{json_positive, json_size, ConfigError, Size};

fn part(part: Part) -> Option<&'static str> {
    Some(match part {
        Part::AttnNorm => "input_layernorm",
        Part::Qkv => "self_attn.qkv_proj",
        Part::O => "self_attn.o_proj",
        Part::FfnNorm => "post_attention_layernorm",
        Part::GateUp => "mlp.gate_up_proj",
        Part::Down => "mlp.down_proj",
        _ => return None,
    })
}

/// Hugging Face names of `Phi3ForCausalLM`.
pub const NAMES: TensorNames = super::hf_names(part);

/// The `phi3` mapping of `config.json`.
pub fn from_hf_json(json: &serde_json::Value) -> Result<DecoderConfig, ConfigError> {
    if let Some(act) = str_key(json, "hidden_act")? {
        if Activation::parse("hidden_act", act)? != Activation::Silu {
            return Err(ConfigError::new(
                "hidden_act",
                format!("{act:?} is not supported (Phi-3's FFN is SwiGLU)"),
            ));
        }
    }
    refuse_unless_neutral(
        json,
        "attention_bias",
        &[false.into()],
        "projection biases in Phi-3",
    )?;
    let sizes = CommonSizes::read(json)?;
    let (rope, partial) = single_rope(json, "rope_theta", 10_000.0)?;
    let partial = json
        .get("partial_rotary_factor")
        .and_then(serde_json::Value::as_f64)
        .or(partial);
    let windows = match json.get("sliding_window").filter(|v| !v.is_null()) {
        Some(_) => {
            vec![Some(json_size(json, "sliding_window", Size::Positions)?); sizes.num_layers]
        }
        None => vec![None; sizes.num_layers],
    };
    Ok(DecoderConfig {
        model_type: "phi3".into(),
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
            eps: json_positive(json, "rms_norm_eps", 1e-5)?,
            unit_offset: false,
        },
        ffn: Ffn {
            gated: true,
            activation: Activation::Silu,
            bias: false,
        },
        attention_bias: false,
        output_bias: false,
        qk_norm: false,
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
