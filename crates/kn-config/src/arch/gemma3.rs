//! Gemma-3 text models (`gemma3_text`: Gemma-3-270M, 1B): RMSNorm multiplying by `1 + w`,
//! sandwich norms around attention and FFN, GELU-tanh gated FFN, per-head query/key norms,
//! `query_pre_attn_scalar`, embeddings scaled by `sqrt(hidden_size)`, sliding windows on the
//! `sliding_attention` layers with their own RoPE base (`rope_local_base_freq`, 10,000) and the
//! global RoPE (with its scaling) on the others.
//!
//! transformers 4.x writes `rope_theta`, `rope_local_base_freq`, `rope_scaling` (global) and
//! `sliding_window_pattern` (every 6th layer global); 5.x writes `layer_types` and
//! `rope_parameters` as a table per layer type. Both are read.
//!
//! GGUF (`gemma3.*`, llama.cpp's converter) stores the norm weights as `1 + w` already and lacks
//! the local RoPE base, the layer pattern and `query_pre_attn_scalar`: they take Gemma-3's
//! values (10,000, every 6th layer global, `head_dim`), as transformers' GGUF loader does.

use crate::decoder::{
    bool_key, refuse_unless_neutral, rope_table, str_key, windows_from_layer_types, Activation,
    CommonSizes, DecoderConfig, Ffn, Norm, NormKind, Part, Positions, TensorNames,
};
use crate::decoder::{Rope, RopeScaling};
use crate::gguf_keys::GgufKeys;
use crate::limits::{json_positive, json_size, ConfigError, Size};

/// Llama's names, with Gemma's sandwich norms (its `post_attention_layernorm` is the norm of
/// the attention output; the FFN's own norms are `pre_`/`post_feedforward_layernorm`).
fn part(part: Part) -> Option<&'static str> {
    match part {
        Part::PostAttnNorm => Some("post_attention_layernorm"),
        Part::FfnNorm => Some("pre_feedforward_layernorm"),
        Part::PostFfnNorm => Some("post_feedforward_layernorm"),
        other => super::llama::hf_part(other),
    }
}

/// Hugging Face names of `Gemma3ForCausalLM`.
pub const NAMES: TensorNames = super::hf_names(part);

/// llama.cpp's Llama names, with Gemma's sandwich norms.
fn gguf_part(part: Part) -> Option<&'static str> {
    match part {
        Part::PostAttnNorm => Some("post_attention_norm"),
        Part::PostFfnNorm => Some("post_ffw_norm"),
        other => super::llama::gguf_part(other),
    }
}

/// llama.cpp's GGUF names of Gemma-3 (its query/key rows are not permuted).
pub const GGUF_NAMES: TensorNames = TensorNames {
    part: gguf_part,
    rope_permuted: false,
    ..super::llama::GGUF_NAMES
};

/// Gemma-3's layers: every `pattern`-th (1-based) attends globally, the others slide.
fn pattern_windows(layers: usize, pattern: usize, window: usize) -> Vec<Option<usize>> {
    (0..layers)
        .map(|l| ((l + 1) % pattern != 0).then_some(window))
        .collect()
}

/// The `gemma3.*` metadata of a GGUF file; `vocab_fallback` (the tokenizer's size) when it has
/// no `gemma3.vocab_size`.
pub fn from_gguf(
    file: &kn_gguf::GgufFile,
    vocab_fallback: usize,
) -> Result<DecoderConfig, ConfigError> {
    let keys = GgufKeys::new(file, "gemma3");
    keys.refuse_rope_scaling()?;
    let real = |name: &str, default: f64| -> Result<f64, ConfigError> {
        Ok(keys.real(name)?.unwrap_or(default))
    };
    let hidden_size = keys.size("embedding_length", Size::Hidden)?;
    let heads = keys.size("attention.head_count", Size::Heads)?;
    let head_dim = keys.head_dim("attention.key_length", hidden_size, heads)?;
    let num_layers = keys.size("block_count", Size::Layers)?;
    let window = keys.size("attention.sliding_window", Size::Positions)?;
    let windows = pattern_windows(num_layers, 6, window);
    Ok(DecoderConfig {
        model_type: "gemma3".into(),
        vocab_size: keys.vocab_size(vocab_fallback)?,
        hidden_size,
        num_layers,
        num_layers_key: "gemma3.block_count",
        heads,
        kv_heads: keys
            .optional("attention.head_count_kv", Size::Heads)?
            .unwrap_or(heads),
        head_dim,
        ffn_width: keys.size("feed_forward_length", Size::Ffn)?,
        max_positions: keys.size("context_length", Size::Positions)?,
        norm: Norm {
            kind: NormKind::Rms,
            eps: real("attention.layer_norm_rms_epsilon", 1e-6)?,
            // llama.cpp's converter stored 1 + w.
            unit_offset: false,
        },
        ffn: Ffn {
            gated: true,
            activation: Activation::GeluTanh,
            bias: false,
        },
        attention_bias: false,
        output_bias: false,
        qk_norm: true,
        sandwich_norms: true,
        query_scale: (head_dim as f64).powf(-0.5),
        positions: Positions::Rotary {
            rotary_dim: head_dim,
            layer_rope: windows.iter().map(|w| usize::from(w.is_some())).collect(),
            ropes: vec![
                Rope {
                    base: real("rope.freq_base", 1_000_000.0)?,
                    scaling: RopeScaling::None,
                },
                Rope {
                    base: 10_000.0,
                    scaling: RopeScaling::None,
                },
            ],
        },
        sliding_windows: windows,
        parallel_residual: false,
        embedding_scale: Some((hidden_size as f64).sqrt()),
        tied_embeddings: true,
        add_bos: false,
        bos_id: None,
        tensors: GGUF_NAMES,
    })
}

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
            pattern_windows(layers, pattern, window()?)
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
