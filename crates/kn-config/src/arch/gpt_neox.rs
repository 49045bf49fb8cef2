//! GPT-NeoX and Pythia (`gpt_neox`): LayerNorm, partial rotary embeddings (`rotary_pct`, 5.x
//! `rope_parameters.partial_rotary_factor`), a fused query/key/value projection ordered per head,
//! a plain GELU FFN with biases, an untied output head, and the parallel residual
//! (`use_parallel_residual`: attention and FFN both read the layer's input).

use crate::decoder::{
    bool_key, rotary_dim, single_rope, str_key, Activation, CommonSizes, DecoderConfig, Ffn, Norm,
    NormKind, Part, Positions, QkvLayout, TensorNames,
};
use crate::limits::{json_positive, ConfigError};

fn part(part: Part) -> Option<&'static str> {
    Some(match part {
        Part::AttnNorm => "input_layernorm",
        Part::Qkv => "attention.query_key_value",
        Part::O => "attention.dense",
        Part::FfnNorm => "post_attention_layernorm",
        Part::Fc => "mlp.dense_h_to_4h",
        Part::Down => "mlp.dense_4h_to_h",
        _ => return None,
    })
}

/// Hugging Face names of `GPTNeoXForCausalLM`.
pub const NAMES: TensorNames = TensorNames {
    embeddings: "gpt_neox.embed_in.weight",
    positions: None,
    output_norm: "gpt_neox.final_layer_norm",
    lm_head: "embed_out.weight",
    layer: "gpt_neox.layers.{}.",
    part,
    qkv_layout: QkvLayout::PerHead,
    transposed: false,
    rope_permuted: false,
};

/// The `gpt_neox` mapping of `config.json`.
pub fn from_hf_json(json: &serde_json::Value) -> Result<DecoderConfig, ConfigError> {
    let activation =
        Activation::parse("hidden_act", str_key(json, "hidden_act")?.unwrap_or("gelu"))?;
    let sizes = CommonSizes::read(json)?;
    let (rope, partial) = single_rope(json, "rotary_emb_base", 10_000.0)?;
    let partial = match json.get("rotary_pct").and_then(serde_json::Value::as_f64) {
        Some(pct) => Some(pct),
        None => partial.or(Some(0.25)),
    };
    let bias = bool_key(json, "attention_bias")?.unwrap_or(true);
    Ok(DecoderConfig {
        model_type: "gpt_neox".into(),
        vocab_size: sizes.vocab_size,
        hidden_size: sizes.hidden_size,
        num_layers: sizes.num_layers,
        num_layers_key: "num_hidden_layers",
        heads: sizes.heads,
        kv_heads: sizes.heads,
        head_dim: sizes.head_dim,
        ffn_width: sizes.ffn_width,
        max_positions: sizes.max_positions,
        norm: Norm {
            kind: NormKind::Layer,
            eps: json_positive(json, "layer_norm_eps", 1e-5)?,
            unit_offset: false,
        },
        ffn: Ffn {
            gated: false,
            activation,
            bias: true,
        },
        attention_bias: bias,
        output_bias: bias,
        qk_norm: false,
        sandwich_norms: false,
        query_scale: 1.0 / (sizes.head_dim as f64).sqrt(),
        positions: Positions::Rotary {
            rotary_dim: rotary_dim(sizes.head_dim, partial, "rotary_pct")?,
            ropes: vec![rope],
            layer_rope: vec![0; sizes.num_layers],
        },
        sliding_windows: vec![None; sizes.num_layers],
        parallel_residual: bool_key(json, "use_parallel_residual")?.unwrap_or(true),
        embedding_scale: None,
        tied_embeddings: bool_key(json, "tie_word_embeddings")?.unwrap_or(false),
        add_bos: false,
        bos_id: json.get("bos_token_id").and_then(serde_json::Value::as_i64),
        tensors: NAMES,
    })
}
