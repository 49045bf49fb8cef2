//! [`GgufFile`]: parsing and validating a whole GGUF file, and typed access to its metadata and
//! tensors.
//!
//! Layout (all little-endian): `"GGUF"`, `u32 version`, `u64 tensor_count`, `u64 kv_count`, the
//! metadata entries (`string key`, `u32 type`, value), the tensor directory (`string name`,
//! `u32 n_dims`, `u64 dims[n_dims]`, `u32 type`, `u64 offset`), padding up to `general.alignment`
//! (default 32), then the data section that tensor offsets are relative to.
//!
//! Everything the rest of the crate relies on is checked once here: counts and lengths against
//! the bytes that remain, shapes for overflow, each tensor's type, alignment, bounds and overlap.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

use crate::cursor::Cursor;
use crate::dequant::dequantize_named;
use crate::error::GgufError;
use crate::types::{GgmlType, MetadataValue, TensorInfo};

/// The alignment of the data section when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// The most dimensions a tensor may have (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: u32 = 4;
/// How deeply metadata arrays may nest (an array directly inside the top-level array is depth 2).
pub const MAX_ARRAY_DEPTH: usize = 16;

/// Smallest encoded size of one metadata entry: empty key (8) + type (4) + 1-byte value.
const MIN_KV_SIZE: u64 = 13;
/// Smallest encoded size of one tensor directory entry: empty name (8) + n_dims (4) + type (4) +
/// offset (8).
const MIN_TENSOR_INFO_SIZE: u64 = 24;

/// A parsed GGUF file: version, metadata, tensor directory and the raw bytes of the data section.
///
/// The bytes are whatever the caller hands over: the file read into memory
/// ([`GgufFile::open`], [`GgufFile::from_bytes`]) or a memory map of it
/// ([`GgufFile::from_source`]); tensors are decoded on demand by [`GgufFile::tensor_f32`].
pub struct GgufFile {
    version: u32,
    metadata: BTreeMap<String, MetadataValue>,
    tensors: Vec<TensorInfo>,
    index: HashMap<String, usize>,
    bytes: Box<dyn AsRef<[u8]> + Send + Sync>,
    data_offset: usize,
    alignment: u64,
    source: String,
}

impl fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GgufFile")
            .field("source", &self.source)
            .field("version", &self.version)
            .field("metadata_keys", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .field("alignment", &self.alignment)
            .field("data_offset", &self.data_offset)
            .field("file_len", &self.file_bytes().len())
            .finish()
    }
}

impl GgufFile {
    /// Reads the whole file at `path` into memory and parses it. Errors name the path.
    pub fn open(path: &Path) -> Result<GgufFile, GgufError> {
        let source = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|error| GgufError::Io {
            file: source.clone(),
            error,
        })?;
        GgufFile::from_bytes(bytes, &source)
    }

    /// Parses a GGUF file held in memory. `source` names it in errors (e.g. the path it came from).
    pub fn from_bytes(bytes: Vec<u8>, source: &str) -> Result<GgufFile, GgufError> {
        GgufFile::from_source(bytes, source)
    }

    /// Parses a GGUF file from any holder of its bytes, such as a memory map of it (only the
    /// pages that are read become resident). `source` names it in errors.
    pub fn from_source(
        bytes: impl AsRef<[u8]> + Send + Sync + 'static,
        source: &str,
    ) -> Result<GgufFile, GgufError> {
        let header = parse(bytes.as_ref(), source)?;
        let index = header
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(GgufFile {
            version: header.version,
            metadata: header.metadata,
            tensors: header.tensors,
            index,
            bytes: Box::new(bytes),
            data_offset: header.data_offset,
            alignment: header.alignment,
            source: source.to_string(),
        })
    }

    /// The GGUF format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The name of the file (or in-memory source) used in errors.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The data-section alignment in bytes (`general.alignment`, default 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Byte offset of the data section from the start of the file.
    pub fn data_offset(&self) -> u64 {
        self.data_offset as u64
    }

    /// All metadata entries, sorted by key.
    pub fn metadata(&self) -> &BTreeMap<String, MetadataValue> {
        &self.metadata
    }

    /// The metadata value for `key`, if present.
    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.metadata.get(key)
    }

    fn require(&self, key: &str) -> Result<&MetadataValue, GgufError> {
        self.metadata.get(key).ok_or_else(|| GgufError::MissingKey {
            file: self.source.clone(),
            key: key.to_string(),
        })
    }

    fn wrong_type(&self, key: &str, expected: &str, found: String) -> GgufError {
        GgufError::WrongType {
            file: self.source.clone(),
            key: key.to_string(),
            expected: expected.to_string(),
            found,
        }
    }

    /// The value of `key` as `u64`: any integer type, if it is non-negative.
    pub fn get_u64(&self, key: &str) -> Result<u64, GgufError> {
        let v = self.require(key)?;
        v.as_u64()
            .ok_or_else(|| self.wrong_type(key, "a non-negative integer", describe(v)))
    }

    /// The value of `key` as `f32`: an `f32`, or an `f64` rounded to `f32`.
    pub fn get_f32(&self, key: &str) -> Result<f32, GgufError> {
        let v = self.require(key)?;
        v.as_f32()
            .ok_or_else(|| self.wrong_type(key, "a float", describe(v)))
    }

    /// The value of `key` as a string.
    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        let v = self.require(key)?;
        v.as_str()
            .ok_or_else(|| self.wrong_type(key, "a string", describe(v)))
    }

    /// The value of `key` as an array of strings (an empty array is accepted).
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>, GgufError> {
        let v = self.require(key)?;
        let items = v
            .as_array()
            .ok_or_else(|| self.wrong_type(key, "an array of strings", describe(v)))?;
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                item.as_str().ok_or_else(|| {
                    self.wrong_type(
                        key,
                        "an array of strings",
                        format!("an array whose element {i} is {}", describe(item)),
                    )
                })
            })
            .collect()
    }

    /// The value of `key` as an array of integers of any type, each converted to `i64` (a `u64`
    /// element above `i64::MAX` is an error).
    pub fn get_i64_array(&self, key: &str) -> Result<Vec<i64>, GgufError> {
        let v = self.require(key)?;
        let items = v
            .as_array()
            .ok_or_else(|| self.wrong_type(key, "an array of integers", describe(v)))?;
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                item.as_i64().ok_or_else(|| {
                    self.wrong_type(
                        key,
                        "an array of integers that fit in i64",
                        format!("an array whose element {i} is {}", describe(item)),
                    )
                })
            })
            .collect()
    }

    /// The tensor directory, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The directory entry of the tensor called `name`, if present.
    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.index.get(name).and_then(|&i| self.tensors.get(i))
    }

    fn find(&self, name: &str) -> Result<&TensorInfo, GgufError> {
        self.tensor_info(name)
            .ok_or_else(|| GgufError::TensorNotFound {
                file: self.source.clone(),
                name: name.to_string(),
            })
    }

    /// The raw (still quantized) bytes of the tensor called `name`.
    pub fn tensor_data(&self, name: &str) -> Result<&[u8], GgufError> {
        let info = self.find(name)?;
        self.data_of(info)
    }

    /// The whole file's bytes.
    pub fn file_bytes(&self) -> &[u8] {
        (*self.bytes).as_ref()
    }

    /// Where the raw bytes of the tensor called `name` lie in the file (offsets from its start).
    pub fn tensor_range(&self, name: &str) -> Result<std::ops::Range<usize>, GgufError> {
        let data = self.tensor_data(name)?;
        let start = data.as_ptr() as usize - self.file_bytes().as_ptr() as usize;
        Ok(start..start + data.len())
    }

    fn data_of(&self, info: &TensorInfo) -> Result<&[u8], GgufError> {
        let data_len = self.file_bytes().len().saturating_sub(self.data_offset) as u64;
        let out_of_bounds = |end: u64| GgufError::TensorOutOfBounds {
            file: self.source.clone(),
            tensor: info.name.clone(),
            offset: info.offset,
            end,
            data_len,
        };
        let size = info.byte_size().ok_or_else(|| GgufError::ShapeOverflow {
            file: self.source.clone(),
            tensor: info.name.clone(),
            dims: info.dims.clone(),
        })?;
        let end = info
            .offset
            .checked_add(size)
            .ok_or_else(|| out_of_bounds(u64::MAX))?;
        let range = usize::try_from(info.offset)
            .ok()
            .zip(usize::try_from(end).ok())
            .and_then(|(s, e)| {
                Some(self.data_offset.checked_add(s)?..self.data_offset.checked_add(e)?)
            });
        range
            .and_then(|r| self.file_bytes().get(r))
            .ok_or_else(|| out_of_bounds(end))
    }

    /// The tensor called `name` dequantized to `f32`, in row-major order, with its row-major shape
    /// (the ggml dims reversed, so a `[ne0, ne1]` matrix comes back as shape `[ne1, ne0]`).
    pub fn tensor_f32(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>), GgufError> {
        let info = self.find(name)?;
        let bytes = self.data_of(info)?;
        let overflow = || GgufError::ShapeOverflow {
            file: self.source.clone(),
            tensor: info.name.clone(),
            dims: info.dims.clone(),
        };
        let n = info.n_elements().ok_or_else(overflow)?;
        let n = usize::try_from(n).map_err(|_| overflow())?;
        let values = dequantize_named(info.dtype, bytes, n, &self.source, &info.name)?;
        Ok((values, info.shape()))
    }
}

/// A value's type and, for scalars, the value itself, for error messages.
fn describe(v: &MetadataValue) -> String {
    match v {
        MetadataValue::Array(_) => v.type_name(),
        MetadataValue::String(s) => {
            let shown: String = s.chars().take(40).collect();
            format!("string {shown:?}")
        }
        other => format!("{} {:?}", other.type_name(), other),
    }
}

/// What [`parse`] extracts from the header.
struct Header {
    version: u32,
    metadata: BTreeMap<String, MetadataValue>,
    tensors: Vec<TensorInfo>,
    data_offset: usize,
    alignment: u64,
}

fn parse(bytes: &[u8], file: &str) -> Result<Header, GgufError> {
    let mut c = Cursor::new(bytes, file);

    let magic = bytes.get(..4).unwrap_or(bytes);
    if magic != &b"GGUF"[..magic.len()] || magic.is_empty() {
        return Err(GgufError::BadMagic {
            file: file.to_string(),
            found: magic.to_vec(),
        });
    }
    c.take(4, &|| "the magic \"GGUF\"".into())?;

    let version = c.u32(&|| "the version".into())?;
    if version != 2 && version != 3 {
        let detail = if version == 1 {
            "version 1 uses 32-bit counts and is not supported; only versions 2 and 3 are"
                .to_string()
        } else if matches!(version.swap_bytes(), 1..=3) {
            "this looks like a big-endian GGUF file; only little-endian files are supported"
                .to_string()
        } else {
            "only versions 2 and 3 are supported".to_string()
        };
        return Err(GgufError::UnsupportedVersion {
            file: file.to_string(),
            version,
            detail,
        });
    }

    let tensor_count = c.u64(&|| "tensor_count".into())?;
    let kv_count = c.u64(&|| "metadata_kv_count".into())?;
    let kv_count = c.check_count(kv_count, MIN_KV_SIZE, &|| "metadata_kv_count".into())?;
    c.check_count(tensor_count, MIN_TENSOR_INFO_SIZE, &|| {
        "tensor_count".into()
    })?;

    let mut metadata = BTreeMap::new();
    for i in 0..kv_count {
        let key = c.string(&|| format!("key of metadata entry #{i}"))?;
        let type_offset = c.pos() as u64;
        let type_id = c.u32(&|| format!("value type of metadata key '{key}'"))?;
        let value = read_value(&mut c, type_id, type_offset, &key, 1)?;
        if metadata.contains_key(&key) {
            return Err(GgufError::DuplicateKey {
                file: file.to_string(),
                key,
            });
        }
        metadata.insert(key, value);
    }

    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(v) => match v.as_u64() {
            Some(a) if a.is_power_of_two() && a <= u64::from(u32::MAX) => a,
            Some(a) => {
                return Err(GgufError::InvalidAlignment {
                    file: file.to_string(),
                    detail: format!("{a} is not a power of two between 1 and 2^31"),
                })
            }
            None => {
                return Err(GgufError::InvalidAlignment {
                    file: file.to_string(),
                    detail: format!("expected an unsigned integer, found {}", describe(v)),
                })
            }
        },
    };

    let tensor_count = c.check_count(tensor_count, MIN_TENSOR_INFO_SIZE, &|| {
        "tensor_count (after the metadata)".into()
    })?;
    let mut tensors: Vec<TensorInfo> = Vec::with_capacity(tensor_count);
    let mut names = HashMap::with_capacity(tensor_count);
    let mut sizes = Vec::with_capacity(tensor_count);
    for i in 0..tensor_count {
        let (info, size) = read_tensor_info(&mut c, i, alignment)?;
        if names.insert(info.name.clone(), i).is_some() {
            return Err(GgufError::DuplicateTensor {
                file: file.to_string(),
                name: info.name,
            });
        }
        tensors.push(info);
        sizes.push(size);
    }

    // The data section starts at the next multiple of the alignment. A file without tensors may
    // end without the padding.
    let header_end = c.pos() as u64;
    let data_offset = header_end
        .checked_add(alignment - 1)
        .map(|x| x / alignment * alignment)
        .unwrap_or(u64::MAX)
        .min(bytes.len() as u64);
    let data_len = bytes.len() as u64 - data_offset;
    let data_offset = usize::try_from(data_offset).unwrap_or(bytes.len());

    let mut spans = Vec::with_capacity(tensors.len());
    for (info, &size) in tensors.iter().zip(&sizes) {
        let end = info.offset.checked_add(size);
        match end {
            // Empty tensors occupy no bytes and cannot overlap anything.
            Some(end) if end <= data_len => {
                if end > info.offset {
                    spans.push((info.offset, end, info.name.as_str()));
                }
            }
            _ => {
                return Err(GgufError::TensorOutOfBounds {
                    file: file.to_string(),
                    tensor: info.name.clone(),
                    offset: info.offset,
                    end: end.unwrap_or(u64::MAX),
                    data_len,
                })
            }
        }
    }
    spans.sort_unstable();
    for pair in spans.windows(2) {
        if let [(s1, e1, n1), (s2, _, n2)] = pair {
            if s2 < e1 {
                return Err(GgufError::OverlappingTensors {
                    file: file.to_string(),
                    first: n1.to_string(),
                    first_start: *s1,
                    first_end: *e1,
                    second: n2.to_string(),
                    second_start: *s2,
                });
            }
        }
    }

    Ok(Header {
        version,
        metadata,
        tensors,
        data_offset,
        alignment,
    })
}

/// Smallest encoded size of one value of GGUF type `type_id`, or `None` for an unknown type.
fn min_value_size(type_id: u32) -> Option<u64> {
    Some(match type_id {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 => 8,
        9 => 12,
        10..=12 => 8,
        _ => return None,
    })
}

/// Reads one metadata value of GGUF type `type_id` (whose id was at `type_offset`).
fn read_value(
    c: &mut Cursor<'_>,
    type_id: u32,
    type_offset: u64,
    key: &str,
    depth: usize,
) -> Result<MetadataValue, GgufError> {
    let what = || format!("value of metadata key '{key}'");
    Ok(match type_id {
        0 => MetadataValue::U8(c.u8(&what)?),
        1 => MetadataValue::I8(c.u8(&what)? as i8),
        2 => MetadataValue::U16(c.u16(&what)?),
        3 => MetadataValue::I16(c.u16(&what)? as i16),
        4 => MetadataValue::U32(c.u32(&what)?),
        5 => MetadataValue::I32(c.u32(&what)? as i32),
        6 => MetadataValue::F32(f32::from_bits(c.u32(&what)?)),
        7 => MetadataValue::Bool(c.u8(&what)? != 0),
        8 => MetadataValue::String(c.string(&what)?),
        9 => {
            if depth > MAX_ARRAY_DEPTH {
                return Err(GgufError::NestingTooDeep {
                    file: c.file().to_string(),
                    key: key.to_string(),
                    limit: MAX_ARRAY_DEPTH,
                });
            }
            let elem_offset = c.pos() as u64;
            let elem_type = c.u32(&|| format!("element type of array for metadata key '{key}'"))?;
            let count = c.u64(&|| format!("length of array for metadata key '{key}'"))?;
            let min_size =
                min_value_size(elem_type).ok_or_else(|| GgufError::UnknownValueType {
                    file: c.file().to_string(),
                    key: key.to_string(),
                    type_id: elem_type,
                    offset: elem_offset,
                })?;
            let count = c.check_count(count, min_size, &|| {
                format!("length of array for metadata key '{key}'")
            })?;
            let mut items = Vec::with_capacity(count);
            for _ in 0..count {
                items.push(read_value(c, elem_type, elem_offset, key, depth + 1)?);
            }
            MetadataValue::Array(items)
        }
        10 => MetadataValue::U64(c.u64(&what)?),
        11 => MetadataValue::I64(c.u64(&what)? as i64),
        12 => MetadataValue::F64(f64::from_bits(c.u64(&what)?)),
        other => {
            return Err(GgufError::UnknownValueType {
                file: c.file().to_string(),
                key: key.to_string(),
                type_id: other,
                offset: type_offset,
            })
        }
    })
}

/// Reads and validates one tensor directory entry; returns it with its size in bytes.
fn read_tensor_info(
    c: &mut Cursor<'_>,
    i: usize,
    alignment: u64,
) -> Result<(TensorInfo, u64), GgufError> {
    let file = c.file();
    let name = c.string(&|| format!("name of tensor #{i}"))?;
    let n_dims = c.u32(&|| format!("n_dims of tensor '{name}'"))?;
    if n_dims > MAX_DIMS {
        return Err(GgufError::TooManyDims {
            file: file.to_string(),
            tensor: name,
            n_dims,
            max: MAX_DIMS,
        });
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for d in 0..n_dims {
        dims.push(c.u64(&|| format!("dim {d} of tensor '{name}'"))?);
    }
    let type_id = c.u32(&|| format!("type of tensor '{name}'"))?;
    let offset = c.u64(&|| format!("offset of tensor '{name}'"))?;

    let dtype = GgmlType::from_id(type_id);
    let Some((block, type_size)) = dtype.block_layout() else {
        return Err(GgufError::UnknownTensorType {
            file: file.to_string(),
            tensor: name,
            type_id,
        });
    };
    // The product of the non-zero dims must fit in i64 (as ggml requires), even when another
    // dim is 0: then every partial product of the shape, in any order, fits as well, and callers
    // can multiply dims without overflow checks.
    let fits = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d.max(1)))
        .is_some_and(|n| n <= i64::MAX as u64);
    let n_elements = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|_| fits);
    let size = n_elements.and_then(|n| (n / block).checked_mul(type_size));
    let Some(size) = size.filter(|&s| s <= i64::MAX as u64) else {
        return Err(GgufError::ShapeOverflow {
            file: file.to_string(),
            tensor: name,
            dims,
        });
    };
    let ne0 = dims.first().copied().unwrap_or(1);
    if ne0 % block != 0 {
        return Err(GgufError::BadRowSize {
            file: file.to_string(),
            tensor: name,
            dtype,
            ne0,
            block_size: block,
        });
    }
    if offset % alignment != 0 {
        return Err(GgufError::MisalignedTensor {
            file: file.to_string(),
            tensor: name,
            offset,
            alignment,
        });
    }
    Ok((
        TensorInfo {
            name,
            dims,
            dtype,
            offset,
        },
        size,
    ))
}
