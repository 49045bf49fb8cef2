//! The configuration of a Llama-family causal LM (RMSNorm, RoPE, grouped-query attention,
//! SwiGLU), from a Hugging Face `config.json` (transformers 4.x `rope_theta` +
//! `rope_scaling`, or 5.x `rope_parameters`) or from GGUF metadata (`llama.*` keys).

use crate::limits::{
    check_positive, check_size, json_positive, json_size, json_size_opt, ConfigError, Size,
};

/// Hyper-parameters of a Llama-family model, every size bounded and every setting checked.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
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
        for key in ["rope_scaling", "rope_parameters"] {
            if let Some(scaling) = json.get(key).filter(|v| !v.is_null()) {
                let kind = scaling
                    .get("rope_type")
                    .or_else(|| scaling.get("type"))
                    .and_then(|v| v.as_str())
                    .unwrap_or("default");
                if kind != "default" {
                    return Err(ConfigError::new(
                        key,
                        format!("RoPE scaling of type {kind:?} is not supported"),
                    ));
                }
            }
        }
        let rope_base = match json.get("rope_theta") {
            Some(v) if !v.is_null() => json_positive(&json, "rope_theta", 10_000.0)?,
            _ => match json.get("rope_parameters") {
                Some(p) if p.get("rope_theta").is_some() => {
                    json_positive(p, "rope_theta", 10_000.0)
                        .map_err(|e| ConfigError::new("rope_parameters.rope_theta", e.reason))?
                }
                _ => 10_000.0,
            },
        };
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
        let config = Self {
            tied_embeddings: bool_key(&json, "tie_word_embeddings")?.unwrap_or(false),
            vocab_size: json_size(&json, "vocab_size", Size::Vocabulary)?,
            hidden_size,
            num_layers: json_size(&json, "num_hidden_layers", Size::Layers)?,
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
        let config = Self {
            // GGUF has no flag: a missing output.weight means tied.
            tied_embeddings: true,
            vocab_size,
            hidden_size,
            num_layers: size("block_count", Size::Layers)?,
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
