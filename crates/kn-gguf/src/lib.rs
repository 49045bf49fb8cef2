//! Reader for GGUF model files (the llama.cpp format, versions 2 and 3, little-endian): metadata,
//! tensor directory and dequantization to `f32`.
//!
//! ```no_run
//! use kn_gguf::GgufFile;
//! let file = GgufFile::open(std::path::Path::new("model.gguf"))?;
//! let layers = file.get_u64("llama.block_count")?;
//! let (weights, shape) = file.tensor_f32("blk.0.ffn_down.weight")?;
//! assert_eq!(weights.len(), shape.iter().product::<usize>());
//! # let _ = layers;
//! # Ok::<(), kn_gguf::GgufError>(())
//! ```
//!
//! The reader is written for untrusted input: every count, length, shape and offset is checked
//! against the file before it is used or allocated for, and every problem is a typed
//! [`GgufError`] that names the file. Nothing is allocated on the strength of a count alone:
//! parsed metadata takes at most ~32 bytes per byte of file (the worst case is a large array of
//! 1-byte values, each held as a [`MetadataValue`]), and a dequantized tensor at most 12 bytes per
//! byte of its data (Q2_K). Nested metadata arrays are limited to [`MAX_ARRAY_DEPTH`] levels.
//!
//! Dequantization ([`dequantize`]) supports F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K,
//! Q3_K, Q4_K, Q5_K, Q6_K and Q8_K with ggml's exact block layouts and arithmetic.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cursor;
mod dequant;
mod error;
mod file;
mod types;

pub use dequant::dequantize;
pub use error::GgufError;
pub use file::{GgufFile, DEFAULT_ALIGNMENT, MAX_ARRAY_DEPTH, MAX_DIMS};
pub use types::{GgmlType, MetadataValue, TensorInfo};
