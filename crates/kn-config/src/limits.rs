//! Bounds on the sizes and settings a model configuration may hold, and the checks that
//! apply them. The bounds are far above any released model (Llama-3-405B: 126 layers, hidden
//! 16,384, FFN 53,248, vocabulary 128,256; Gemma-3: vocabulary 262,144) and far below what
//! would exhaust memory or overflow a shape product.

/// An invalid configuration: the key and what is wrong with its value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ConfigError {
    /// The configuration key (`num_hidden_layers`, `llama.block_count`).
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

impl ConfigError {
    /// An error about `key`.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// What a size key measures, which sets its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// Decoder or encoder layers.
    Layers,
    /// Hidden (residual) width.
    Hidden,
    /// FFN intermediate width.
    Ffn,
    /// Attention heads (query or key/value).
    Heads,
    /// Width of one attention head.
    HeadDim,
    /// Vocabulary entries (or token types).
    Vocabulary,
    /// Context length (positions).
    Positions,
}

impl Size {
    /// The largest value accepted.
    pub const fn max(self) -> u64 {
        match self {
            Size::Layers => 1024,
            Size::Hidden => 1 << 16,
            Size::Ffn => 1 << 20,
            Size::Heads => 1024,
            Size::HeadDim => 4096,
            Size::Vocabulary => 1 << 22,
            Size::Positions => 1 << 24,
        }
    }
}

/// Checks a size read from a file: positive and at most `kind`'s bound.
pub fn check_size(key: &str, value: u64, kind: Size) -> Result<usize, ConfigError> {
    if value == 0 {
        return Err(ConfigError::new(key, "must be positive"));
    }
    if value > kind.max() {
        return Err(ConfigError::new(
            key,
            format!(
                "{value} is larger than {} (no model has that many; the file is corrupt)",
                kind.max()
            ),
        ));
    }
    usize::try_from(value).map_err(|_| ConfigError::new(key, format!("{value} does not fit")))
}

/// Checks a real-valued setting (epsilon, RoPE base): finite and positive.
pub fn check_positive(key: &str, value: f64) -> Result<f64, ConfigError> {
    if !value.is_finite() || value <= 0.0 {
        return Err(ConfigError::new(
            key,
            format!("{value} must be a finite number above 0 (it would make every output NaN)"),
        ));
    }
    Ok(value)
}

/// A size key of a JSON object: missing, non-integer, negative or out-of-bound values are
/// errors naming the key.
pub fn json_size(json: &serde_json::Value, key: &str, kind: Size) -> Result<usize, ConfigError> {
    match json.get(key) {
        None | Some(serde_json::Value::Null) => Err(ConfigError::new(key, "missing")),
        Some(value) => check_size(key, json_u64(key, value)?, kind),
    }
}

/// [`json_size`] for an optional key (`None` when absent or null).
pub fn json_size_opt(
    json: &serde_json::Value,
    key: &str,
    kind: Size,
) -> Result<Option<usize>, ConfigError> {
    match json.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(_) => json_size(json, key, kind).map(Some),
    }
}

/// A positive real key of a JSON object, `default` when absent or null.
pub fn json_positive(
    json: &serde_json::Value,
    key: &str,
    default: f64,
) -> Result<f64, ConfigError> {
    match json.get(key) {
        None | Some(serde_json::Value::Null) => Ok(default),
        Some(value) => {
            let number = value
                .as_f64()
                .ok_or_else(|| ConfigError::new(key, format!("{value} is not a number")))?;
            check_positive(key, number)
        }
    }
}

fn json_u64(key: &str, value: &serde_json::Value) -> Result<u64, ConfigError> {
    if let Some(n) = value.as_u64() {
        return Ok(n);
    }
    // 1e9 or 4096.0: an integer written as a float is read when it is one exactly.
    match value.as_f64() {
        Some(f) if f.fract() == 0.0 && f >= 0.0 && f < 1.8e19 => Ok(f as u64),
        _ => Err(ConfigError::new(
            key,
            format!(
                "{} is not a non-negative integer",
                shorten(&value.to_string())
            ),
        )),
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= 60 {
        text.to_string()
    } else {
        format!("{}...", text.chars().take(60).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn absurd_sizes_are_refused_naming_the_key() {
        for (value, fragment) in [
            (serde_json::json!(1e9), "larger than 1024"),
            (serde_json::json!(2147483648u64), "larger than 1024"),
            (
                serde_json::json!(4611686018427387904u64),
                "larger than 1024",
            ),
            (serde_json::json!(0), "must be positive"),
            (serde_json::json!(-3), "not a non-negative integer"),
            (serde_json::json!("12"), "not a non-negative integer"),
        ] {
            let json = serde_json::json!({ "num_hidden_layers": value });
            let error = json_size(&json, "num_hidden_layers", Size::Layers).unwrap_err();
            assert_eq!(error.key, "num_hidden_layers");
            assert!(error.to_string().contains(fragment), "{error}");
        }
        let json = serde_json::json!({ "num_hidden_layers": 30.0 });
        assert_eq!(json_size(&json, "num_hidden_layers", Size::Layers), Ok(30));
    }

    #[test]
    fn non_finite_or_non_positive_settings_are_refused() {
        for bad in [0.0, -1e-6, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(check_positive("rms_norm_eps", bad).is_err(), "{bad}");
        }
        assert_eq!(check_positive("rope_theta", 1e4), Ok(1e4));
    }

    proptest! {
        /// Every accepted size is positive and within its bound, so products of a few of them
        /// (the shapes the loader builds) cannot overflow.
        #[test]
        fn accepted_sizes_are_bounded(value in any::<u64>(), kind in 0usize..7) {
            let kind = [Size::Layers, Size::Hidden, Size::Ffn, Size::Heads, Size::HeadDim,
                        Size::Vocabulary, Size::Positions][kind];
            match check_size("k", value, kind) {
                Ok(size) => prop_assert!(size >= 1 && size as u64 <= kind.max()),
                Err(e) => prop_assert!(value == 0 || value > kind.max(), "{}", e),
            }
        }
    }
}
