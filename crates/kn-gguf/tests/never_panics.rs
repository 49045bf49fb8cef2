//! Property test: parsing mutated or truncated valid GGUF files never panics. Whatever
//! `GgufFile::from_bytes` accepts must also be safe to query and to dequantize.
//!
//! The seeds are the gguf-py fixture (`fixtures/gguf/quant_types.gguf`, every value type and
//! every supported tensor type) and a small hand-built v2 file. The fuzz target's seeds
//! (`fuzz/seeds/gguf_parse`, including regression inputs the fuzzer found) are replayed too. Mutations favour the header (where
//! counts, lengths, types and offsets live) and write "interesting" integers there.

use std::path::PathBuf;
use std::sync::OnceLock;

use kn_gguf::GgufFile;
use proptest::prelude::*;

fn fixture() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let path =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/gguf/quant_types.gguf");
        std::fs::read(path).expect("fixtures/gguf/quant_types.gguf")
    })
}

/// A tiny v2 file: one string, one u32 array, an F32 [3] and a Q4_0 [32] tensor.
fn small() -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    let u32s = |b: &mut Vec<u8>, v: u32| b.extend_from_slice(&v.to_le_bytes());
    let u64s = |b: &mut Vec<u8>, v: u64| b.extend_from_slice(&v.to_le_bytes());
    let strs = |b: &mut Vec<u8>, s: &str| {
        b.extend_from_slice(&(s.len() as u64).to_le_bytes());
        b.extend_from_slice(s.as_bytes());
    };
    u32s(&mut b, 2);
    u64s(&mut b, 2);
    u64s(&mut b, 2);
    strs(&mut b, "general.name");
    u32s(&mut b, 8);
    strs(&mut b, "tiny");
    strs(&mut b, "ids");
    u32s(&mut b, 9);
    u32s(&mut b, 4);
    u64s(&mut b, 3);
    for v in [1, 2, 3] {
        u32s(&mut b, v);
    }
    strs(&mut b, "a");
    u32s(&mut b, 1);
    u64s(&mut b, 3);
    u32s(&mut b, 0);
    u64s(&mut b, 0);
    strs(&mut b, "b");
    u32s(&mut b, 1);
    u64s(&mut b, 32);
    u32s(&mut b, 2);
    u64s(&mut b, 32);
    b.resize(b.len().div_ceil(32) * 32, 0);
    for v in [1.0f32, -2.0, 3.5] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.resize(b.len().div_ceil(32) * 32, 0);
    b.extend_from_slice(&[0x00, 0x3c]); // f16 1.0
    b.extend((0..16u8).map(|i| i * 17));
    b
}

/// Parses `bytes` and, if that succeeds, exercises every accessor and decodes every tensor.
fn exercise(bytes: Vec<u8>) {
    if let Ok(f) = GgufFile::from_bytes(bytes, "mutated.gguf") {
        for key in f.metadata().keys() {
            let _ = f.get_u64(key);
            let _ = f.get_f32(key);
            let _ = f.get_str(key);
            let _ = f.get_str_array(key);
            let _ = f.get_i64_array(key);
        }
        for t in f.tensors() {
            if let Ok((values, shape)) = f.tensor_f32(&t.name) {
                // Every shape must be safe to multiply out, even for empty tensors.
                let product = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
                assert_eq!(Some(values.len()), product);
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    SetByte(usize, u8),
    WriteU32(usize, u32),
    WriteU64(usize, u64),
    Truncate(usize),
    Delete(usize, usize),
    Insert(usize, Vec<u8>),
}

fn interesting_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(2),
        Just(3),
        Just(4),
        Just(9),
        Just(31),
        Just(32),
        Just(33),
        Just(255),
        Just(1 << 31),
        Just(u32::MAX as u64),
        Just(1 << 32),
        Just(1 << 62),
        Just(i64::MAX as u64),
        Just(u64::MAX),
        Just(u64::MAX - 31),
        any::<u64>(),
        0u64..100_000,
    ]
}

/// A position, biased to the first 2 KiB (the header of both seeds).
fn position() -> impl Strategy<Value = usize> {
    prop_oneof![4 => 0usize..2048, 1 => 0usize..20_000]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (position(), any::<u8>()).prop_map(|(p, b)| Mutation::SetByte(p, b)),
        2 => (position(), interesting_u64()).prop_map(|(p, v)| Mutation::WriteU32(p, v as u32)),
        3 => (position(), interesting_u64()).prop_map(|(p, v)| Mutation::WriteU64(p, v)),
        1 => position().prop_map(Mutation::Truncate),
        1 => (position(), 1usize..64).prop_map(|(p, n)| Mutation::Delete(p, n)),
        1 => (position(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(p, b)| Mutation::Insert(p, b)),
    ]
}

fn apply(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len();
        if len == 0 {
            break;
        }
        match m {
            Mutation::SetByte(p, b) => bytes[p % len] = *b,
            Mutation::WriteU32(p, v) => {
                for (i, b) in v.to_le_bytes().iter().enumerate() {
                    if let Some(slot) = bytes.get_mut(p % len + i) {
                        *slot = *b;
                    }
                }
            }
            Mutation::WriteU64(p, v) => {
                for (i, b) in v.to_le_bytes().iter().enumerate() {
                    if let Some(slot) = bytes.get_mut(p % len + i) {
                        *slot = *b;
                    }
                }
            }
            Mutation::Truncate(p) => bytes.truncate(p % len),
            Mutation::Delete(p, n) => {
                let start = p % len;
                let end = (start + n).min(len);
                bytes.drain(start..end);
            }
            Mutation::Insert(p, ins) => {
                let at = p % len;
                bytes.splice(at..at, ins.iter().copied());
            }
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_fixture_never_panics(mutations in prop::collection::vec(mutation(), 1..6)) {
        exercise(apply(fixture().to_vec(), &mutations));
    }

    #[test]
    fn mutated_small_file_never_panics(mutations in prop::collection::vec(mutation(), 1..6)) {
        exercise(apply(small(), &mutations));
    }

    #[test]
    fn random_bytes_after_magic_never_panic(tail in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut bytes = b"GGUF\x03\x00\x00\x00".to_vec();
        bytes.extend(tail);
        exercise(bytes);
    }
}

#[test]
fn seeds_are_valid() {
    let f = GgufFile::from_bytes(small(), "small").expect("small seed parses");
    assert_eq!(f.version(), 2);
    assert_eq!(f.tensor_f32("a").expect("a").0, vec![1.0, -2.0, 3.5]);
    assert_eq!(f.tensor_f32("b").expect("b").0.len(), 32);
    assert!(GgufFile::from_bytes(fixture().to_vec(), "fixture").is_ok());
}

/// Any holder of the bytes (here a shared slice, in `kn-model` a memory map) reads the same
/// file, and a tensor's range in the file holds exactly its raw bytes.
#[test]
fn any_byte_source_reads_the_same_file() {
    struct Shared(std::sync::Arc<Vec<u8>>);
    impl AsRef<[u8]> for Shared {
        fn as_ref(&self) -> &[u8] {
            &self.0
        }
    }
    let bytes = std::sync::Arc::new(small());
    let f = GgufFile::from_source(Shared(bytes.clone()), "shared").expect("parses");
    assert_eq!(f.file_bytes(), bytes.as_slice());
    assert_eq!(f.tensor_f32("a").expect("a").0, vec![1.0, -2.0, 3.5]);
    for name in ["a", "b"] {
        let range = f.tensor_range(name).expect("range");
        assert_eq!(&bytes[range], f.tensor_data(name).expect("data"));
    }
    assert!(f.tensor_range("missing").is_err());
}

#[test]
fn every_prefix_of_the_fixture_header_is_handled() {
    let bytes = fixture();
    for len in (0..bytes.len()).step_by(7) {
        exercise(bytes[..len].to_vec());
    }
}

#[test]
fn fuzz_seeds_parse_and_decode() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/gguf_parse");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("gguf") {
            // Regression inputs found by the fuzzer: must not panic, need not parse.
            exercise(std::fs::read(&path).expect("seed"));
            continue;
        }
        let f = GgufFile::open(&path).unwrap_or_else(|e| panic!("{e}"));
        for t in f.tensors() {
            f.tensor_f32(&t.name).unwrap_or_else(|e| panic!("{e}"));
        }
        seen += 1;
    }
    assert!(
        seen >= 3,
        "expected the generated seeds in {}",
        dir.display()
    );
}
