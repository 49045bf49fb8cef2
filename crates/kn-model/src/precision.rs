//! The precision a model's weights are held and multiplied in (`--dtype f32|bf16|f16`).
//!
//! float32 is the default and the paper-exact path every parity test checks. In bfloat16 and
//! float16 the weight matrices (embeddings, attention and FFN projections, the output head)
//! are stored in that type, and every product with them runs in it (libtorch's oneDNN kernels,
//! which use AVX512-BF16 where the CPU has it; cuBLAS on a GPU); everything else (the residual
//! stream, norms and their weights, biases, attention scores and softmax, the output head's
//! softmax, and attribution's sums) stays float32, as PyTorch's autocast does. So half
//! precision halves the weights' memory and speeds their products while the integrated
//! gradients are still accumulated in float32.

use serde::{Deserialize, Serialize};
use tch::Kind;

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

    /// libtorch's kind of this type.
    pub fn kind(self) -> Kind {
        match self {
            Dtype::F32 => Kind::Float,
            Dtype::Bf16 => Kind::BFloat16,
            Dtype::F16 => Kind::Half,
        }
    }

    /// Bytes per stored value.
    pub fn bytes(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::Bf16 | Dtype::F16 => 2,
        }
    }

    /// Whether `kind` is one of the half-precision kinds weights may be held in.
    pub fn is_half_kind(kind: Kind) -> bool {
        matches!(kind, Kind::BFloat16 | Kind::Half)
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

    #[test]
    fn names_round_trip_and_bad_names_are_refused() {
        for dtype in Dtype::ALL {
            assert_eq!(dtype.name().parse::<Dtype>(), Ok(dtype));
            let json = serde_json::to_string(&dtype).unwrap();
            assert_eq!(json, format!("\"{}\"", dtype.name()));
            assert_eq!(serde_json::from_str::<Dtype>(&json).unwrap(), dtype);
        }
        assert_eq!("bfloat16".parse::<Dtype>(), Ok(Dtype::Bf16));
        let error = "f64".parse::<Dtype>().unwrap_err();
        assert!(
            error.contains("\"f64\"") && error.contains("bf16"),
            "{error}"
        );
        assert_eq!(Dtype::default(), Dtype::F32);
        assert_eq!(Dtype::Bf16.kind(), Kind::BFloat16);
        assert_eq!(Dtype::F16.bytes(), 2);
    }
}
