//! The configuration of a BERT masked LM, from a Hugging Face `config.json`.

use crate::limits::{json_positive, json_size, json_size_opt, ConfigError, Size};

/// Hyper-parameters of a BERT masked LM, every size bounded and every setting checked.
#[derive(Debug, Clone, PartialEq)]
pub struct BertConfig {
    /// Vocabulary entries.
    pub vocab_size: usize,
    /// Hidden width.
    pub hidden_size: usize,
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// FFN intermediate width.
    pub intermediate_size: usize,
    /// Learned positions.
    pub max_position_embeddings: usize,
    /// Token types (segments).
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
}

impl BertConfig {
    /// Reads `config.json` text.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let json: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| ConfigError::new("config.json", format!("not valid JSON: {e}")))?;
        if !json.is_object() {
            return Err(ConfigError::new("config.json", "not a JSON object"));
        }
        match json.get("hidden_act") {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::String(act)) if act == "gelu" => {}
            Some(other) => {
                return Err(ConfigError::new(
                    "hidden_act",
                    format!("{other} is not supported (only \"gelu\")"),
                ))
            }
        }
        if let Some(kind) = json
            .get("position_embedding_type")
            .and_then(|v| v.as_str())
            .filter(|kind| *kind != "absolute")
        {
            return Err(ConfigError::new(
                "position_embedding_type",
                format!("{kind:?} is not supported (only \"absolute\")"),
            ));
        }
        let config = Self {
            vocab_size: json_size(&json, "vocab_size", Size::Vocabulary)?,
            hidden_size: json_size(&json, "hidden_size", Size::Hidden)?,
            num_hidden_layers: json_size(&json, "num_hidden_layers", Size::Layers)?,
            num_attention_heads: json_size(&json, "num_attention_heads", Size::Heads)?,
            intermediate_size: json_size(&json, "intermediate_size", Size::Ffn)?,
            max_position_embeddings: json_size(&json, "max_position_embeddings", Size::Positions)?,
            type_vocab_size: json_size_opt(&json, "type_vocab_size", Size::Vocabulary)?
                .unwrap_or(2),
            layer_norm_eps: json_positive(&json, "layer_norm_eps", 1e-12)?,
        };
        if config.hidden_size % config.num_attention_heads != 0 {
            return Err(ConfigError::new(
                "num_attention_heads",
                format!(
                    "hidden_size {} is not a multiple of num_attention_heads {}",
                    config.hidden_size, config.num_attention_heads
                ),
            ));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> serde_json::Value {
        serde_json::json!({
            "model_type": "bert", "vocab_size": 100, "hidden_size": 16, "num_hidden_layers": 2,
            "num_attention_heads": 4, "intermediate_size": 32, "max_position_embeddings": 64,
            "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu"
        })
    }

    #[test]
    fn every_key_is_bounded_and_named() {
        assert!(BertConfig::from_json(&tiny().to_string()).is_ok());
        for key in [
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "max_position_embeddings",
            "type_vocab_size",
        ] {
            for value in [
                serde_json::json!(1e9),
                serde_json::json!(1u64 << 31),
                serde_json::json!(1u64 << 62),
            ] {
                let mut json = tiny();
                json[key] = value;
                let error = BertConfig::from_json(&json.to_string()).unwrap_err();
                assert_eq!(error.key, key, "{error}");
            }
        }
        for eps in [serde_json::json!(-1.0), serde_json::json!(0.0)] {
            let mut json = tiny();
            json["layer_norm_eps"] = eps;
            assert_eq!(
                BertConfig::from_json(&json.to_string()).unwrap_err().key,
                "layer_norm_eps"
            );
        }
    }
}
