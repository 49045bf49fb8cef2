//! GPT-2 (`gpt2`): LayerNorm, learned absolute positions, a plain GELU-tanh FFN, biases on every
//! projection, one fused query/key/value projection (`c_attn`), and `Conv1D` weights stored
//! `[in, out]` (the loader transposes them). Options that change the attention
//! (`scale_attn_by_inverse_layer_idx`, cross-attention, unscaled scores) are refused.

use crate::decoder::{
    bool_key, refuse_unless_neutral, str_key, Activation, DecoderConfig, Ffn, Norm, NormKind, Part,
    Positions, QkvLayout, TensorNames,
};
use crate::limits::{check_size, json_positive, json_size, json_size_opt, ConfigError, Size};

/// The Hugging Face module path of `part` in a GPT-2 block.
pub(crate) fn part(part: Part) -> Option<&'static str> {
    Some(match part {
        Part::AttnNorm => "ln_1",
        Part::Qkv => "attn.c_attn",
        Part::O => "attn.c_proj",
        Part::FfnNorm => "ln_2",
        Part::Fc => "mlp.c_fc",
        Part::Down => "mlp.c_proj",
        _ => return None,
    })
}

/// Hugging Face names of `GPT2LMHeadModel`.
pub const NAMES: TensorNames = TensorNames {
    embeddings: "transformer.wte.weight",
    positions: Some("transformer.wpe.weight"),
    output_norm: "transformer.ln_f",
    lm_head: "lm_head.weight",
    layer: "transformer.h.{}.",
    part,
    qkv_layout: QkvLayout::Stacked,
    transposed: true,
    rope_permuted: false,
};

/// The `gpt2` mapping of `config.json`.
pub fn from_hf_json(json: &serde_json::Value) -> Result<DecoderConfig, ConfigError> {
    refuse_unless_neutral(
        json,
        "scale_attn_by_inverse_layer_idx",
        &[false.into()],
        "scaling attention by the inverse layer index",
    )?;
    refuse_unless_neutral(
        json,
        "add_cross_attention",
        &[false.into()],
        "cross-attention",
    )?;
    refuse_unless_neutral(
        json,
        "scale_attn_weights",
        &[true.into()],
        "unscaled attention scores",
    )?;
    let activation = Activation::parse(
        "activation_function",
        str_key(json, "activation_function")?.unwrap_or("gelu_new"),
    )?;
    let hidden_size = json_size(json, "n_embd", Size::Hidden)?;
    let heads = json_size(json, "n_head", Size::Heads)?;
    let head_dim = check_size(
        "n_embd / n_head",
        (hidden_size / heads) as u64,
        Size::HeadDim,
    )?;
    if head_dim * heads != hidden_size {
        return Err(ConfigError::new(
            "n_head",
            format!("n_embd {hidden_size} is not a multiple of n_head {heads}"),
        ));
    }
    let ffn_width = match json_size_opt(json, "n_inner", Size::Ffn)? {
        Some(width) => width,
        None => check_size("4 x n_embd", 4 * hidden_size as u64, Size::Ffn)?,
    };
    let num_layers = json_size(json, "n_layer", Size::Layers)?;
    Ok(DecoderConfig {
        model_type: "gpt2".into(),
        vocab_size: json_size(json, "vocab_size", Size::Vocabulary)?,
        hidden_size,
        num_layers,
        num_layers_key: "n_layer",
        heads,
        kv_heads: heads,
        head_dim,
        ffn_width,
        max_positions: json_size(json, "n_positions", Size::Positions)?,
        norm: Norm {
            kind: NormKind::Layer,
            eps: json_positive(json, "layer_norm_epsilon", 1e-5)?,
            unit_offset: false,
        },
        ffn: Ffn {
            gated: false,
            activation,
            bias: true,
        },
        attention_bias: true,
        output_bias: true,
        qk_norm: false,
        sandwich_norms: false,
        query_scale: 1.0 / (head_dim as f64).sqrt(),
        positions: Positions::Learned,
        sliding_windows: vec![None; num_layers],
        parallel_residual: false,
        embedding_scale: None,
        tied_embeddings: bool_key(json, "tie_word_embeddings")?.unwrap_or(true),
        add_bos: false,
        bos_id: json.get("bos_token_id").and_then(serde_json::Value::as_i64),
        tensors: NAMES,
    })
}
