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

use tch::Kind;

pub use kn_schema::Dtype;

/// libtorch's kind of a [`Dtype`].
pub fn torch_kind(dtype: Dtype) -> Kind {
    match dtype {
        Dtype::F32 => Kind::Float,
        Dtype::Bf16 => Kind::BFloat16,
        Dtype::F16 => Kind::Half,
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
        assert_eq!(torch_kind(Dtype::Bf16), Kind::BFloat16);
        assert_eq!(Dtype::F16.bytes(), 2);
    }
}
