//! Golden tests against gguf-py: `fixtures/gguf/quant_types.gguf` (one tensor per supported ggml
//! type, written by gguf-py 0.19.0) is decoded and compared with the values gguf-py's
//! `gguf.quants.dequantize` produced (`quant_types_expected.json`, stored as f32 bit patterns).
//! Both fixtures come from `scripts/reference/make_gguf_fixtures.py`. The metadata of every value
//! type written by gguf-py is checked here too.

use std::path::PathBuf;

use kn_gguf::{dequantize, GgmlType, GgufFile, MetadataValue};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/gguf")
        .join(name)
}

fn open_fixture() -> GgufFile {
    GgufFile::open(&fixture("quant_types.gguf")).expect("fixtures/gguf/quant_types.gguf")
}

fn expected() -> Value {
    let text =
        std::fs::read_to_string(fixture("quant_types_expected.json")).expect("expected json");
    serde_json::from_str(&text).expect("valid json")
}

/// Equal bits, or within 1e-6 relative of each other.
fn close(got: f32, want: f32) -> bool {
    got.to_bits() == want.to_bits()
        || got == want
        || (got.is_finite()
            && want.is_finite()
            && (got - want).abs() <= 1e-6 * got.abs().max(want.abs()))
}

#[test]
fn every_type_matches_gguf_py() {
    let file = open_fixture();
    let expected = expected();
    let tensors = expected["tensors"].as_array().expect("tensors array");
    let mut seen = Vec::new();
    for t in tensors {
        let name = t["name"].as_str().expect("name");
        let type_name = t["type"].as_str().expect("type");
        let shape: Vec<usize> = t["shape"]
            .as_array()
            .expect("shape")
            .iter()
            .map(|d| d.as_u64().expect("dim") as usize)
            .collect();
        let want: Vec<f32> = t["expected_f32_bits"]
            .as_array()
            .expect("bits")
            .iter()
            .map(|b| f32::from_bits(b.as_u64().expect("bit pattern") as u32))
            .collect();

        let info = file.tensor_info(name).expect("tensor in fixture");
        assert_eq!(info.dtype.to_string(), type_name, "{name}");
        let (got, got_shape) = file.tensor_f32(name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got_shape, shape, "{name}");
        assert_eq!(got.len(), want.len(), "{name}");
        let mut inexact = 0;
        for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
            assert!(
                close(g, w),
                "{name} ({type_name}) element {i}: got {g:e}, gguf-py {w:e}"
            );
            if g.to_bits() != w.to_bits() {
                inexact += 1;
            }
        }
        // The free function gives the same result from the raw bytes.
        let raw = file.tensor_data(name).expect("raw bytes");
        let again = dequantize(info.dtype, raw, got.len()).expect("dequantize");
        assert_eq!(
            again.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            got.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        println!("{name}: {} values, {inexact} not bit-identical", got.len());
        seen.push(info.dtype);
    }
    for required in [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
        GgmlType::Q8_K,
    ] {
        assert!(seen.contains(&required), "fixture has no {required} tensor");
    }
}

#[test]
fn metadata_of_every_value_type() {
    let f = open_fixture();
    assert_eq!(f.version(), 3);
    assert_eq!(f.alignment(), 64);
    assert_eq!(f.data_offset() % 64, 0);
    for t in f.tensors() {
        assert_eq!(t.offset % 64, 0, "{}", t.name);
    }
    assert_eq!(f.get_str("general.architecture").ok(), Some("kn-test"));
    assert_eq!(f.get("test.u8"), Some(&MetadataValue::U8(200)));
    assert_eq!(f.get("test.i8"), Some(&MetadataValue::I8(-100)));
    assert_eq!(f.get("test.u16"), Some(&MetadataValue::U16(60000)));
    assert_eq!(f.get("test.i16"), Some(&MetadataValue::I16(-30000)));
    assert_eq!(f.get("test.u32"), Some(&MetadataValue::U32(4_000_000_000)));
    assert_eq!(f.get("test.i32"), Some(&MetadataValue::I32(-2_000_000_000)));
    assert_eq!(f.get("test.f32"), Some(&MetadataValue::F32(0.15625)));
    assert_eq!(f.get("test.bool"), Some(&MetadataValue::Bool(true)));
    assert_eq!(
        f.get_str("test.string").ok(),
        Some("h\u{e9}llo w\u{f6}rld \u{2713}")
    );
    assert_eq!(f.get("test.u64"), Some(&MetadataValue::U64((1 << 63) + 5)));
    assert_eq!(f.get("test.i64"), Some(&MetadataValue::I64(-(1 << 62))));
    assert_eq!(
        f.get("test.f64"),
        Some(&MetadataValue::F64(std::f64::consts::PI))
    );
    assert_eq!(f.get_u64("test.u8").ok(), Some(200));
    assert_eq!(f.get_u64("test.u64").ok(), Some((1 << 63) + 5));
    assert!(f.get_u64("test.i8").is_err());
    assert_eq!(
        f.get_f32("test.f64").ok(),
        Some(std::f64::consts::PI as f32)
    );
    assert_eq!(f.get_i64_array("test.array_i32").ok(), Some(vec![1, -2, 3]));
    assert_eq!(f.get_i64_array("test.array_u16").ok(), Some(vec![7, 65535]));
    assert_eq!(
        f.get_str_array("test.array_str").ok(),
        Some(vec!["a", "bb", ""])
    );
    assert_eq!(
        f.get("test.nested"),
        Some(&MetadataValue::Array(vec![
            MetadataValue::Array(vec![MetadataValue::I32(1), MetadataValue::I32(2)]),
            MetadataValue::Array(vec![MetadataValue::I32(3)]),
        ]))
    );
    assert_eq!(f.get_u64("general.alignment").ok(), Some(64));
}
