//! The error type of the GGUF reader.
//!
//! Every variant carries the name of the file (or in-memory source) it came from in its `file`
//! field and says what is wrong in plain words, so that a message printed to a user is enough to
//! find the problem without a debugger. The field is called `file` rather than `source` because
//! `thiserror` treats a field named `source` as the underlying error.

use crate::types::GgmlType;

/// Everything that can go wrong while reading a GGUF file or decoding its tensors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GgufError {
    /// The file could not be read from disk.
    #[error("{file}: cannot read the file: {error}")]
    Io {
        /// The file that could not be read.
        file: String,
        /// The underlying I/O error.
        #[source]
        error: std::io::Error,
    },

    /// The data ended before a field that had to be there.
    #[error("{file}: truncated: needed {needed} bytes at offset {offset} for {what}, but only {available} remain")]
    Truncated {
        /// The file being read.
        file: String,
        /// What was being read when the data ran out.
        what: String,
        /// Byte offset where the field starts.
        offset: u64,
        /// Bytes the field needs.
        needed: u64,
        /// Bytes left in the file from `offset`.
        available: u64,
    },

    /// The first four bytes are not `GGUF`.
    #[error("{file}: not a GGUF file: the magic is {found:02x?}, expected \"GGUF\" (47 47 55 46)")]
    BadMagic {
        /// The file being read.
        file: String,
        /// The first four bytes that were found (fewer if the file is shorter).
        found: Vec<u8>,
    },

    /// The GGUF version is not 2 or 3 (or the file is big-endian).
    #[error("{file}: unsupported GGUF version {version} ({detail})")]
    UnsupportedVersion {
        /// The file being read.
        file: String,
        /// The version number as read little-endian.
        version: u32,
        /// Why it is not supported.
        detail: String,
    },

    /// A count or length in the file is larger than the rest of the file could possibly hold.
    #[error("{file}: {what} is {value}, but at offset {offset} only {available} bytes remain, which can hold at most {max}")]
    CountOutOfRange {
        /// The file being read.
        file: String,
        /// Which count or length (e.g. "tensor_count", "length of string for key 'x'").
        what: String,
        /// The value found in the file.
        value: u64,
        /// The largest value the remaining bytes could hold.
        max: u64,
        /// Byte offset at which the counted items start.
        offset: u64,
        /// Bytes left in the file from `offset`.
        available: u64,
    },

    /// A string in the file is not valid UTF-8.
    #[error("{file}: {what} at offset {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// The file being read.
        file: String,
        /// Which string.
        what: String,
        /// Byte offset of the string's bytes.
        offset: u64,
    },

    /// A metadata value has a type id that GGUF does not define.
    #[error("{file}: metadata key '{key}' has unknown value type {type_id} at offset {offset}")]
    UnknownValueType {
        /// The file being read.
        file: String,
        /// The key whose value could not be decoded.
        key: String,
        /// The type id found.
        type_id: u32,
        /// Byte offset of the type id.
        offset: u64,
    },

    /// Arrays are nested deeper than the reader allows.
    #[error("{file}: metadata key '{key}': arrays nested deeper than {limit} levels")]
    NestingTooDeep {
        /// The file being read.
        file: String,
        /// The key whose value is nested too deeply.
        key: String,
        /// The maximum nesting depth.
        limit: usize,
    },

    /// The same metadata key appears twice.
    #[error("{file}: metadata key '{key}' appears more than once")]
    DuplicateKey {
        /// The file being read.
        file: String,
        /// The repeated key.
        key: String,
    },

    /// `general.alignment` is not a power of two that fits in 32 bits, or has the wrong type.
    #[error("{file}: invalid general.alignment: {detail}")]
    InvalidAlignment {
        /// The file being read.
        file: String,
        /// What is wrong with it.
        detail: String,
    },

    /// Two tensors have the same name.
    #[error("{file}: tensor '{name}' appears more than once")]
    DuplicateTensor {
        /// The file being read.
        file: String,
        /// The repeated name.
        name: String,
    },

    /// A tensor has more dimensions than ggml supports.
    #[error("{file}: tensor '{tensor}' has {n_dims} dimensions; at most {max} are allowed")]
    TooManyDims {
        /// The file being read.
        file: String,
        /// The tensor.
        tensor: String,
        /// Its number of dimensions.
        n_dims: u32,
        /// The maximum (4, as in ggml).
        max: u32,
    },

    /// The product of a tensor's dimensions (or its size in bytes) does not fit in 63 bits.
    #[error(
        "{file}: tensor '{tensor}' has dims {dims:?} whose element count or byte size overflows"
    )]
    ShapeOverflow {
        /// The file being read.
        file: String,
        /// The tensor.
        tensor: String,
        /// Its dims in ggml order.
        dims: Vec<u64>,
    },

    /// A tensor's type id is not a ggml type this reader knows the block layout of.
    #[error("{file}: tensor '{tensor}' has unknown ggml type id {type_id}")]
    UnknownTensorType {
        /// The file being read.
        file: String,
        /// The tensor.
        tensor: String,
        /// The type id found.
        type_id: u32,
    },

    /// A quantized tensor's rows are not a whole number of blocks.
    #[error("{file}: tensor '{tensor}' of type {dtype} has {ne0} elements per row, not a multiple of the block size {block_size}")]
    BadRowSize {
        /// The file being read.
        file: String,
        /// The tensor.
        tensor: String,
        /// Its type.
        dtype: GgmlType,
        /// Its first (fastest) dimension.
        ne0: u64,
        /// The type's block size.
        block_size: u64,
    },

    /// A tensor's offset is not a multiple of the file's alignment.
    #[error("{file}: tensor '{tensor}' has offset {offset}, not a multiple of the alignment {alignment}")]
    MisalignedTensor {
        /// The file being read.
        file: String,
        /// The tensor.
        tensor: String,
        /// Its offset relative to the data section.
        offset: u64,
        /// The file's alignment.
        alignment: u64,
    },

    /// A tensor's data reaches past the end of the file.
    #[error("{file}: tensor '{tensor}' needs bytes {offset}..{end} of the data section, but the data section has only {data_len} bytes")]
    TensorOutOfBounds {
        /// The file being read.
        file: String,
        /// The tensor.
        tensor: String,
        /// Its offset relative to the data section.
        offset: u64,
        /// One past its last byte, relative to the data section.
        end: u64,
        /// The length of the data section.
        data_len: u64,
    },

    /// Two tensors' data overlap.
    #[error("{file}: tensors '{first}' (bytes {first_start}..{first_end}) and '{second}' (from byte {second_start}) overlap")]
    OverlappingTensors {
        /// The file being read.
        file: String,
        /// The tensor with the lower offset.
        first: String,
        /// Its start offset.
        first_start: u64,
        /// One past its end.
        first_end: u64,
        /// The tensor that starts inside the first one.
        second: String,
        /// Its start offset.
        second_start: u64,
    },

    /// A metadata key that was asked for is not in the file.
    #[error("{file}: metadata key '{key}' is missing")]
    MissingKey {
        /// The file being read.
        file: String,
        /// The key.
        key: String,
    },

    /// A metadata value has a different type than the accessor expects.
    #[error("{file}: metadata key '{key}' should be {expected}, but is {found}")]
    WrongType {
        /// The file being read.
        file: String,
        /// The key.
        key: String,
        /// What the accessor expected.
        expected: String,
        /// What was found.
        found: String,
    },

    /// A tensor that was asked for is not in the file.
    #[error("{file}: no tensor named '{name}'")]
    TensorNotFound {
        /// The file being read.
        file: String,
        /// The name asked for.
        name: String,
    },

    /// The tensor's type has no dequantization to f32 in this crate.
    #[error("{file}: tensor '{tensor}' has type {dtype}, which this reader cannot dequantize")]
    UnsupportedType {
        /// The file being read.
        file: String,
        /// The tensor.
        tensor: String,
        /// Its type.
        dtype: GgmlType,
    },

    /// The bytes handed to dequantization do not match the element count.
    #[error("{file}: tensor '{tensor}' of type {dtype}: {detail}")]
    DataLength {
        /// The file the data came from (or `"<buffer>"` for [`crate::dequantize`]).
        file: String,
        /// The tensor (or `"<unnamed>"`).
        tensor: String,
        /// The type being decoded.
        dtype: GgmlType,
        /// What does not match.
        detail: String,
    },
}
