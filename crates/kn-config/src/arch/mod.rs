//! One small file per architecture: how its `config.json` maps onto [`DecoderConfig`] (and
//! which of its keys are refused), and where its tensors are ([`TensorNames`]).
//!
//! | `model_type` | file |
//! | --- | --- |
//! | `llama`, `mistral`, `qwen2`, `qwen3` | [`llama`] |
//! | `gemma3_text` | [`gemma3`] |
//! | `phi3` | [`phi3`] |
//! | `gpt2` | [`gpt2`] |
//! | `gpt_neo` | [`gpt_neo`] |
//! | `gpt_neox` | [`gpt_neox`] |

use crate::decoder::{DecoderConfig, TensorNames};
use crate::limits::ConfigError;

pub mod gemma3;
pub mod gpt2;
pub mod gpt_neo;
pub mod gpt_neox;
pub mod llama;
pub mod phi3;

/// Every decoder `model_type` `kn` runs.
pub const MODEL_TYPES: [&str; 9] = [
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "gemma3_text",
    "phi3",
    "gpt2",
    "gpt_neo",
    "gpt_neox",
];

/// The mapping of `model_type`.
pub fn from_hf_json(
    model_type: &str,
    json: &serde_json::Value,
) -> Result<DecoderConfig, ConfigError> {
    match model_type {
        "llama" | "mistral" | "qwen2" | "qwen3" => llama::from_hf_json(model_type, json),
        "gemma3_text" => gemma3::from_hf_json(json),
        "phi3" => phi3::from_hf_json(json),
        "gpt2" => gpt2::from_hf_json(json),
        "gpt_neo" => gpt_neo::from_hf_json(json),
        "gpt_neox" => gpt_neox::from_hf_json(json),
        "gemma3" => Err(ConfigError::new(
            "model_type",
            "\"gemma3\" is the multimodal model: give the text model (model_type \"gemma3_text\", e.g. Gemma-3-270M or 1B)",
        )),
        other => Err(ConfigError::new(
            "model_type",
            format!("{other:?} is not supported (bert, {})", MODEL_TYPES.join(", ")),
        )),
    }
}

/// The Hugging Face layout most architectures share (`model.layers.N.self_attn.q_proj`, ...);
/// `part` names what differs.
pub(crate) const fn hf_names(
    part: fn(crate::decoder::Part) -> Option<&'static str>,
) -> TensorNames {
    TensorNames {
        embeddings: "model.embed_tokens.weight",
        positions: None,
        output_norm: "model.norm",
        lm_head: "lm_head.weight",
        layer: "model.layers.{}.",
        part,
        qkv_layout: crate::decoder::QkvLayout::Stacked,
        transposed: false,
        rope_permuted: false,
    }
}
