//! Loading weights into libtorch tensors: safetensors files (F32, F16, BF16, F64) and GGUF
//! files (any type `kn-gguf` dequantizes), with shape checks against the configuration and a
//! cheap fingerprint of the bytes.

use crate::error::{ModelError, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Named float32 tensors read from one weights file, taken out one by one with shape checks.
pub struct WeightMap {
    path: PathBuf,
    tensors: HashMap<String, Tensor>,
    device: Device,
}

/// FNV-1a 64-bit hash of `bytes`, as 16 hex digits: a fingerprint of a weights file.
pub fn fingerprint(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for chunk in bytes.chunks(8) {
        for &byte in chunk {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// Reads a whole file, naming it in the error.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })
}

impl WeightMap {
    /// Reads every tensor of a safetensors file (bytes already read) as float32.
    pub fn from_safetensors(bytes: &[u8], path: &Path, device: Device) -> Result<Self> {
        let weights_error = |reason: String| ModelError::Weights {
            path: path.to_path_buf(),
            reason,
        };
        let file = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| weights_error(e.to_string()))?;
        let mut tensors = HashMap::new();
        for (name, view) in file.tensors() {
            let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            let data = view.data();
            let values: Vec<f32> = match view.dtype() {
                safetensors::Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                safetensors::Dtype::F16 => data
                    .chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                safetensors::Dtype::BF16 => data
                    .chunks_exact(2)
                    .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                safetensors::Dtype::F64 => data
                    .chunks_exact(8)
                    .map(|c| {
                        f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                    })
                    .collect(),
                // Integer tensors (e.g. BERT's position_ids buffer) are not weights: skip them.
                safetensors::Dtype::I64
                | safetensors::Dtype::I32
                | safetensors::Dtype::I16
                | safetensors::Dtype::I8
                | safetensors::Dtype::U8
                | safetensors::Dtype::BOOL => continue,
                other => {
                    return Err(weights_error(format!(
                        "tensor {name} has unsupported dtype {other:?}"
                    )))
                }
            };
            let tensor =
                crate::error::guard(|| Ok(Tensor::from_slice(&values).reshape(shape.as_slice())))?;
            tensors.insert(name, tensor);
        }
        Ok(Self {
            path: path.to_path_buf(),
            tensors,
            device,
        })
    }

    /// Dequantizes every tensor of a GGUF file to float32 (row-major, ggml dims reversed).
    pub fn from_gguf(file: &kn_gguf::GgufFile, path: &Path, device: Device) -> Result<Self> {
        let mut tensors = HashMap::new();
        for info in file.tensors() {
            let (values, shape) = file.tensor_f32(&info.name)?;
            let shape: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
            let tensor =
                crate::error::guard(|| Ok(Tensor::from_slice(&values).reshape(shape.as_slice())))?;
            tensors.insert(info.name.clone(), tensor);
        }
        Ok(Self {
            path: path.to_path_buf(),
            tensors,
            device,
        })
    }

    /// Whether a tensor of any of these names is present.
    pub fn contains_any(&self, names: &[String]) -> bool {
        names.iter().any(|n| self.tensors.contains_key(n))
    }

    /// Whether a tensor of that name is present.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Takes the first present tensor among `names`, checks its shape and moves it to the
    /// device as a float32 tensor that never requires gradients.
    pub fn take(&mut self, names: &[&str], expected: &[i64]) -> Result<Tensor> {
        let Some((name, tensor)) = names
            .iter()
            .find_map(|n| self.tensors.remove(*n).map(|t| (*n, t)))
        else {
            return Err(ModelError::MissingTensor {
                name: names.join(" or "),
                path: self.path.clone(),
            });
        };
        let found = tensor.size();
        if found != expected {
            return Err(ModelError::ShapeMismatch {
                name: name.to_string(),
                path: self.path.clone(),
                expected: expected.to_vec(),
                found,
            });
        }
        // A NaN or infinite weight would make every output NaN: refuse it here, naming it.
        let finite = crate::error::guard(|| Ok(tensor.isfinite().all().int64_value(&[]) != 0))?;
        if !finite {
            return Err(ModelError::Weights {
                path: self.path.clone(),
                reason: format!("tensor {name} holds NaN or infinite values"),
            });
        }
        crate::error::guard(|| {
            Ok(tensor
                .to_device(self.device)
                .to_kind(Kind::Float)
                .set_requires_grad(false))
        })
    }

    /// Like [`WeightMap::take`] for an optional tensor: `Ok(None)` when none of `names` exists.
    pub fn take_optional(&mut self, names: &[&str], expected: &[i64]) -> Result<Option<Tensor>> {
        if names.iter().any(|n| self.contains(n)) {
            self.take(names, expected).map(Some)
        } else {
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_stable_and_sensitive() {
        assert_eq!(fingerprint(b"abc"), fingerprint(b"abc"));
        assert_ne!(fingerprint(b"abc"), fingerprint(b"abd"));
        assert_eq!(fingerprint(b"").len(), 16);
    }

    #[test]
    fn garbage_safetensors_is_a_typed_error() {
        let result = WeightMap::from_safetensors(
            b"\x05\x00\x00\x00\x00\x00\x00\x00{oops",
            Path::new("x.safetensors"),
            Device::Cpu,
        );
        assert!(matches!(result, Err(ModelError::Weights { .. })));
        let result =
            WeightMap::from_safetensors(&[0xff; 8], Path::new("x.safetensors"), Device::Cpu);
        assert!(matches!(result, Err(ModelError::Weights { .. })));
    }
}
