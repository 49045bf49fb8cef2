//! Bad inputs give typed errors that name the file / token / merge involved, never panics.

mod common;

use std::path::Path;

use common::{fixture, temp_file};
use kn_tokenizer::byte_level::byte_to_char_table;
use kn_tokenizer::{ByteLevelBpe, PreTokenizer, Tokenizer, TokenizerError, WordPiece};
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

fn load_json(v: &Value, name: &str) -> Result<ByteLevelBpe, TokenizerError> {
    ByteLevelBpe::from_tokenizer_json(&temp_file(name, &v.to_string()))
}

fn err_json(f: impl FnOnce(&mut Value), name: &str) -> TokenizerError {
    let mut v = tiny_json();
    f(&mut v);
    match load_json(&v, name) {
        Ok(_) => panic!("{name}: expected an error"),
        Err(e) => e,
    }
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
    let e =
        ByteLevelBpe::from_tokenizer_json(Path::new("/nonexistent/tokenizer.json")).unwrap_err();
    assert!(matches!(e, TokenizerError::Io { .. }), "{e:?}");
    assert!(e.to_string().contains("/nonexistent/tokenizer.json"), "{e}");
}

#[test]
fn malformed_json_names_the_file() {
    let p = temp_file("broken.json", "{\"model\": {\"type\": \"BPE\", ");
    let e = ByteLevelBpe::from_tokenizer_json(&p).unwrap_err();
    assert!(matches!(e, TokenizerError::Json { .. }), "{e:?}");
    assert!(e.to_string().contains("broken.json"), "{e}");
    let p = temp_file("array.json", "[1, 2]");
    let e = ByteLevelBpe::from_tokenizer_json(&p).unwrap_err();
    assert!(
        matches!(e, TokenizerError::InvalidTokenizerJson { .. }),
        "{e:?}"
    );
}

#[test]
fn structural_problems_are_invalid_tokenizer_json() {
    let e = err_json(
        |v| drop(v.as_object_mut().unwrap().remove("model")),
        "no-model.json",
    );
    assert!(
        matches!(&e, TokenizerError::InvalidTokenizerJson { field, .. } if field == "$.model"),
        "{e:?}"
    );
    let e = err_json(|v| v["model"]["vocab"] = json!(["a"]), "vocab-array.json");
    assert!(
        matches!(&e, TokenizerError::InvalidTokenizerJson { field, .. } if field == "model.vocab"),
        "{e:?}"
    );
    let e = err_json(|v| v["model"]["vocab"]["a"] = json!(-3), "negative-id.json");
    assert!(e.to_string().contains("model.vocab[\"a\"]"), "{e}");
    // Two tokens with the same id ("b" takes the id of another byte symbol).
    let e = err_json(|v| v["model"]["vocab"]["b"] = json!(97), "dup-id.json");
    assert!(
        matches!(e, TokenizerError::InvalidTokenizerJson { .. }),
        "{e:?}"
    );
    let e = err_json(
        |v| v["added_tokens"][0]["id"] = json!(3),
        "added-id-clash.json",
    );
    assert!(
        matches!(e, TokenizerError::InvalidTokenizerJson { .. }),
        "{e:?}"
    );
    let e = err_json(
        |v| v["model"]["merges"] = json!({"a": "b"}),
        "merges-object.json",
    );
    assert!(
        matches!(e, TokenizerError::InvalidTokenizerJson { .. }),
        "{e:?}"
    );
}

#[test]
fn unsupported_features_are_named() {
    type Case = (&'static str, Box<dyn FnOnce(&mut Value)>, &'static str);
    let cases: Vec<Case> = vec![
        (
            "wordpiece-model.json",
            Box::new(|v: &mut Value| v["model"]["type"] = json!("WordPiece")),
            "model.type",
        ),
        (
            "normalizer.json",
            Box::new(|v: &mut Value| v["normalizer"] = json!({"type": "NFC"})),
            "normalizer",
        ),
        (
            "dropout.json",
            Box::new(|v: &mut Value| v["model"]["dropout"] = json!(0.1)),
            "model.dropout",
        ),
        (
            "byte-fallback.json",
            Box::new(|v: &mut Value| v["model"]["byte_fallback"] = json!(true)),
            "model.byte_fallback",
        ),
        (
            "prefix.json",
            Box::new(|v: &mut Value| v["model"]["continuing_subword_prefix"] = json!("##")),
            "model.continuing_subword_prefix",
        ),
        (
            "whitespace-pre.json",
            Box::new(|v: &mut Value| v["pre_tokenizer"] = json!({"type": "Whitespace"})),
            "pre_tokenizer",
        ),
        (
            "null-pre.json",
            Box::new(|v: &mut Value| v["pre_tokenizer"] = Value::Null),
            "pre_tokenizer",
        ),
        (
            "prefix-space.json",
            Box::new(|v: &mut Value| v["pre_tokenizer"]["add_prefix_space"] = json!(true)),
            "pre_tokenizer.add_prefix_space",
        ),
        (
            "digits-grouped.json",
            Box::new(|v: &mut Value| {
                v["pre_tokenizer"] = json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": false}, {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}]})
            }),
            "pre_tokenizer.pretokenizers[0]",
        ),
        (
            "split-merged.json",
            Box::new(|v: &mut Value| {
                v["pre_tokenizer"] = json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "MergedWithPrevious", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]})
            }),
            "pre_tokenizer.pretokenizers[0].behavior",
        ),
        (
            "split-string.json",
            Box::new(|v: &mut Value| {
                v["pre_tokenizer"] = json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"String": " "}, "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]})
            }),
            "pre_tokenizer.pretokenizers[0].pattern",
        ),
        (
            "single-word.json",
            Box::new(|v: &mut Value| v["added_tokens"][0]["single_word"] = json!(true)),
            "added_tokens[0].single_word",
        ),
        (
            "decoder.json",
            Box::new(|v: &mut Value| v["decoder"] = json!({"type": "WordPiece"})),
            "decoder",
        ),
    ];
    for (name, f, want_field) in cases {
        let e = err_json(f, name);
        match &e {
            TokenizerError::Unsupported { path, field, .. } => {
                assert_eq!(field, want_field, "{name}: {e}");
                assert!(path.ends_with(name), "{name}: {e}");
            }
            other => panic!("{name}: expected Unsupported, got {other:?}"),
        }
    }
}

#[test]
fn invalid_custom_split_regex_is_a_regex_error() {
    let e = err_json(
        |v| {
            v["pre_tokenizer"] = json!({"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated", "invert": false},
                {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]});
        },
        "bad-regex.json",
    );
    assert!(matches!(e, TokenizerError::Regex { .. }), "{e:?}");
}

#[test]
fn custom_split_regex_is_accepted() {
    let mut v = tiny_json();
    v["pre_tokenizer"] = json!({"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "\\w+|\\s+|[^\\w\\s]+"}, "behavior": "Isolated", "invert": false},
        {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]});
    let tok = load_json(&v, "custom-regex.json").expect("custom regex");
    assert_eq!(
        tok.pre_tokenizer(),
        &PreTokenizer::Regex("\\w+|\\s+|[^\\w\\s]+".into())
    );
    assert_eq!(
        tok.decode(&tok.encode("ab, cd").unwrap()).unwrap(),
        "ab, cd"
    );
}

#[test]
fn merges_naming_unknown_tokens() {
    let e = err_json(
        |v| v["model"]["merges"] = json!(["a b", "x zz"]),
        "merge-unknown.json",
    );
    assert!(
        matches!(&e, TokenizerError::MergeUnknownToken { index: 1, token, .. } if token == "zz"),
        "{e:?}"
    );
    // Both sides known but the merged token is not in the vocabulary.
    let e = err_json(
        |v| v["model"]["merges"] = json!([["c", "d"]]),
        "merge-result-unknown.json",
    );
    assert!(
        matches!(&e, TokenizerError::MergeUnknownToken { index: 0, token, .. } if token == "cd"),
        "{e:?}"
    );
    let e = err_json(
        |v| v["model"]["merges"] = json!(["ab"]),
        "merge-no-space.json",
    );
    assert!(
        matches!(e, TokenizerError::MalformedMerge { index: 0, .. }),
        "{e:?}"
    );
    let e = err_json(|v| v["model"]["merges"] = json!([["a"]]), "merge-one.json");
    assert!(
        matches!(e, TokenizerError::MalformedMerge { index: 0, .. }),
        "{e:?}"
    );

    let e = ByteLevelBpe::new(
        byte_tokens(),
        vec!["a b".into()],
        vec![],
        PreTokenizer::Gpt2,
    )
    .unwrap_err();
    assert!(
        matches!(&e, TokenizerError::MergeUnknownToken { token, .. } if token == "ab"),
        "{e:?}"
    );
    assert!(e.to_string().contains("\"ab\""), "{e}");
    let e = ByteLevelBpe::new(
        byte_tokens(),
        vec!["a b c".into()],
        vec![],
        PreTokenizer::Gpt2,
    )
    .unwrap_err();
    assert!(
        matches!(e, TokenizerError::MalformedMerge { index: 0, .. }),
        "{e:?}"
    );
    let (tokens, _, types) = common::smollm2_gguf_like_metadata();
    let e = ByteLevelBpe::from_gguf_metadata(
        tokens,
        vec!["Ġ t".into(), "no such".into()],
        Some(types),
        "smollm",
    )
    .unwrap_err();
    assert!(
        matches!(&e, TokenizerError::MergeUnknownToken { index: 1, .. }),
        "{e:?}"
    );
}

#[test]
fn empty_vocab() {
    let e = ByteLevelBpe::new(vec![], vec![], vec![], PreTokenizer::Gpt2).unwrap_err();
    assert!(matches!(e, TokenizerError::EmptyVocab), "{e:?}");
    let e = ByteLevelBpe::from_gguf_metadata(vec![], vec![], Some(vec![]), "gpt2").unwrap_err();
    assert!(matches!(e, TokenizerError::EmptyVocab), "{e:?}");
    let e = err_json(
        |v| {
            v["model"]["vocab"] = json!({});
            v["model"]["merges"] = json!([]);
            v["added_tokens"] = json!([]);
        },
        "empty-vocab.json",
    );
    assert!(matches!(e, TokenizerError::EmptyVocab), "{e:?}");
}

#[test]
fn missing_special_tokens() {
    let e = ByteLevelBpe::new(
        byte_tokens(),
        vec![],
        vec!["<|im_start|>".into()],
        PreTokenizer::Gpt2,
    )
    .unwrap_err();
    assert!(
        matches!(&e, TokenizerError::MissingSpecialToken { token, .. } if token == "<|im_start|>"),
        "{e:?}"
    );
    let e = err_json(
        |v| v["model"]["unk_token"] = json!("<unk>"),
        "unk-missing.json",
    );
    assert!(
        matches!(&e, TokenizerError::MissingSpecialToken { token, .. } if token == "<unk>"),
        "{e:?}"
    );
    assert!(e.to_string().contains("unk-missing.json"), "{e}");
}

#[test]
fn unknown_pre_name_lists_supported_ones() {
    let (tokens, merges, types) = common::smollm2_gguf_like_metadata();
    let e = ByteLevelBpe::from_gguf_metadata(tokens, merges, Some(types), "qwen2").unwrap_err();
    match &e {
        TokenizerError::UnknownPreTokenizer { name, supported } => {
            assert_eq!(name, "qwen2");
            for s in ["smollm", "gpt2", "llama-bpe", "default"] {
                assert!(supported.contains(s), "{supported}");
            }
        }
        other => panic!("expected UnknownPreTokenizer, got {other:?}"),
    }
}

#[test]
fn token_types_length_mismatch() {
    let e = ByteLevelBpe::from_gguf_metadata(byte_tokens(), vec![], Some(vec![1; 3]), "gpt2")
        .unwrap_err();
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
fn bytes_without_a_symbol_are_dropped_or_unk() {
    // Vocabulary without the symbol of byte 0x04 (as in SmolLM2).
    let mut tokens = byte_tokens();
    tokens[4] = "<removed>".into();
    let tok = ByteLevelBpe::new(tokens, vec![], vec![], PreTokenizer::Gpt2).expect("build");
    assert_eq!(tok.missing_bytes(), vec![4]);
    let ids = tok.encode("a\u{4}b").unwrap();
    assert_eq!(tok.decode(&ids).unwrap(), "ab");
    // With an unknown token, fused.
    let mut v = tiny_json();
    let sym = byte_to_char_table()[4].to_string();
    v["model"]["vocab"].as_object_mut().unwrap().remove(&sym);
    v["model"]["vocab"]["<unk>"] = json!(4);
    v["model"]["unk_token"] = json!("<unk>");
    v["model"]["fuse_unk"] = json!(true);
    let tok = load_json(&v, "with-unk.json").expect("load");
    assert_eq!(tok.encode("\u{4}\u{4}").unwrap(), vec![4]);
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
