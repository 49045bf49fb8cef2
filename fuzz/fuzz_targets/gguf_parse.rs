//! Fuzz target `gguf_parse`: feeds arbitrary bytes to `GgufFile::from_bytes` and, when they parse,
//! queries every metadata key through the typed accessors and dequantizes every tensor. Any panic,
//! abort, hang or out-of-memory is a bug: malformed input must come back as a `GgufError`.
#![no_main]

use kn_gguf::GgufFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = GgufFile::from_bytes(data.to_vec(), "fuzz-input.gguf") else {
        return;
    };
    for key in file.metadata().keys() {
        let _ = file.get_u64(key);
        let _ = file.get_f32(key);
        let _ = file.get_str(key);
        let _ = file.get_str_array(key);
        let _ = file.get_i64_array(key);
    }
    for info in file.tensors() {
        if let Ok((values, shape)) = file.tensor_f32(&info.name) {
            // Every shape must be safe to multiply out, even for empty tensors.
            let product = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
            assert_eq!(Some(values.len()), product);
        }
    }
});
