//! GPT-Neo (`gpt_neo`): GPT-2's layer with separate unbiased query/key/value projections, a
//! biased output projection, unscaled attention scores (GPT-Neo does not divide by
//! `sqrt(head_dim)`), and local attention (a window of `window_size`) on the layers
//! `attention_types` marks `local`.

use crate::decoder::{
    bool_key, str_key, Activation, DecoderConfig, Ffn, Norm, NormKind, Part, Positions, QkvLayout,
    TensorNames,
};
use crate::limits::{check_size, json_positive, json_size, json_size_opt, ConfigError, Size};

/// GPT-2's names, with separate query, key, value and output projections.
fn part(part: Part) -> Option<&'static str> {
    match part {
        Part::Q => Some("attn.attention.q_proj"),
        Part::K => Some("attn.attention.k_proj"),
        Part::V => Some("attn.attention.v_proj"),
        Part::O => Some("attn.attention.out_proj"),
        Part::Qkv => None,
        other => super::gpt2::part(other),
    }
}

/// Hugging Face names of `GPTNeoForCausalLM`.
pub const NAMES: TensorNames = TensorNames {
    embeddings: "transformer.wte.weight",
    positions: Some("transformer.wpe.weight"),
    output_norm: "transformer.ln_f",
    lm_head: "lm_head.weight",
    layer: "transformer.h.{}.",
    part,
    qkv_layout: QkvLayout::Stacked,
    transposed: false,
    rope_permuted: false,
};

/// The `gpt_neo` mapping of `config.json`.
pub fn from_hf_json(json: &serde_json::Value) -> Result<DecoderConfig, ConfigError> {
    let activation = Activation::parse(
        "activation_function",
        str_key(json, "activation_function")?.unwrap_or("gelu_new"),
    )?;
    let hidden_size = json_size(json, "hidden_size", Size::Hidden)?;
    let heads = json_size(json, "num_heads", Size::Heads)?;
    let head_dim = check_size(
        "hidden_size / num_heads",
        (hidden_size / heads) as u64,
        Size::HeadDim,
    )?;
    if head_dim * heads != hidden_size {
        return Err(ConfigError::new(
            "num_heads",
            format!("hidden_size {hidden_size} is not a multiple of num_heads {heads}"),
        ));
    }
    let num_layers = json_size(json, "num_layers", Size::Layers)?;
    let windows = attention_windows(json, num_layers)?;
    Ok(DecoderConfig {
        model_type: "gpt_neo".into(),
        vocab_size: json_size(json, "vocab_size", Size::Vocabulary)?,
        hidden_size,
        num_layers,
        num_layers_key: "num_layers",
        heads,
        kv_heads: heads,
        head_dim,
        ffn_width: match json_size_opt(json, "intermediate_size", Size::Ffn)? {
            Some(width) => width,
            None => check_size("4 x hidden_size", 4 * hidden_size as u64, Size::Ffn)?,
        },
        max_positions: json_size(json, "max_position_embeddings", Size::Positions)?,
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
        attention_bias: false,
        output_bias: true,
        qk_norm: false,
        sandwich_norms: false,
        query_scale: 1.0,
        positions: Positions::Learned,
        sliding_windows: windows,
        parallel_residual: false,
        embedding_scale: None,
        tied_embeddings: bool_key(json, "tie_word_embeddings")?.unwrap_or(true),
        add_bos: false,
        bos_id: json.get("bos_token_id").and_then(serde_json::Value::as_i64),
        tensors: NAMES,
    })
}

/// Expands `attention_types` (`[[["global", "local"], 12]]`: the pattern repeated 12 times)
/// into a window per layer (`window_size` for `local`).
fn attention_windows(
    json: &serde_json::Value,
    layers: usize,
) -> Result<Vec<Option<usize>>, ConfigError> {
    let bad = |why: &str| ConfigError::new("attention_types", why.to_string());
    let Some(types) = json.get("attention_types").filter(|v| !v.is_null()) else {
        return Ok((0..layers).map(|l| (l % 2 == 1).then_some(256)).collect());
    };
    let mut kinds: Vec<&str> = Vec::new();
    for group in types
        .as_array()
        .ok_or_else(|| bad("must be a list of [pattern, repeats]"))?
    {
        let (pattern, repeats) = match group.as_array().map(Vec::as_slice) {
            Some([pattern, repeats]) => (pattern, repeats),
            _ => return Err(bad("each entry must be [pattern, repeats]")),
        };
        let repeats = repeats
            .as_u64()
            .filter(|&r| r as usize <= layers)
            .ok_or_else(|| bad("repeats must be a count up to the layer count"))?;
        let pattern: Vec<&str> = pattern
            .as_array()
            .ok_or_else(|| bad("a pattern must be a list"))?
            .iter()
            .map(|k| k.as_str().ok_or_else(|| bad("attention types are strings")))
            .collect::<Result<_, _>>()?;
        for _ in 0..repeats {
            kinds.extend(&pattern);
            if kinds.len() > layers {
                break;
            }
        }
    }
    if kinds.len() != layers {
        return Err(bad(&format!(
            "expands to {} layers, the model has {layers}",
            kinds.len()
        )));
    }
    kinds
        .into_iter()
        .map(|kind| match kind {
            "global" => Ok(None),
            "local" => json_size(json, "window_size", Size::Positions).map(Some),
            other => Err(bad(&format!("{other:?} is not global or local"))),
        })
        .collect()
}
