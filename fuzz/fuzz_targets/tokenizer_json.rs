//! Fuzz target `tokenizer_json`: feeds arbitrary text to the `tokenizer.json` loader
//! (`HfTokenizer::from_json_str`, Hugging Face's `tokenizers` that `kn` runs on a model
//! directory) and, when it loads, encodes and decodes a few strings (including a slice of the
//! input itself). Any panic, abort,
//! hang or out-of-memory is a bug: malformed input must come back as a `TokenizerError`.
#![no_main]

use kn_tokenizer::{HfTokenizer, Tokenizer};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let origin = Path::new("fuzz/tokenizer.json");
    if let Ok(tokenizer) = HfTokenizer::from_json_str(text, origin) {
        exercise(&tokenizer, text);
    }
});

fn exercise(tokenizer: &dyn Tokenizer, text: &str) {
    let tail: String = text.chars().rev().take(24).collect();
    for probe in ["The capital of France is", " Paris", "", "\u{0}\u{ff}é漢", tail.as_str()] {
        if let Ok(ids) = tokenizer.encode(probe) {
            let _ = tokenizer.decode(&ids);
            for id in ids {
                let _ = tokenizer.id_to_token(id);
            }
        }
    }
    let _ = tokenizer.vocab_size();
}
