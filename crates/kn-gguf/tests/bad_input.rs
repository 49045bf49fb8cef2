//! Malformed GGUF input: one test per kind of damage, each checking that parsing returns the right
//! typed [`GgufError`] (never a panic, hang or huge allocation) and that the message names the
//! file. The buffers are built with the tiny writer below.

use kn_gguf::{GgmlType, GgufError, GgufFile};

const FILE: &str = "bad-input-test.gguf";

/// A minimal GGUF writer for building test buffers byte by byte.
#[derive(Clone)]
struct W {
    buf: Vec<u8>,
}

impl W {
    /// Magic, version and the two counts.
    fn header(version: u32, tensor_count: u64, kv_count: u64) -> W {
        let mut w = W {
            buf: b"GGUF".to_vec(),
        };
        w.u32(version).u64(tensor_count).u64(kv_count);
        w
    }
    fn u32(&mut self, v: u32) -> &mut W {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut W {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn raw(&mut self, b: &[u8]) -> &mut W {
        self.buf.extend_from_slice(b);
        self
    }
    /// A GGUF string: u64 length and the bytes.
    fn str(&mut self, s: &str) -> &mut W {
        self.u64(s.len() as u64).raw(s.as_bytes())
    }
    /// A metadata entry with a u32 value.
    fn kv_u32(&mut self, key: &str, v: u32) -> &mut W {
        self.str(key).u32(4).u32(v)
    }
    /// A metadata entry with a string value.
    fn kv_str(&mut self, key: &str, v: &str) -> &mut W {
        self.str(key).u32(8).str(v)
    }
    /// A tensor directory entry.
    fn tensor(&mut self, name: &str, dims: &[u64], dtype: u32, offset: u64) -> &mut W {
        self.str(name).u32(dims.len() as u32);
        for &d in dims {
            self.u64(d);
        }
        self.u32(dtype).u64(offset)
    }
    /// Zero bytes up to the next multiple of `align`.
    fn pad(&mut self, align: usize) -> &mut W {
        while self.buf.len() % align != 0 {
            self.buf.push(0);
        }
        self
    }
    fn f32s(&mut self, vals: &[f32]) -> &mut W {
        for v in vals {
            self.raw(&v.to_le_bytes());
        }
        self
    }
    fn bytes(&self) -> Vec<u8> {
        self.buf.clone()
    }
}

/// A valid file: two metadata entries, an F32 [4] tensor and a Q8_0 [32, 2] tensor.
fn valid(version: u32) -> W {
    let mut w = W::header(version, 2, 2);
    w.kv_str("general.architecture", "llama")
        .kv_u32("llama.block_count", 30);
    w.tensor("norm", &[4], 0, 0).tensor("q8", &[32, 2], 8, 32);
    w.pad(32);
    w.f32s(&[1.0, 2.0, 3.0, 4.0]).pad(32);
    for block in 0..2u8 {
        w.raw(&half_bits(0.5)).raw(&[block; 32]);
    }
    w
}

fn half_bits(v: f32) -> [u8; 2] {
    half::f16::from_f32(v).to_bits().to_le_bytes()
}

fn parse(bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
    GgufFile::from_bytes(bytes, FILE)
}

/// Parses `w`, expects an error, checks that the message names the file and returns the error.
fn parse_err(w: &W) -> GgufError {
    match parse(w.bytes()) {
        Ok(f) => panic!("expected an error, parsed {f:?}"),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(FILE), "message does not name the file: {msg}");
            e
        }
    }
}

#[test]
fn valid_v3_and_v2_files_parse() {
    for version in [2, 3] {
        let f = parse(valid(version).bytes()).expect("valid file");
        assert_eq!(f.version(), version);
        assert_eq!(f.get_str("general.architecture").ok(), Some("llama"));
        assert_eq!(f.get_u64("llama.block_count").ok(), Some(30));
        assert_eq!(f.tensors().len(), 2);
        let (v, shape) = f.tensor_f32("norm").expect("norm");
        assert_eq!((v, shape), (vec![1.0, 2.0, 3.0, 4.0], vec![4]));
        let (v, shape) = f.tensor_f32("q8").expect("q8");
        assert_eq!(shape, vec![2, 32]);
        assert_eq!(v[0], 0.0);
        assert_eq!(v[32], 0.5);
        assert_eq!(f.tensor_info("q8").map(|t| t.dtype), Some(GgmlType::Q8_0));
    }
}

#[test]
fn empty_file() {
    let e = parse_err(&W { buf: vec![] });
    assert!(matches!(e, GgufError::BadMagic { .. }), "{e}");
}

#[test]
fn bad_magic() {
    let mut w = valid(3);
    w.buf[..4].copy_from_slice(b"GGML");
    let e = parse_err(&w);
    assert!(
        matches!(e, GgufError::BadMagic { ref found, .. } if found == b"GGML"),
        "{e}"
    );
}

#[test]
fn truncated_magic_and_header() {
    let e = parse_err(&W {
        buf: b"GG".to_vec(),
    });
    assert!(matches!(e, GgufError::Truncated { .. }), "{e}");
    let e = parse_err(&W {
        buf: b"GGUF\x03\x00".to_vec(),
    });
    assert!(matches!(e, GgufError::Truncated { .. }), "{e}");
}

#[test]
fn every_truncation_is_an_error() {
    let full = valid(3).bytes();
    for len in 0..full.len() {
        let r = parse(full[..len].to_vec());
        assert!(r.is_err(), "prefix of {len} bytes parsed");
    }
}

#[test]
fn unsupported_versions() {
    for version in [0u32, 1, 4, 0xFFFF_FFFF] {
        let e = parse_err(&valid(version));
        assert!(
            matches!(e, GgufError::UnsupportedVersion { version: v, .. } if v == version),
            "{e}"
        );
    }
    // A big-endian v3 file reads as version 0x03000000 little-endian.
    let e = parse_err(&valid(3u32.swap_bytes()));
    assert!(e.to_string().contains("big-endian"), "{e}");
}

#[test]
fn kv_count_out_of_range() {
    let e = parse_err(&W::header(3, 0, u64::MAX));
    assert!(
        matches!(
            e,
            GgufError::CountOutOfRange {
                value: u64::MAX,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn tensor_count_out_of_range() {
    let mut w = W::header(3, 1 << 40, 1);
    w.kv_u32("a", 1);
    let e = parse_err(&w);
    assert!(
        matches!(e, GgufError::CountOutOfRange { value, .. } if value == 1 << 40),
        "{e}"
    );
}

#[test]
fn huge_key_length() {
    let mut w = W::header(3, 0, 1);
    w.u64(u64::MAX - 3).raw(b"key").u32(4).u32(1);
    let e = parse_err(&w);
    assert!(matches!(e, GgufError::CountOutOfRange { .. }), "{e}");
}

#[test]
fn huge_string_value_length() {
    let mut w = W::header(3, 0, 1);
    w.str("k").u32(8).u64(1 << 50).raw(b"short");
    let e = parse_err(&w);
    assert!(
        matches!(e, GgufError::CountOutOfRange { value, .. } if value == 1 << 50),
        "{e}"
    );
}

#[test]
fn huge_array_length() {
    // 2^40 u32 elements would need 4 TiB; the file has 8 bytes left.
    let mut w = W::header(3, 0, 1);
    w.str("k").u32(9).u32(4).u64(1 << 40).u64(0);
    let e = parse_err(&w);
    assert!(
        matches!(e, GgufError::CountOutOfRange { max: 2, .. }),
        "{e}"
    );
}

#[test]
fn huge_string_array_length() {
    let mut w = W::header(3, 0, 1);
    w.str("tokenizer.ggml.tokens")
        .u32(9)
        .u32(8)
        .u64(u64::MAX / 2)
        .str("a");
    let e = parse_err(&w);
    assert!(matches!(e, GgufError::CountOutOfRange { .. }), "{e}");
    assert!(e.to_string().contains("tokenizer.ggml.tokens"), "{e}");
}

#[test]
fn array_elements_truncated() {
    // Two strings fit the count check (16 bytes remain for 2 x 8-byte lengths), but the second
    // string's bytes run past the end of the file.
    let mut w = W::header(3, 0, 1);
    w.str("k").u32(9).u32(8).u64(2).str("a").u64(5).raw(b"ab");
    let e = parse_err(&w);
    assert!(
        matches!(
            e,
            GgufError::CountOutOfRange {
                value: 5,
                max: 2,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn unknown_value_type() {
    let mut w = W::header(3, 0, 1);
    w.str("k").u32(13).u64(0);
    let e = parse_err(&w);
    assert!(
        matches!(e, GgufError::UnknownValueType { type_id: 13, .. }),
        "{e}"
    );
}

#[test]
fn unknown_array_element_type() {
    let mut w = W::header(3, 0, 1);
    w.str("k").u32(9).u32(99).u64(0);
    let e = parse_err(&w);
    assert!(
        matches!(e, GgufError::UnknownValueType { type_id: 99, .. }),
        "{e}"
    );
}

#[test]
fn arrays_nested_too_deep() {
    // 200,000 nested single-element arrays: must fail cleanly, not overflow the stack.
    let depth = 200_000;
    let mut w = W::header(3, 0, 1);
    w.str("deep").u32(9);
    for _ in 0..depth {
        w.u32(9).u64(1);
    }
    w.u32(4).u64(1).u32(7);
    let e = parse_err(&w);
    assert!(matches!(e, GgufError::NestingTooDeep { .. }), "{e}");
}

#[test]
fn nested_arrays_within_limit_parse() {
    let mut w = W::header(3, 0, 1);
    w.str("nested").u32(9).u32(9).u64(2);
    w.u32(5).u64(2).u32(1).u32(2); // [1, 2] as i32
    w.u32(5).u64(1).u32((-3i32) as u32); // [-3]
    let f = parse(w.bytes()).expect("nested arrays");
    let v = f.get("nested").expect("key");
    assert_eq!(v.type_name(), "array[array[i32; 2]; 2]");
    assert!(f.get_i64_array("nested").is_err());
}

#[test]
fn invalid_utf8_key() {
    let mut w = W::header(3, 0, 1);
    w.u64(2).raw(&[0xC3, 0x28]).u32(4).u32(1);
    let e = parse_err(&w);
    assert!(
        matches!(e, GgufError::InvalidUtf8 { offset: 32, .. }),
        "{e}"
    );
}

#[test]
fn duplicate_key() {
    let mut w = W::header(3, 0, 2);
    w.kv_u32("a", 1).kv_u32("a", 2);
    let e = parse_err(&w);
    assert!(
        matches!(e, GgufError::DuplicateKey { ref key, .. } if key == "a"),
        "{e}"
    );
}

#[test]
fn invalid_alignment() {
    for bad in [0u32, 3, 48] {
        let mut w = W::header(3, 0, 1);
        w.kv_u32("general.alignment", bad);
        let e = parse_err(&w);
        assert!(
            matches!(e, GgufError::InvalidAlignment { .. }),
            "{bad}: {e}"
        );
    }
    let mut w = W::header(3, 0, 1);
    w.kv_str("general.alignment", "32");
    let e = parse_err(&w);
    assert!(matches!(e, GgufError::InvalidAlignment { .. }), "{e}");
}

#[test]
fn custom_alignment_is_used() {
    let mut w = W::header(3, 1, 1);
    w.kv_u32("general.alignment", 128)
        .tensor("t", &[2], 0, 0)
        .pad(128)
        .f32s(&[5.0, 6.0]);
    let f = parse(w.bytes()).expect("aligned file");
    assert_eq!(f.alignment(), 128);
    assert_eq!(f.data_offset() % 128, 0);
    assert_eq!(f.tensor_f32("t").expect("t").0, vec![5.0, 6.0]);
}

#[test]
fn too_many_dims() {
    let mut w = W::header(3, 1, 0);
    w.tensor("t", &[1, 1, 1, 1, 1], 0, 0).pad(32).f32s(&[0.0]);
    let e = parse_err(&w);
    assert!(matches!(e, GgufError::TooManyDims { n_dims: 5, .. }), "{e}");
    // A huge n_dims must fail on the count, not try to read or allocate 4 billion dims.
    let mut w = W::header(3, 1, 0);
    w.str("t").u32(u32::MAX).raw(&[0; 64]);
    let e = parse_err(&w);
    assert!(matches!(e, GgufError::TooManyDims { .. }), "{e}");
}

#[test]
fn dims_product_overflows() {
    let mut w = W::header(3, 1, 0);
    w.tensor("t", &[1 << 32, 1 << 32], 0, 0).pad(32);
    let e = parse_err(&w);
    assert!(matches!(e, GgufError::ShapeOverflow { .. }), "{e}");
    // Fits in u64 elements but not in bytes (or in i64, as ggml requires).
    let mut w = W::header(3, 1, 0);
    w.tensor("t", &[1 << 62, 2], 0, 0).pad(32);
    let e = parse_err(&w);
    assert!(matches!(e, GgufError::ShapeOverflow { .. }), "{e}");
    // An empty tensor whose other dims multiply past i64 (found by the fuzzer: the row-major
    // shape's product overflowed in the caller).
    let mut w = W::header(3, 1, 0);
    w.tensor("t", &[0, 1 << 32, 1 << 32], 0, 0).pad(32);
    let e = parse_err(&w);
    assert!(matches!(e, GgufError::ShapeOverflow { .. }), "{e}");
}

#[test]
fn empty_tensor_is_fine() {
    let mut w = W::header(3, 2, 0);
    w.tensor("empty", &[0, 7], 2, 0)
        .tensor("t", &[1], 0, 0)
        .pad(32)
        .f32s(&[2.0]);
    let f = parse(w.bytes()).expect("empty tensor");
    assert_eq!(f.tensor_f32("empty").expect("empty").1, vec![7, 0]);
    assert_eq!(f.tensor_f32("t").expect("t").0, vec![2.0]);
}

#[test]
fn unknown_tensor_type() {
    for id in [4u32, 31, 1000] {
        let mut w = W::header(3, 1, 0);
        w.tensor("t", &[32], id, 0).pad(32).raw(&[0; 64]);
        let e = parse_err(&w);
        assert!(
            matches!(e, GgufError::UnknownTensorType { type_id, .. } if type_id == id),
            "{e}"
        );
    }
}

#[test]
fn row_not_a_whole_number_of_blocks() {
    let mut w = W::header(3, 1, 0);
    w.tensor("t", &[33, 2], 2, 0).pad(32).raw(&[0; 64]);
    let e = parse_err(&w);
    assert!(
        matches!(
            e,
            GgufError::BadRowSize {
                ne0: 33,
                block_size: 32,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn tensor_data_beyond_end_of_file() {
    let mut w = W::header(3, 1, 0);
    w.tensor("t", &[16], 0, 0).pad(32).f32s(&[0.0; 15]);
    let e = parse_err(&w);
    assert!(
        matches!(
            e,
            GgufError::TensorOutOfBounds {
                end: 64,
                data_len: 60,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn tensor_offset_beyond_end_of_file() {
    let mut w = W::header(3, 1, 0);
    w.tensor("t", &[1], 0, 1 << 40).pad(32).f32s(&[0.0]);
    let e = parse_err(&w);
    assert!(matches!(e, GgufError::TensorOutOfBounds { .. }), "{e}");
    // offset + size overflows u64.
    let mut w = W::header(3, 1, 0);
    w.tensor("t", &[64], 0, u64::MAX - 31).pad(32).f32s(&[0.0]);
    let e = parse_err(&w);
    assert!(matches!(e, GgufError::TensorOutOfBounds { .. }), "{e}");
}

#[test]
fn missing_data_section() {
    // Tensor directory present, file ends before the padding.
    let mut w = W::header(3, 1, 0);
    w.tensor("t", &[1], 0, 0);
    let e = parse_err(&w);
    assert!(
        matches!(e, GgufError::TensorOutOfBounds { data_len: 0, .. }),
        "{e}"
    );
}

#[test]
fn no_tensors_and_no_padding_is_fine() {
    let mut w = W::header(3, 0, 1);
    w.kv_u32("a", 1);
    let f = parse(w.bytes()).expect("metadata-only file");
    assert!(f.tensors().is_empty());
}

#[test]
fn misaligned_offset() {
    let mut w = W::header(3, 1, 0);
    w.tensor("t", &[1], 0, 4).pad(32).f32s(&[0.0; 8]);
    let e = parse_err(&w);
    assert!(
        matches!(
            e,
            GgufError::MisalignedTensor {
                offset: 4,
                alignment: 32,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn overlapping_tensors() {
    let mut w = W::header(3, 3, 0);
    w.tensor("a", &[16], 0, 0)
        .tensor("empty", &[0], 0, 32)
        .tensor("b", &[8], 0, 32);
    w.pad(32).f32s(&[0.0; 24]);
    let e = parse_err(&w);
    assert!(
        matches!(e, GgufError::OverlappingTensors { ref first, ref second, .. } if first == "a" && second == "b"),
        "{e}"
    );
}

#[test]
fn duplicate_tensor_name() {
    let mut w = W::header(3, 2, 0);
    w.tensor("t", &[8], 0, 0)
        .tensor("t", &[8], 0, 32)
        .pad(32)
        .f32s(&[0.0; 16]);
    let e = parse_err(&w);
    assert!(
        matches!(e, GgufError::DuplicateTensor { ref name, .. } if name == "t"),
        "{e}"
    );
}

#[test]
fn undecodable_type_is_a_typed_error_on_access() {
    // IQ4_NL (20) has a known layout (32 elements in 18 bytes) but no decoder here.
    let mut w = W::header(3, 1, 0);
    w.tensor("iq", &[32], 20, 0).pad(32).raw(&[0; 18]);
    let f = parse(w.bytes()).expect("IQ4_NL tensor parses");
    let e = f.tensor_f32("iq").expect_err("no IQ4_NL decoder");
    assert!(
        matches!(
            e,
            GgufError::UnsupportedType {
                dtype: GgmlType::Other(20),
                ..
            }
        ),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("iq") && msg.contains("IQ4_NL") && msg.contains(FILE),
        "{msg}"
    );
    assert_eq!(f.tensor_data("iq").map(<[u8]>::len).ok(), Some(18));
}

#[test]
fn accessor_errors_name_key_and_file() {
    let mut w = W::header(3, 0, 4);
    w.kv_u32("u", 7).kv_str("s", "x");
    w.str("neg").u32(5).u32((-1i32) as u32);
    w.str("ints").u32(9).u32(10).u64(1).u64(u64::MAX);
    let f = parse(w.bytes()).expect("file");
    let cases: Vec<GgufError> = vec![
        f.get_u64("missing").expect_err("missing"),
        f.get_u64("s").expect_err("string as u64"),
        f.get_u64("neg").expect_err("negative as u64"),
        f.get_f32("u").expect_err("u32 as f32"),
        f.get_str("u").expect_err("u32 as str"),
        f.get_str_array("s").expect_err("string as array"),
        f.get_i64_array("ints").expect_err("u64::MAX as i64"),
        f.tensor_f32("nope").expect_err("no tensor"),
    ];
    for e in cases {
        let msg = e.to_string();
        assert!(msg.contains(FILE), "{msg}");
        assert!(
            ["missing", "'s'", "'neg'", "'u'", "'ints'", "nope"]
                .iter()
                .any(|k| msg.contains(k)),
            "{msg}"
        );
    }
    assert!(matches!(
        f.get_u64("missing"),
        Err(GgufError::MissingKey { .. })
    ));
    assert!(matches!(f.get_u64("s"), Err(GgufError::WrongType { .. })));
    assert!(matches!(
        f.tensor_f32("nope"),
        Err(GgufError::TensorNotFound { .. })
    ));
}

#[test]
fn open_missing_file_names_the_path() {
    let path = std::path::Path::new("/nonexistent/dir/model.gguf");
    let e = GgufFile::open(path).expect_err("no such file");
    assert!(matches!(e, GgufError::Io { .. }), "{e}");
    assert!(e.to_string().contains("/nonexistent/dir/model.gguf"), "{e}");
}
