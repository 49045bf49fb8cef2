//! The data types of a GGUF file: metadata values, tensor directory entries and ggml tensor types
//! with their block layouts (elements per block and bytes per block, as in ggml's type traits).

use std::fmt;

/// A metadata value as stored in a GGUF file. Arrays may hold any value type, including arrays.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataValue {
    /// GGUF type 0.
    U8(u8),
    /// GGUF type 1.
    I8(i8),
    /// GGUF type 2.
    U16(u16),
    /// GGUF type 3.
    I16(i16),
    /// GGUF type 4.
    U32(u32),
    /// GGUF type 5.
    I32(i32),
    /// GGUF type 10.
    U64(u64),
    /// GGUF type 11.
    I64(i64),
    /// GGUF type 6.
    F32(f32),
    /// GGUF type 12.
    F64(f64),
    /// GGUF type 7 (one byte, 0 or 1; any non-zero byte reads as `true`).
    Bool(bool),
    /// GGUF type 8 (u64 length, then UTF-8 bytes).
    String(String),
    /// GGUF type 9 (u32 element type, u64 count, then the elements).
    Array(Vec<MetadataValue>),
}

impl MetadataValue {
    /// The value as an unsigned integer if it is an integer of any width that is non-negative.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetadataValue::U8(v) => Some(u64::from(v)),
            MetadataValue::U16(v) => Some(u64::from(v)),
            MetadataValue::U32(v) => Some(u64::from(v)),
            MetadataValue::U64(v) => Some(v),
            MetadataValue::I8(v) => u64::try_from(v).ok(),
            MetadataValue::I16(v) => u64::try_from(v).ok(),
            MetadataValue::I32(v) => u64::try_from(v).ok(),
            MetadataValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a signed integer if it is an integer of any width that fits in `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            MetadataValue::U8(v) => Some(i64::from(v)),
            MetadataValue::U16(v) => Some(i64::from(v)),
            MetadataValue::U32(v) => Some(i64::from(v)),
            MetadataValue::U64(v) => i64::try_from(v).ok(),
            MetadataValue::I8(v) => Some(i64::from(v)),
            MetadataValue::I16(v) => Some(i64::from(v)),
            MetadataValue::I32(v) => Some(i64::from(v)),
            MetadataValue::I64(v) => Some(v),
            _ => None,
        }
    }

    /// The value as `f32` if it is a float (`F64` is rounded to the nearest `f32`).
    pub fn as_f32(&self) -> Option<f32> {
        match *self {
            MetadataValue::F32(v) => Some(v),
            MetadataValue::F64(v) => Some(v as f32),
            _ => None,
        }
    }

    /// The value as a string slice if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetadataValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The elements if the value is an array.
    pub fn as_array(&self) -> Option<&[MetadataValue]> {
        match self {
            MetadataValue::Array(a) => Some(a),
            _ => None,
        }
    }

    /// A short description of the value's type for error messages, e.g. `u32` or `array[string]`.
    pub fn type_name(&self) -> String {
        match self {
            MetadataValue::U8(_) => "u8".into(),
            MetadataValue::I8(_) => "i8".into(),
            MetadataValue::U16(_) => "u16".into(),
            MetadataValue::I16(_) => "i16".into(),
            MetadataValue::U32(_) => "u32".into(),
            MetadataValue::I32(_) => "i32".into(),
            MetadataValue::U64(_) => "u64".into(),
            MetadataValue::I64(_) => "i64".into(),
            MetadataValue::F32(_) => "f32".into(),
            MetadataValue::F64(_) => "f64".into(),
            MetadataValue::Bool(_) => "bool".into(),
            MetadataValue::String(_) => "string".into(),
            MetadataValue::Array(a) => match a.first() {
                Some(first) => format!("array[{}; {}]", first.type_name(), a.len()),
                None => "array[; 0]".into(),
            },
        }
    }
}

/// One entry of the tensor directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name, e.g. `blk.0.ffn_down.weight`.
    pub name: String,
    /// Dimensions in ggml order: `dims[0]` is the fastest-varying (the row length).
    pub dims: Vec<u64>,
    /// The storage type.
    pub dtype: GgmlType,
    /// Byte offset of the data, relative to the start of the file's data section.
    pub offset: u64,
}

impl TensorInfo {
    /// Number of elements (product of the dims; 1 for zero dims), or `None` on overflow. For
    /// entries read by [`crate::GgufFile`] this never overflows.
    pub fn n_elements(&self) -> Option<u64> {
        self.dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
    }

    /// Size of the data in bytes, or `None` if the type's layout is unknown, the rows are not a
    /// whole number of blocks, or the size overflows.
    pub fn byte_size(&self) -> Option<u64> {
        let (block, size) = self.dtype.block_layout()?;
        let ne0 = self.dims.first().copied().unwrap_or(1);
        if ne0 % block != 0 {
            return None;
        }
        let n = self.n_elements()?;
        (n / block).checked_mul(size)
    }

    /// The row-major shape: the dims reversed (`[rows, row_length]` for a matrix).
    pub fn shape(&self) -> Vec<usize> {
        self.dims
            .iter()
            .rev()
            .map(|&d| usize::try_from(d).unwrap_or(usize::MAX))
            .collect()
    }
}

/// A ggml tensor storage type. The named variants are the ones this crate can dequantize (plus
/// `Q8_K`); every other type id is kept as `Other(id)`.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    /// 32-bit float (id 0).
    F32,
    /// IEEE half float (id 1).
    F16,
    /// bfloat16 (id 30).
    BF16,
    /// 32-element blocks: f16 scale, 4-bit values offset by 8 (id 2).
    Q4_0,
    /// 32-element blocks: f16 scale and min, 4-bit values (id 3).
    Q4_1,
    /// 32-element blocks: f16 scale, 5-bit values offset by 16 (id 6).
    Q5_0,
    /// 32-element blocks: f16 scale and min, 5-bit values (id 7).
    Q5_1,
    /// 32-element blocks: f16 scale, 8-bit signed values (id 8).
    Q8_0,
    /// 256-element super-blocks of 2-bit values (id 10).
    Q2_K,
    /// 256-element super-blocks of 3-bit values (id 11).
    Q3_K,
    /// 256-element super-blocks of 4-bit values with 6-bit scales and mins (id 12).
    Q4_K,
    /// 256-element super-blocks of 5-bit values with 6-bit scales and mins (id 13).
    Q5_K,
    /// 256-element super-blocks of 6-bit values with 8-bit scales (id 14).
    Q6_K,
    /// 256-element super-blocks: f32 scale, 8-bit values, block sums (id 15).
    Q8_K,
    /// Any other type id (known ones such as `Q8_1` or `IQ4_XS` still have a block layout).
    Other(u32),
}

/// (id, name, elements per block, bytes per block) for every ggml type id in use, from gguf-py's
/// `GGML_QUANT_SIZES`. Ids 4, 5, 31-33 and 36-38 were removed from ggml and are unknown here.
const TYPE_TABLE: &[(u32, &str, u64, u64)] = &[
    (0, "F32", 1, 4),
    (1, "F16", 1, 2),
    (2, "Q4_0", 32, 18),
    (3, "Q4_1", 32, 20),
    (6, "Q5_0", 32, 22),
    (7, "Q5_1", 32, 24),
    (8, "Q8_0", 32, 34),
    (9, "Q8_1", 32, 40),
    (10, "Q2_K", 256, 84),
    (11, "Q3_K", 256, 110),
    (12, "Q4_K", 256, 144),
    (13, "Q5_K", 256, 176),
    (14, "Q6_K", 256, 210),
    (15, "Q8_K", 256, 292),
    (16, "IQ2_XXS", 256, 66),
    (17, "IQ2_XS", 256, 74),
    (18, "IQ3_XXS", 256, 98),
    (19, "IQ1_S", 256, 50),
    (20, "IQ4_NL", 32, 18),
    (21, "IQ3_S", 256, 110),
    (22, "IQ2_S", 256, 82),
    (23, "IQ4_XS", 256, 136),
    (24, "I8", 1, 1),
    (25, "I16", 1, 2),
    (26, "I32", 1, 4),
    (27, "I64", 1, 8),
    (28, "F64", 1, 8),
    (29, "IQ1_M", 256, 56),
    (30, "BF16", 1, 2),
    (34, "TQ1_0", 256, 54),
    (35, "TQ2_0", 256, 66),
    (39, "MXFP4", 32, 17),
    (40, "NVFP4", 64, 36),
    (41, "Q1_0", 128, 18),
];

impl GgmlType {
    /// The type for a ggml type id as stored in the tensor directory.
    pub fn from_id(id: u32) -> GgmlType {
        match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            30 => GgmlType::BF16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            6 => GgmlType::Q5_0,
            7 => GgmlType::Q5_1,
            8 => GgmlType::Q8_0,
            10 => GgmlType::Q2_K,
            11 => GgmlType::Q3_K,
            12 => GgmlType::Q4_K,
            13 => GgmlType::Q5_K,
            14 => GgmlType::Q6_K,
            15 => GgmlType::Q8_K,
            other => GgmlType::Other(other),
        }
    }

    /// The ggml type id.
    pub fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::BF16 => 30,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q5_0 => 6,
            GgmlType::Q5_1 => 7,
            GgmlType::Q8_0 => 8,
            GgmlType::Q2_K => 10,
            GgmlType::Q3_K => 11,
            GgmlType::Q4_K => 12,
            GgmlType::Q5_K => 13,
            GgmlType::Q6_K => 14,
            GgmlType::Q8_K => 15,
            GgmlType::Other(id) => id,
        }
    }

    fn table_entry(self) -> Option<&'static (u32, &'static str, u64, u64)> {
        let id = self.id();
        TYPE_TABLE.iter().find(|e| e.0 == id)
    }

    /// ggml's name for the type (e.g. `Q4_K`), or `None` for an unknown id.
    pub fn name(self) -> Option<&'static str> {
        self.table_entry().map(|e| e.1)
    }

    /// `(elements per block, bytes per block)`, or `None` for an unknown id.
    pub fn block_layout(self) -> Option<(u64, u64)> {
        self.table_entry().map(|e| (e.2, e.3))
    }

    /// Whether [`crate::dequantize`] can decode this type.
    pub fn can_dequantize(self) -> bool {
        !matches!(GgmlType::from_id(self.id()), GgmlType::Other(_))
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "unknown ggml type {}", self.id()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for id in 0..64 {
            assert_eq!(GgmlType::from_id(id).id(), id);
        }
    }

    #[test]
    fn layouts_of_named_types() {
        assert_eq!(GgmlType::Q4_K.block_layout(), Some((256, 144)));
        assert_eq!(GgmlType::Q6_K.block_layout(), Some((256, 210)));
        assert_eq!(GgmlType::Q8_0.block_layout(), Some((32, 34)));
        assert_eq!(GgmlType::BF16.block_layout(), Some((1, 2)));
        assert_eq!(GgmlType::Other(4).block_layout(), None);
        assert_eq!(GgmlType::Other(23).to_string(), "IQ4_XS");
        assert_eq!(GgmlType::Other(4).to_string(), "unknown ggml type 4");
        assert!(GgmlType::Q3_K.can_dequantize());
        assert!(!GgmlType::Other(9).can_dequantize());
    }

    #[test]
    fn metadata_conversions() {
        assert_eq!(MetadataValue::I32(-1).as_u64(), None);
        assert_eq!(MetadataValue::I32(7).as_u64(), Some(7));
        assert_eq!(MetadataValue::U64(u64::MAX).as_i64(), None);
        assert_eq!(MetadataValue::F64(0.5).as_f32(), Some(0.5));
        assert_eq!(MetadataValue::U8(1).as_f32(), None);
        assert_eq!(
            MetadataValue::Array(vec![MetadataValue::String("a".into())]).type_name(),
            "array[string; 1]"
        );
    }

    #[test]
    fn tensor_info_sizes() {
        let t = TensorInfo {
            name: "w".into(),
            dims: vec![64, 3],
            dtype: GgmlType::Q4_0,
            offset: 0,
        };
        assert_eq!(t.n_elements(), Some(192));
        assert_eq!(t.byte_size(), Some(6 * 18));
        assert_eq!(t.shape(), vec![3, 64]);
        let bad = TensorInfo {
            dims: vec![33, 1],
            ..t.clone()
        };
        assert_eq!(bad.byte_size(), None);
        let huge = TensorInfo {
            dims: vec![u64::MAX, 2],
            ..t
        };
        assert_eq!(huge.n_elements(), None);
    }
}
