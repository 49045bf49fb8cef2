//! Loading weights into libtorch tensors, with shape checks against the configuration and a
//! cheap fingerprint of the bytes.
//!
//! Safetensors checkpoints are read as they ship: one `model.safetensors`, or shards listed by
//! `model.safetensors.index.json`. Each file is memory-mapped (`memmap2`), only its header is
//! parsed up front, and a tensor is converted (F32, F16, BF16, F64 to float32, or to the
//! model's `--dtype`; a tensor already stored in that type is copied as it is) when the model
//! takes it, so a load holds the final weights plus the one tensor being converted, never a
//! copy of the whole file. GGUF files are dequantized tensor by tensor by `kn-gguf`.

use crate::error::{ModelError, Result};
use crate::precision::Dtype;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// The single-file checkpoint name.
pub const SAFETENSORS_FILE: &str = "model.safetensors";
/// The index of a sharded checkpoint.
pub const SAFETENSORS_INDEX: &str = "model.safetensors.index.json";

/// One memory-mapped safetensors file and its header.
struct MappedFile {
    path: PathBuf,
    map: memmap2::Mmap,
    /// Where the data section starts (8 + header length).
    data_start: usize,
}

/// Where a not yet converted tensor lies.
struct LazyTensor {
    file: usize,
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    /// Byte range within the file's data section.
    range: (usize, usize),
}

/// Bytes of a mapped checkpoint hashed at a time by the fingerprint before they are let go.
const FINGERPRINT_SLICE: usize = 64 << 20;

/// Lets go of the mapped pages of `len` bytes from `offset`: they leave this process's resident
/// memory (the kernel keeps them in its page cache and reads them back if they are touched
/// again), so what was converted or hashed is not held twice.
fn release(map: &memmap2::Mmap, offset: usize, len: usize) {
    #[cfg(unix)]
    // SAFETY: `map` is a read-only mapping of a file: MADV_DONTNEED only drops its pages, and a
    // later read faults the same bytes back in from the file, so no slice into it changes.
    let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len) };
}

/// Named weights, taken out one by one with shape checks.
pub struct WeightMap {
    /// The file or directory, for messages.
    path: PathBuf,
    /// A memory-mapped GGUF file whose tensors are dequantized on [`WeightMap::take`], and the
    /// map itself (to let converted pages go).
    gguf: Option<(kn_gguf::GgufFile, SharedMap)>,
    /// Tensors of mapped safetensors files, converted on [`WeightMap::take`].
    lazy: HashMap<String, LazyTensor>,
    files: Vec<MappedFile>,
    device: Device,
}

/// FNV-1a 64-bit hash of `bytes`, as 16 hex digits: a fingerprint of a weights file.
pub fn fingerprint(bytes: &[u8]) -> String {
    format!("{:016x}", fnv1a(0xcbf2_9ce4_8422_2325, bytes))
}

fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// A read-only memory map of a file, shared between the GGUF reader (which parses it) and the
/// weight map (which lets its pages go once converted).
#[derive(Clone)]
pub struct SharedMap(std::sync::Arc<memmap2::Mmap>);

impl AsRef<[u8]> for SharedMap {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl SharedMap {
    /// Maps the file at `path` read-only.
    pub fn open(path: &Path) -> Result<Self> {
        Ok(Self(std::sync::Arc::new(map_readonly(path)?)))
    }

    /// [`fingerprint`] of the whole file, a slice at a time, each slice let go once hashed.
    pub fn fingerprint(&self) -> String {
        format!(
            "{:016x}",
            fingerprint_released(0xcbf2_9ce4_8422_2325, &self.0)
        )
    }
}

/// A read-only memory map of the file at `path`.
fn map_readonly(path: &Path) -> Result<memmap2::Mmap> {
    let io_error = |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    // SAFETY: the map is read-only; a file truncated while mapped would fault, as it would for
    // any program reading a checkpoint that another process rewrites underneath it.
    unsafe { memmap2::Mmap::map(&file) }.map_err(io_error)
}

/// FNV-1a of `map`'s bytes continuing from `hash`, a [`FINGERPRINT_SLICE`] at a time, each
/// let go once hashed: a checkpoint larger than the memory is fingerprinted without ever being
/// resident whole.
fn fingerprint_released(mut hash: u64, map: &memmap2::Mmap) -> u64 {
    for start in (0..map.len()).step_by(FINGERPRINT_SLICE) {
        let end = (start + FINGERPRINT_SLICE).min(map.len());
        hash = fnv1a(hash, &map[start..end]);
        release(map, start, end - start);
    }
    hash
}

impl WeightMap {
    /// Maps the safetensors checkpoint of a model directory: the shards its
    /// `model.safetensors.index.json` names, or its `model.safetensors`. Returns the weights
    /// and the fingerprint of every file's bytes, in order (for one file: [`fingerprint`] of
    /// it, as before sharding was read). Weights that would not fit in memory in `dtype` are
    /// refused before any byte is read ([`WeightMap::check_fits`]).
    pub fn from_safetensors_dir(
        dir: &Path,
        device: Device,
        dtype: Dtype,
    ) -> Result<(Self, String)> {
        let index_path = dir.join(SAFETENSORS_INDEX);
        let (files, expected): (Vec<PathBuf>, Vec<(String, PathBuf)>) = if index_path.is_file() {
            read_index(&index_path, dir)?
        } else {
            (vec![dir.join(SAFETENSORS_FILE)], Vec::new())
        };
        let path = if files.len() == 1 {
            files[0].clone()
        } else {
            dir.to_path_buf()
        };
        let mut weights = Self {
            path,
            gguf: None,
            lazy: HashMap::new(),
            files: Vec::new(),
            device,
        };
        for file in &files {
            weights.map_file(file)?;
        }
        // Every tensor the index names must be in the shard it names.
        for (name, shard) in expected {
            let found = weights
                .lazy
                .get(&name)
                .map(|t| weights.files[t.file].path == shard);
            if found != Some(true) {
                return Err(ModelError::Weights {
                    path: index_path.clone(),
                    reason: format!(
                        "tensor {name} is not in {}, where the index puts it",
                        shard.display()
                    ),
                });
            }
        }
        weights.check_fits(dtype)?;
        let hash = weights
            .files
            .iter()
            .fold(0xcbf2_9ce4_8422_2325, |hash, mapped| {
                fingerprint_released(hash, &mapped.map)
            });
        Ok((weights, format!("{hash:016x}")))
    }

    /// Maps one safetensors file and records its tensors.
    fn map_file(&mut self, path: &Path) -> Result<()> {
        let weights_error = |reason: String| ModelError::Weights {
            path: path.to_path_buf(),
            reason,
        };
        let map = map_readonly(path)?;
        let (header_len, metadata) = safetensors::SafeTensors::read_metadata(&map)
            .map_err(|e| weights_error(e.to_string()))?;
        let data_start = 8 + header_len;
        let data_len = map.len().saturating_sub(data_start);
        let index = self.files.len();
        for (name, info) in metadata.tensors() {
            let (start, end) = info.data_offsets;
            if start > end || end > data_len {
                return Err(weights_error(format!(
                    "tensor {name} claims bytes {start}..{end}, but the file holds {data_len}"
                )));
            }
            if self.lazy.contains_key(&name) {
                return Err(weights_error(format!("tensor {name} is in two shards")));
            }
            self.lazy.insert(
                name,
                LazyTensor {
                    file: index,
                    dtype: info.dtype,
                    shape: info.shape.clone(),
                    range: (start, end),
                },
            );
        }
        self.files.push(MappedFile {
            path: path.to_path_buf(),
            map,
            data_start,
        });
        Ok(())
    }

    /// Maps one safetensors file.
    #[cfg(test)]
    fn from_safetensors_file(path: &Path, device: Device) -> Result<Self> {
        let mut weights = Self {
            path: path.to_path_buf(),
            gguf: None,
            lazy: HashMap::new(),
            files: Vec::new(),
            device,
        };
        weights.map_file(path)?;
        Ok(weights)
    }

    /// The tensors of a memory-mapped GGUF file (`file` parsed from `map`), each dequantized
    /// to float32 (row-major, ggml dims reversed) when taken, its pages then let go.
    pub fn from_gguf(file: kn_gguf::GgufFile, map: SharedMap, path: &Path, device: Device) -> Self {
        Self {
            path: path.to_path_buf(),
            gguf: Some((file, map)),
            lazy: HashMap::new(),
            files: Vec::new(),
            device,
        }
    }

    /// Whether a tensor of any of these names is present.
    pub fn contains_any(&self, names: &[String]) -> bool {
        names.iter().any(|n| self.contains(n))
    }

    /// Whether a tensor of that name is present.
    pub fn contains(&self, name: &str) -> bool {
        self.lazy.contains_key(name)
            || self
                .gguf
                .as_ref()
                .is_some_and(|(file, _)| file.tensor_info(name).is_some())
    }

    /// The memory the weights take once loaded with their matrices in `dtype` (every tensor
    /// counted at `dtype`'s width: the float32 norms are a rounding error of it).
    pub fn loaded_bytes(&self, dtype: Dtype) -> u64 {
        let elements: u64 = match &self.gguf {
            Some((file, _)) => file.tensors().iter().filter_map(|t| t.n_elements()).sum(),
            None => self
                .lazy
                .values()
                .map(|t| t.shape.iter().map(|&d| d as u64).product::<u64>())
                .sum(),
        };
        elements.saturating_mul(dtype.bytes() as u64)
    }

    /// Refuses, before anything is allocated, weights that would take more memory than the
    /// machine has available ([`crate::available_memory`]; CPU only), with the sizes and the
    /// way out, instead of letting the kernel end the process part way through the load.
    pub fn check_fits(&self, dtype: Dtype) -> Result<()> {
        if self.device != Device::Cpu {
            return Ok(());
        }
        match crate::available_memory() {
            Some(available) => self.check_fits_within(dtype, available),
            None => Ok(()),
        }
    }

    /// [`WeightMap::check_fits`] against `available` bytes.
    fn check_fits_within(&self, dtype: Dtype, available: u64) -> Result<()> {
        let needed = self.loaded_bytes(dtype);
        if needed <= available {
            return Ok(());
        }
        let gib = |bytes: u64| bytes as f64 / f64::from(1u32 << 30);
        let hint = match dtype {
            Dtype::F32 => "; --dtype bf16 holds them in half the memory",
            Dtype::Bf16 | Dtype::F16 => "",
        };
        Err(ModelError::OutOfMemory(format!(
            "the weights of {} take {:.1} GiB in {dtype}, and {:.1} GiB of memory is available{hint}",
            self.path.display(),
            gib(needed),
            gib(available)
        )))
    }

    /// Takes the first present tensor among `names`, checks its shape (before converting it)
    /// and its values (finite), and moves it to the device as a float32 tensor that never
    /// requires gradients.
    pub fn take(&mut self, names: &[&str], expected: &[i64]) -> Result<Tensor> {
        self.take_as(names, expected, Dtype::F32)
    }

    /// [`WeightMap::take`] into `dtype`: a tensor stored in that type is copied as it is;
    /// others are converted through float32 one tensor at a time. A float16 tensor whose
    /// values exceed float16's range is refused, naming it.
    pub fn take_as(&mut self, names: &[&str], expected: &[i64], dtype: Dtype) -> Result<Tensor> {
        let Some(name) = names.iter().copied().find(|n| self.contains(n)) else {
            return Err(ModelError::MissingTensor {
                name: names.join(" or "),
                path: self.path.clone(),
            });
        };
        let shape_error = |found: Vec<i64>, path: &Path| ModelError::ShapeMismatch {
            name: name.to_string(),
            path: path.to_path_buf(),
            expected: expected.to_vec(),
            found,
        };
        // A NaN or infinite weight would make every output NaN: refuse it, naming it (checked
        // on the values as they are converted).
        let not_finite = |path: &Path| ModelError::Weights {
            path: path.to_path_buf(),
            reason: format!("tensor {name} holds NaN or infinite values"),
        };
        let gguf = self
            .gguf
            .as_ref()
            .and_then(|(file, map)| Some((file, map, file.tensor_info(name)?)));
        let tensor = if let Some((file, map, info)) = gguf {
            let shape: Vec<i64> = info.shape().iter().map(|&d| d as i64).collect();
            if shape != expected {
                return Err(shape_error(shape, &self.path));
            }
            let (values, _) = file.tensor_f32(name)?;
            let range = file.tensor_range(name)?;
            release(&map.0, range.start, range.len());
            if !values.iter().all(|v| v.is_finite()) {
                return Err(not_finite(&self.path));
            }
            let tensor =
                crate::error::guard(|| Ok(Tensor::from_slice(&values).reshape(shape.as_slice())))?;
            drop(values);
            in_dtype(tensor, dtype, name, &self.path)?
        } else {
            let lazy = self
                .lazy
                .remove(name)
                .ok_or_else(|| ModelError::MissingTensor {
                    name: name.to_string(),
                    path: self.path.clone(),
                })?;
            let file = &self.files[lazy.file];
            let shape: Vec<i64> = lazy.shape.iter().map(|&d| d as i64).collect();
            if shape != expected {
                return Err(shape_error(shape, &file.path));
            }
            let (offset, len) = (file.data_start + lazy.range.0, lazy.range.1 - lazy.range.0);
            let bytes = &file.map[offset..offset + len];
            let converted = match stored_as(lazy.dtype, dtype) {
                Some(kind) => copy_half(name, kind, bytes, &shape, &file.path),
                None => convert(name, lazy.dtype, bytes, &shape, &file.path),
            };
            release(&file.map, offset, len);
            match converted? {
                (tensor, true) => in_dtype(tensor, dtype, name, &file.path)?,
                (_, false) => return Err(not_finite(&file.path)),
            }
        };
        crate::error::guard(|| Ok(tensor.to_device(self.device).set_requires_grad(false)))
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

/// The shard files of a sharded checkpoint's index (in file-name order) and where it puts
/// each tensor.
fn read_index(index_path: &Path, dir: &Path) -> Result<(Vec<PathBuf>, Vec<(String, PathBuf)>)> {
    let bad = |reason: String| ModelError::Weights {
        path: index_path.to_path_buf(),
        reason,
    };
    let text = kn_schema::read_capped_text(index_path, 64 << 20, "safetensors index")
        .map_err(|e| bad(e.to_string()))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let map = json
        .get("weight_map")
        .and_then(serde_json::Value::as_object)
        .ok_or_else(|| bad("no \"weight_map\" object".into()))?;
    let mut expected = Vec::with_capacity(map.len());
    let mut files: Vec<PathBuf> = Vec::new();
    for (name, shard) in map {
        let shard = shard
            .as_str()
            .ok_or_else(|| bad(format!("the shard of {name} is not a file name")))?;
        // Shards sit beside the index: a name with a path in it could leave the directory.
        if shard.is_empty() || shard.contains('/') || shard.contains('\\') || shard.starts_with('.')
        {
            return Err(bad(format!(
                "shard name {shard:?} of {name} is not a file name"
            )));
        }
        let path = dir.join(shard);
        if !files.contains(&path) {
            files.push(path.clone());
        }
        expected.push((name.clone(), path));
    }
    if files.is_empty() {
        return Err(bad("the weight map is empty".into()));
    }
    files.sort();
    Ok((files, expected))
}

/// The kind a tensor stored as `stored` is copied into as it is when wanted in `dtype`: a
/// bfloat16 tensor for bf16, a float16 one for f16 (`None`: converted through float32).
fn stored_as(stored: safetensors::Dtype, dtype: Dtype) -> Option<Kind> {
    match (stored, dtype) {
        (safetensors::Dtype::BF16, Dtype::Bf16) => Some(Kind::BFloat16),
        (safetensors::Dtype::F16, Dtype::F16) => Some(Kind::Half),
        _ => None,
    }
}

/// Refuses a tensor whose bytes are not `shape`'s values of `width` bytes each, naming it.
fn check_length(name: &str, data: &[u8], width: usize, shape: &[i64], path: &Path) -> Result<()> {
    let elements = shape.iter().product::<i64>();
    if data.len() as i64 == elements * width as i64 {
        return Ok(());
    }
    Err(ModelError::Weights {
        path: path.to_path_buf(),
        reason: format!(
            "tensor {name} holds {} values, its shape {shape:?} needs {elements}",
            data.len() / width
        ),
    })
}

/// A CPU tensor of `kind` (bfloat16 or float16) and `shape` holding the little-endian values
/// `data` of that same type, copied as they are, and whether every value is finite (its
/// exponent bits not all set).
fn copy_half(
    name: &str,
    kind: Kind,
    data: &[u8],
    shape: &[i64],
    path: &Path,
) -> Result<(Tensor, bool)> {
    check_length(name, data, 2, shape, path)?;
    let exponent: u16 = if kind == Kind::BFloat16 {
        0x7f80
    } else {
        0x7c00
    };
    let finite = data
        .chunks_exact(2)
        .all(|c| u16::from_le_bytes([c[0], c[1]]) & exponent != exponent);
    // libtorch copies the bytes as they are (little-endian on the CPUs it runs on).
    let tensor = crate::error::guard(|| Ok(Tensor::f_from_data_size(data, shape, kind)?))?;
    Ok((tensor, finite))
}

/// `tensor` (finite values) in `dtype`: float32 and the type it is already in stay as they
/// are; float16 is refused, naming the tensor, where a value overflows its range.
fn in_dtype(tensor: Tensor, dtype: Dtype, name: &str, path: &Path) -> Result<Tensor> {
    if tensor.kind() == crate::precision::torch_kind(dtype) {
        return Ok(tensor);
    }
    let converted =
        crate::error::guard(|| Ok(tensor.to_kind(crate::precision::torch_kind(dtype))))?;
    drop(tensor);
    if dtype == Dtype::F16
        && !crate::error::guard(|| Ok(converted.isfinite().all().int64_value(&[]) == 1))?
    {
        return Err(ModelError::Weights {
            path: path.to_path_buf(),
            reason: format!(
                "tensor {name} holds values beyond float16's range (±65504): load it with \
                 --dtype bf16 or f32"
            ),
        });
    }
    Ok(converted)
}

/// A float32 CPU tensor of `shape` from the little-endian values `data` of type `dtype`,
/// converted straight into the tensor's memory (no intermediate copy), and whether every value
/// is finite.
fn convert(
    name: &str,
    dtype: safetensors::Dtype,
    data: &[u8],
    shape: &[i64],
    path: &Path,
) -> Result<(Tensor, bool)> {
    let width = match dtype {
        safetensors::Dtype::F32 => 4,
        safetensors::Dtype::F16 | safetensors::Dtype::BF16 => 2,
        safetensors::Dtype::F64 => 8,
        other => {
            return Err(ModelError::Weights {
                path: path.to_path_buf(),
                reason: format!("tensor {name} has dtype {other:?}, not a float weight"),
            })
        }
    };
    check_length(name, data, width, shape, path)?;
    let mut finite = true;
    let mut fill_with = |value: fn(&[u8]) -> f32| {
        kn_kernels::slices::new_float_tensor(shape, |out| {
            for (slot, c) in out.iter_mut().zip(data.chunks_exact(width)) {
                *slot = value(c);
                finite &= slot.is_finite();
            }
        })
    };
    let tensor = match dtype {
        safetensors::Dtype::F32 => fill_with(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        safetensors::Dtype::F16 => fill_with(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()),
        safetensors::Dtype::BF16 => fill_with(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()),
        _ => fill_with(|c| {
            f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
        }),
    };
    Ok((crate::error::guard(|| Ok(tensor?))?, finite))
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

    /// The weights' size in each dtype, and a load that would not fit refused with the sizes
    /// and the way out.
    #[test]
    fn weights_beyond_the_available_memory_are_refused_before_loading() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-llama");
        let (weights, _) = WeightMap::from_safetensors_dir(&dir, Device::Cpu, Dtype::F32).unwrap();
        let wide = weights.loaded_bytes(Dtype::F32);
        assert_eq!(wide % 4, 0);
        assert_eq!(weights.loaded_bytes(Dtype::Bf16) * 2, wide);
        let file_size = std::fs::metadata(dir.join(SAFETENSORS_FILE)).unwrap().len();
        assert!(
            wide < file_size && wide > file_size / 2,
            "{wide} of a {file_size}-byte file"
        );
        assert!(weights.check_fits_within(Dtype::F32, wide).is_ok());
        let error = weights.check_fits_within(Dtype::F32, wide - 1).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, ModelError::OutOfMemory(_)), "{error:?}");
        assert!(
            message.contains("in f32") && message.contains("--dtype bf16"),
            "{message}"
        );
        let message = weights
            .check_fits_within(Dtype::Bf16, 0)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("in bf16") && !message.contains("--dtype"),
            "{message}"
        );
    }

    #[test]
    fn garbage_safetensors_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        for bytes in [
            &b"\x05\x00\x00\x00\x00\x00\x00\x00{oops"[..],
            &[0xff; 8],
            b"",
        ] {
            let path = dir.path().join("x.safetensors");
            std::fs::write(&path, bytes).unwrap();
            let result = WeightMap::from_safetensors_file(&path, Device::Cpu);
            assert!(
                matches!(result, Err(ModelError::Weights { .. })),
                "{bytes:?}"
            );
        }
    }
}
