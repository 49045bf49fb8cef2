//! Bad inputs give typed errors that name the file / token / merge involved, never panics:
//! `tokenizer.json` files (through Hugging Face's `tokenizers`), GGUF byte-level metadata and
//! WordPiece vocabularies.

mod common;

use std::path::Path;

use common::{fixture, temp_file};
use kn_tokenizer::byte_level::byte_to_char_table;
use kn_tokenizer::{
    byte_level_from_gguf_metadata, HfTokenizer, Tokenizer, TokenizerError, WordPiece,
};
use serde_json::{json, Value};

fn byte_tokens() -> Vec<String> {
    byte_to_char_table().iter().map(|c| c.to_string()).collect()
}

/// A minimal valid byte-level tokenizer.json, to be broken by the tests.
fn tiny_json() -> Value {
    let mut vocab = serde_json::Map::new();
    for (i, t) in byte_tokens().into_iter().enumerate() {
        vocab.insert(t, json!(i));
    }
    vocab.insert("ab".into(), json!(256));
    vocab.insert("<s>".into(), json!(257));
    json!({
        "version": "1.0",
        "added_tokens": [{"id": 257, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": vocab, "merges": ["a b"]}
    })
}

fn load_json(v: &Value, name: &str) -> Result<HfTokenizer, TokenizerError> {
    HfTokenizer::from_file(&temp_file(name, &v.to_string()))
}

/// The error of `tiny_json()` changed by `f`; it must name the file.
fn err_json(f: impl FnOnce(&mut Value), name: &str) -> TokenizerError {
    let mut v = tiny_json();
    f(&mut v);
    match load_json(&v, name) {
        Ok(_) => panic!("{name}: expected an error"),
        Err(e) => {
            assert!(e.to_string().contains(name), "{name}: {e}");
            e
        }
    }
}

fn gguf(
    tokens: &[String],
    merges: &[&str],
    types: Option<&[i64]>,
    pre: &str,
) -> Result<HfTokenizer, TokenizerError> {
    let merges: Vec<String> = merges.iter().map(|m| m.to_string()).collect();
    byte_level_from_gguf_metadata(tokens, &merges, types, pre, Path::new("model.gguf"))
}

#[test]
fn tiny_json_is_valid() {
    let tok = load_json(&tiny_json(), "tiny.json").expect("valid");
    let ab = tok.token_to_id("ab").expect("ab");
    assert_eq!(tok.encode("ab<s>").unwrap(), vec![ab, 257]);
    assert_eq!(tok.decode(&[ab, 257]).unwrap(), "ab<s>");
}

#[test]
fn missing_tokenizer_json_is_io_error_naming_the_file() {
    let e = HfTokenizer::from_file(Path::new("/nonexistent/tokenizer.json")).unwrap_err();
    assert!(matches!(e, TokenizerError::Io { .. }), "{e:?}");
    assert!(e.to_string().contains("/nonexistent/tokenizer.json"), "{e}");
}

#[test]
fn malformed_json_names_the_file() {
    for (name, text) in [
        ("broken.json", "{\"model\": {\"type\": \"BPE\", "),
        ("array.json", "[1, 2]"),
        ("empty.json", ""),
    ] {
        let e = HfTokenizer::from_file(&temp_file(name, text)).unwrap_err();
        assert!(matches!(e, TokenizerError::HuggingFace { .. }), "{e:?}");
        assert!(e.to_string().contains(name), "{e}");
    }
}

#[test]
fn structural_problems_are_errors_naming_the_file() {
    err_json(
        |v| drop(v.as_object_mut().unwrap().remove("model")),
        "no-model.json",
    );
    err_json(|v| v["model"]["vocab"] = json!(["a"]), "vocab-array.json");
    err_json(|v| v["model"]["vocab"]["a"] = json!(-3), "negative-id.json");
    err_json(
        |v| v["model"]["merges"] = json!({"a": "b"}),
        "merges-object.json",
    );
    err_json(
        |v| v["model"]["merges"] = json!(["a b", "x zz"]),
        "merge-unknown.json",
    );
    err_json(
        |v| v["model"]["type"] = json!("Nonsense"),
        "model-type.json",
    );
    err_json(
        |v| v["pre_tokenizer"] = json!({"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated", "invert": false}),
        "bad-regex.json",
    );
}

#[test]
fn gguf_merges_naming_unknown_tokens_or_malformed() {
    let e = gguf(&byte_tokens(), &["a b"], None, "gpt2").unwrap_err();
    assert!(
        matches!(&e, TokenizerError::MergeUnknownToken { index: 0, token, .. } if token == "ab"),
        "{e:?}"
    );
    assert!(e.to_string().contains("\"ab\""), "{e}");
    for merges in [&["a b c"][..], &["ab"], &[" a"], &["a "]] {
        let e = gguf(&byte_tokens(), merges, None, "gpt2").unwrap_err();
        assert!(
            matches!(e, TokenizerError::MalformedMerge { index: 0, .. }),
            "{merges:?}: {e:?}"
        );
    }
    let (tokens, _, types) = common::smollm2_gguf_like_metadata();
    let e = gguf(&tokens, &["Ġ t", "no such"], Some(&types), "smollm").unwrap_err();
    assert!(
        matches!(&e, TokenizerError::MergeUnknownToken { index: 1, .. }),
        "{e:?}"
    );
}

#[test]
fn gguf_empty_vocab() {
    let e = gguf(&[], &[], Some(&[]), "gpt2").unwrap_err();
    assert!(matches!(e, TokenizerError::EmptyVocab), "{e:?}");
}

#[test]
fn gguf_unknown_pre_name_lists_supported_ones() {
    let e = gguf(&byte_tokens(), &[], None, "no-such-pre").unwrap_err();
    match &e {
        TokenizerError::UnknownPreTokenizer { name, supported } => {
            assert_eq!(name, "no-such-pre");
            for s in ["smollm", "gpt2", "llama-bpe", "qwen2", "default"] {
                assert!(supported.contains(s), "{supported}");
            }
        }
        other => panic!("expected UnknownPreTokenizer, got {other:?}"),
    }
}

#[test]
fn gguf_token_types_length_mismatch() {
    let e = gguf(&byte_tokens(), &[], Some(&[1; 3]), "gpt2").unwrap_err();
    assert!(
        matches!(
            e,
            TokenizerError::TokenTypesLength {
                tokens: 256,
                types: 3
            }
        ),
        "{e:?}"
    );
}

#[test]
fn bytes_without_a_symbol_are_dropped() {
    // A vocabulary without the symbol of byte 0x04 (as in SmolLM2).
    let mut tokens = byte_tokens();
    tokens[4] = "<removed>".into();
    let tok = gguf(&tokens, &[], None, "gpt2").expect("build");
    let ids = tok.encode("a\u{4}b").unwrap();
    assert_eq!(tok.decode(&ids).unwrap(), "ab");
}

#[test]
fn decode_unknown_ids() {
    let tok = common::smollm2();
    let e = tok.decode(&[1, 49152]).unwrap_err();
    assert!(
        matches!(
            e,
            TokenizerError::UnknownId {
                id: 49152,
                vocab_size: 49152
            }
        ),
        "{e:?}"
    );
    let wp = WordPiece::from_vocab_file(&fixture("tokenizer/bert-vocab-cased.txt"), false, false)
        .unwrap();
    assert!(matches!(
        wp.decode(&[u32::MAX]),
        Err(TokenizerError::UnknownId { .. })
    ));
}

#[test]
fn wordpiece_vocab_missing_or_bad() {
    let e =
        WordPiece::from_vocab_file(Path::new("/nonexistent/vocab.txt"), false, false).unwrap_err();
    assert!(matches!(e, TokenizerError::Io { .. }), "{e:?}");
    assert!(e.to_string().contains("/nonexistent/vocab.txt"), "{e}");

    let p = temp_file("empty-vocab.txt", "");
    let e = WordPiece::from_vocab_file(&p, false, false).unwrap_err();
    assert!(matches!(e, TokenizerError::WordPieceVocab { .. }), "{e:?}");
    assert!(e.to_string().contains("empty-vocab.txt"), "{e}");

    let p = temp_file("not-utf8-vocab.txt", "");
    std::fs::write(&p, b"[UNK]\n\xff\xfe\n").unwrap();
    let e = WordPiece::from_vocab_file(&p, false, false).unwrap_err();
    assert!(matches!(e, TokenizerError::WordPieceVocab { .. }), "{e:?}");

    let p = temp_file("no-unk-vocab.txt", "[PAD]\n[CLS]\n[SEP]\n[MASK]\nhello\n");
    let e = WordPiece::from_vocab_file(&p, false, false).unwrap_err();
    assert!(
        matches!(&e, TokenizerError::MissingSpecialToken { token, .. } if token == "[UNK]"),
        "{e:?}"
    );
    assert!(e.to_string().contains("no-unk-vocab.txt"), "{e}");
}

#[test]
fn wordpiece_without_optional_specials() {
    let p = temp_file("minimal-vocab.txt", "[UNK]\nhello\n##s\n");
    let tok = WordPiece::from_vocab_file(&p, true, true).expect("load");
    assert_eq!(tok.mask_id(), None);
    assert_eq!(tok.cls_id(), None);
    assert_eq!(tok.unk_id(), 0);
    assert_eq!(tok.encode("Hellos [MASK]").unwrap(), vec![1, 2, 0, 0, 0]);
}
