//! The model a file or a patch belongs to: its kind, its architecture facts, its weights'
//! fingerprint and the precision it ran in ([`ModelInfo`], the one model identity every run
//! file, report and patch records).

use serde::{Deserialize, Serialize};

/// Whether the model predicts a masked token or the next token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Masked language model (BERT): the answer is predicted at the mask token.
    Masked,
    /// Causal language model (Llama): the answer is the next token after the prompt.
    Causal,
}

/// Architecture facts of a loaded model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Architecture name ("bert", "llama").
    pub architecture: String,
    /// Masked or causal.
    pub kind: ModelKind,
    /// Number of transformer layers.
    pub num_layers: usize,
    /// FFN intermediate width (neurons per layer).
    pub ffn_width: usize,
    /// Hidden size.
    pub hidden_size: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Longest input, in tokens (0 in patches written before patches recorded it).
    #[serde(default)]
    pub max_positions: usize,
    /// Where the model was loaded from ("" in patches written before patches recorded it).
    #[serde(default)]
    pub source: String,
    /// A fingerprint of the weights file(s) (FNV-1a 64 of the bytes, hex), used to check that
    /// results and patches belong to this model.
    pub fingerprint: String,
    /// The type the weight matrices are held and multiplied in (`f32` in files written before
    /// it was recorded).
    #[serde(default)]
    pub dtype: Dtype,
}

/// The first way two descriptions of a model differ, as [`ModelInfo::difference`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelDifference {
    /// An architecture field (`architecture`, `kind`, `num_layers`, `ffn_width`,
    /// `hidden_size`, `vocab_size`) differs: `(field, expected, found)`.
    Architecture(&'static str, String, String),
    /// The architectures agree but the weights differ: `(expected, found)` fingerprints.
    Fingerprint(String, String),
}

impl ModelInfo {
    /// How `found` differs from this model, architecture fields first, then the weights'
    /// fingerprint; `None` for the same model. Where it was loaded from, its context length
    /// and its precision are not compared: the same weights loaded from another path or in
    /// another dtype are the same model.
    pub fn difference(&self, found: &ModelInfo) -> Option<ModelDifference> {
        let field = |name: &'static str, expected: String, found: String| {
            (expected != found).then(|| ModelDifference::Architecture(name, expected, found))
        };
        field(
            "architecture",
            self.architecture.clone(),
            found.architecture.clone(),
        )
        .or_else(|| {
            field(
                "kind",
                format!("{:?}", self.kind),
                format!("{:?}", found.kind),
            )
        })
        .or_else(|| {
            [
                ("num_layers", self.num_layers, found.num_layers),
                ("ffn_width", self.ffn_width, found.ffn_width),
                ("hidden_size", self.hidden_size, found.hidden_size),
                ("vocab_size", self.vocab_size, found.vocab_size),
            ]
            .into_iter()
            .find_map(|(name, a, b)| field(name, a.to_string(), b.to_string()))
        })
        .or_else(|| {
            (self.fingerprint != found.fingerprint).then(|| {
                ModelDifference::Fingerprint(self.fingerprint.clone(), found.fingerprint.clone())
            })
        })
    }
}

/// The type a model's weight matrices are stored and multiplied in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// float32: the paper-exact default.
    #[default]
    F32,
    /// bfloat16 (float32's range, 8 bits of mantissa): how checkpoints ship.
    Bf16,
    /// float16 (IEEE half): weights beyond ±65504 are refused at load.
    F16,
}

impl Dtype {
    /// Every value, in the order the option lists them.
    pub const ALL: [Dtype; 3] = [Dtype::F32, Dtype::Bf16, Dtype::F16];

    /// The name `--dtype` takes and run files record.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::Bf16 => "bf16",
            Dtype::F16 => "f16",
        }
    }

    /// Bytes per stored value.
    pub fn bytes(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::Bf16 | Dtype::F16 => 2,
        }
    }
}

impl std::fmt::Display for Dtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Dtype {
    type Err = String;

    /// `f32` (also `float32`), `bf16` (`bfloat16`), `f16` (`float16`, `half`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "f32" | "float32" => Ok(Dtype::F32),
            "bf16" | "bfloat16" => Ok(Dtype::Bf16),
            "f16" | "float16" | "half" => Ok(Dtype::F16),
            other => Err(format!(
                "dtype {other:?} is not one of f32, bf16, f16 (float32, bfloat16, float16)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ModelInfo {
        ModelInfo {
            architecture: "llama".into(),
            kind: ModelKind::Causal,
            num_layers: 2,
            ffn_width: 8,
            hidden_size: 4,
            vocab_size: 10,
            max_positions: 16,
            source: "a.gguf".into(),
            fingerprint: "abc".into(),
            dtype: Dtype::F32,
        }
    }

    #[test]
    fn differences_name_the_first_field_then_the_weights() {
        let same = ModelInfo {
            source: "b".into(),
            dtype: Dtype::Bf16,
            ..info()
        };
        assert_eq!(info().difference(&same), None);
        let wider = ModelInfo {
            ffn_width: 9,
            fingerprint: "x".into(),
            ..info()
        };
        assert_eq!(
            info().difference(&wider),
            Some(ModelDifference::Architecture(
                "ffn_width",
                "8".into(),
                "9".into()
            ))
        );
        let retrained = ModelInfo {
            fingerprint: "x".into(),
            ..info()
        };
        assert_eq!(
            info().difference(&retrained),
            Some(ModelDifference::Fingerprint("abc".into(), "x".into()))
        );
    }

    #[test]
    fn patches_of_before_source_was_recorded_still_read() {
        let json = r#"{"architecture":"llama","kind":"causal","num_layers":2,"ffn_width":8,
            "hidden_size":4,"vocab_size":10,"fingerprint":"abc"}"#;
        let read: ModelInfo = serde_json::from_str(json).unwrap();
        assert_eq!(read.difference(&info()), None);
        let renamed = json.replace("ffn_width", "ffn");
        assert!(serde_json::from_str::<ModelInfo>(&renamed).is_err());
    }
}
