//! Loading a byte-level BPE from a Hugging Face `tokenizer.json`.
//!
//! Supported: `model.type == "BPE"` with `vocab` (token -> id) and `merges` (either `"a b"`
//! strings or `["a", "b"]` pairs), optional `unk_token` / `fuse_unk` (used for bytes without a
//! symbol), `ignore_merges`, no dropout / subword prefix / suffix / byte fallback;
//! `normalizer: null`; `added_tokens` (matched literally, with `lstrip` / `rstrip`); and one of
//! these pre-tokenizers:
//!
//! * `ByteLevel { use_regex: true, add_prefix_space: false }` -> [`PreTokenizer::Gpt2`];
//! * `Sequence[Digits { individual_digits: true }, ByteLevel { use_regex: true }]` -> [`PreTokenizer::SmolLm`];
//! * `Sequence[Split { pattern: { Regex }, behavior: "Isolated", invert: false }, ByteLevel { use_regex: false }]`
//!   -> [`PreTokenizer::Llama3`] for Llama 3's pattern, [`PreTokenizer::Gpt2`] for GPT-2's,
//!   [`PreTokenizer::Regex`] otherwise.
//!
//! The decoder must be `ByteLevel` (or absent). The post-processor is ignored: `encode` never
//! adds special tokens. Anything else is rejected with [`TokenizerError::Unsupported`].

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Map, Value};

use crate::bpe::{AddedToken, ByteLevelBpe};
use crate::error::TokenizerError;
use crate::pretokenizer::{PreTokenizer, GPT2_PATTERN, LLAMA3_PATTERN};

/// Ids above this are rejected (guards against absurd allocations from a corrupt file).
const MAX_ID: u64 = 1 << 24;

struct Ctx<'p> {
    path: &'p Path,
}

impl Ctx<'_> {
    fn invalid(&self, field: &str, reason: impl Into<String>) -> TokenizerError {
        TokenizerError::InvalidTokenizerJson {
            path: self.path.to_path_buf(),
            field: field.to_owned(),
            reason: reason.into(),
        }
    }

    fn unsupported(&self, field: &str, what: impl Into<String>) -> TokenizerError {
        TokenizerError::Unsupported {
            path: self.path.to_path_buf(),
            field: field.to_owned(),
            what: what.into(),
        }
    }

    fn object<'v>(
        &self,
        v: &'v Value,
        field: &str,
    ) -> Result<&'v Map<String, Value>, TokenizerError> {
        v.as_object()
            .ok_or_else(|| self.invalid(field, format!("expected an object, found {}", kind(v))))
    }

    fn get<'v>(
        &self,
        obj: &'v Map<String, Value>,
        key: &str,
        field: &str,
    ) -> Result<&'v Value, TokenizerError> {
        obj.get(key)
            .ok_or_else(|| self.invalid(&format!("{field}.{key}"), "missing"))
    }

    fn str_field<'v>(
        &self,
        obj: &'v Map<String, Value>,
        key: &str,
        field: &str,
    ) -> Result<&'v str, TokenizerError> {
        let v = self.get(obj, key, field)?;
        v.as_str().ok_or_else(|| {
            self.invalid(
                &format!("{field}.{key}"),
                format!("expected a string, found {}", kind(v)),
            )
        })
    }

    /// A boolean field; `default` when absent or null.
    fn bool_field(
        &self,
        obj: &Map<String, Value>,
        key: &str,
        field: &str,
        default: bool,
    ) -> Result<bool, TokenizerError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(self.invalid(
                &format!("{field}.{key}"),
                format!("expected a boolean, found {}", kind(v)),
            )),
        }
    }

    fn id(&self, v: &Value, field: &str) -> Result<u32, TokenizerError> {
        match v.as_u64() {
            Some(id) if id < MAX_ID => Ok(id as u32),
            Some(id) => Err(self.invalid(field, format!("id {id} is too large"))),
            None => Err(self.invalid(
                field,
                format!("expected a non-negative integer id, found {}", kind(v)),
            )),
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn type_of(v: &Value) -> Option<&str> {
    v.get("type").and_then(Value::as_str)
}

impl ByteLevelBpe {
    /// Loads a byte-level BPE from a Hugging Face `tokenizer.json`.
    ///
    /// Supported: `model.type == "BPE"` with `vocab` and `merges` (`"a b"` strings or
    /// `["a", "b"]` pairs), optional `unk_token` / `fuse_unk` / `ignore_merges`;
    /// `normalizer: null`; `added_tokens` (matched literally, `lstrip` / `rstrip` honoured);
    /// decoder `ByteLevel` or null; and the pre-tokenizers
    /// `ByteLevel(use_regex=true)` ([`PreTokenizer::Gpt2`]),
    /// `Sequence[Digits(individual_digits=true), ByteLevel(use_regex=true)]` ([`PreTokenizer::SmolLm`]) and
    /// `Sequence[Split({"Regex": p}, "Isolated"), ByteLevel(use_regex=false)]`
    /// ([`PreTokenizer::Llama3`] for Llama 3's pattern, [`PreTokenizer::Regex`] for others).
    /// `add_prefix_space = true`, dropout, subword prefixes/suffixes, byte fallback,
    /// `single_word` added tokens and normalizers are rejected. The post-processor is ignored
    /// (`encode` never adds special tokens).
    ///
    /// # Errors
    /// [`TokenizerError::Io`], [`TokenizerError::Json`], [`TokenizerError::InvalidTokenizerJson`],
    /// [`TokenizerError::Unsupported`], and the errors of [`ByteLevelBpe::new`].
    pub fn from_tokenizer_json(path: &Path) -> Result<Self, TokenizerError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenizerError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let root: Value = serde_json::from_str(&text).map_err(|source| TokenizerError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        parse(&Ctx { path }, &root)
    }

    /// Like [`from_tokenizer_json`](Self::from_tokenizer_json), from JSON text already in
    /// memory; `origin` is only used in error messages.
    ///
    /// # Errors
    /// As [`from_tokenizer_json`](Self::from_tokenizer_json), without `Io`.
    pub fn from_tokenizer_json_str(json: &str, origin: &Path) -> Result<Self, TokenizerError> {
        let root: Value = serde_json::from_str(json).map_err(|source| TokenizerError::Json {
            path: origin.to_path_buf(),
            source,
        })?;
        parse(&Ctx { path: origin }, &root)
    }
}

fn parse(cx: &Ctx<'_>, root: &Value) -> Result<ByteLevelBpe, TokenizerError> {
    let root = cx.object(root, "$")?;

    // normalizer
    match root.get("normalizer") {
        None | Some(Value::Null) => {}
        Some(v) => {
            return Err(cx.unsupported(
                "normalizer",
                format!(
                    "normalizer {} (only null is supported)",
                    type_of(v).unwrap_or("?")
                ),
            ))
        }
    }

    // model
    let model = cx.object(cx.get(root, "model", "$")?, "model")?;
    match model.get("type").and_then(Value::as_str) {
        Some("BPE") => {}
        Some(other) => {
            return Err(cx.unsupported(
                "model.type",
                format!("model type {other:?} (only \"BPE\" is supported)"),
            ))
        }
        None => return Err(cx.invalid("model.type", "missing")),
    }
    match model.get("dropout") {
        None | Some(Value::Null) => {}
        Some(v) => return Err(cx.unsupported("model.dropout", format!("BPE dropout {v}"))),
    }
    for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
        match model.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.is_empty() => {}
            Some(v) => return Err(cx.unsupported(&format!("model.{key}"), format!("{key} {v}"))),
        }
    }
    if cx.bool_field(model, "byte_fallback", "model", false)? {
        return Err(cx.unsupported("model.byte_fallback", "byte_fallback = true"));
    }
    let ignore_merges = cx.bool_field(model, "ignore_merges", "model", false)?;
    let fuse_unk = cx.bool_field(model, "fuse_unk", "model", false)?;
    let unk_token = match model.get("unk_token") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(v) => {
            return Err(cx.invalid(
                "model.unk_token",
                format!("expected a string or null, found {}", kind(v)),
            ))
        }
    };

    // vocab
    let vocab_obj = cx.object(cx.get(model, "vocab", "model")?, "model.vocab")?;
    let mut vocab: HashMap<String, u32> = HashMap::with_capacity(vocab_obj.len());
    let mut id_to_token: Vec<Option<String>> = Vec::new();
    for (tok, v) in vocab_obj {
        let id = cx.id(v, &format!("model.vocab[{tok:?}]"))?;
        put(cx, &mut id_to_token, id, tok, "model.vocab")?;
        vocab.insert(tok.clone(), id);
    }

    // merges
    let merges_v = cx.get(model, "merges", "model")?;
    let merges_a = merges_v.as_array().ok_or_else(|| {
        cx.invalid(
            "model.merges",
            format!("expected an array, found {}", kind(merges_v)),
        )
    })?;
    let mut merges = Vec::with_capacity(merges_a.len());
    for (i, m) in merges_a.iter().enumerate() {
        let pair = match m {
            Value::String(s) => match s.split_once(' ') {
                Some((a, b)) if !a.is_empty() && !b.is_empty() && !b.contains(' ') => {
                    (a.to_owned(), b.to_owned())
                }
                _ => {
                    return Err(TokenizerError::MalformedMerge {
                        index: i,
                        merge: s.clone(),
                    })
                }
            },
            Value::Array(ab) => match ab.as_slice() {
                [Value::String(a), Value::String(b)] => (a.clone(), b.clone()),
                _ => {
                    return Err(TokenizerError::MalformedMerge {
                        index: i,
                        merge: m.to_string(),
                    })
                }
            },
            _ => {
                return Err(TokenizerError::MalformedMerge {
                    index: i,
                    merge: m.to_string(),
                })
            }
        };
        merges.push(pair);
    }

    // added tokens
    let mut added = Vec::new();
    match root.get("added_tokens") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let field = format!("added_tokens[{i}]");
                let obj = cx.object(item, &field)?;
                let id = cx.id(cx.get(obj, "id", &field)?, &format!("{field}.id"))?;
                let content = cx.str_field(obj, "content", &field)?.to_owned();
                if cx.bool_field(obj, "single_word", &field, false)? {
                    return Err(cx.unsupported(
                        &format!("{field}.single_word"),
                        format!("single_word = true for {content:?}"),
                    ));
                }
                let tok = AddedToken {
                    id,
                    special: cx.bool_field(obj, "special", &field, false)?,
                    lstrip: cx.bool_field(obj, "lstrip", &field, false)?,
                    rstrip: cx.bool_field(obj, "rstrip", &field, false)?,
                    content,
                };
                match vocab.get(&tok.content) {
                    Some(&existing) if existing != id => {
                        return Err(cx.invalid(
                            &field,
                            format!(
                                "{:?} has id {id} but the vocabulary gives it id {existing}",
                                tok.content
                            ),
                        ))
                    }
                    Some(_) => {}
                    None => {
                        put(cx, &mut id_to_token, id, &tok.content, &field)?;
                        vocab.insert(tok.content.clone(), id);
                    }
                }
                added.push(tok);
            }
        }
        Some(v) => {
            return Err(cx.invalid(
                "added_tokens",
                format!("expected an array, found {}", kind(v)),
            ))
        }
    }

    let pre = parse_pre_tokenizer(cx, root.get("pre_tokenizer").unwrap_or(&Value::Null))?;

    match root.get("decoder") {
        None | Some(Value::Null) => {}
        Some(v) if type_of(v) == Some("ByteLevel") => {}
        Some(v) => {
            return Err(cx.unsupported(
                "decoder",
                format!(
                    "decoder {} (only ByteLevel is supported)",
                    type_of(v).unwrap_or("?")
                ),
            ))
        }
    }

    let unk = match unk_token {
        None => None,
        Some(t) => Some(
            *vocab
                .get(&t)
                .ok_or_else(|| TokenizerError::MissingSpecialToken {
                    token: t.clone(),
                    location: Some(cx.path.to_path_buf()),
                })?,
        ),
    };
    ByteLevelBpe::from_parts(
        id_to_token,
        vocab,
        merges,
        added,
        pre,
        ignore_merges,
        unk,
        fuse_unk,
    )
}

/// Records `tok` at `id`, rejecting two different tokens with the same id.
fn put(
    cx: &Ctx<'_>,
    id_to_token: &mut Vec<Option<String>>,
    id: u32,
    tok: &str,
    field: &str,
) -> Result<(), TokenizerError> {
    let idx = id as usize;
    if idx >= id_to_token.len() {
        id_to_token.resize(idx + 1, None);
    }
    if let Some(slot) = id_to_token.get_mut(idx) {
        if let Some(other) = slot {
            if other != tok {
                return Err(cx.invalid(
                    field,
                    format!("id {id} is given to both {other:?} and {tok:?}"),
                ));
            }
        }
        *slot = Some(tok.to_owned());
    }
    Ok(())
}

fn byte_level_flags(cx: &Ctx<'_>, v: &Value, field: &str) -> Result<bool, TokenizerError> {
    let obj = cx.object(v, field)?;
    if cx.bool_field(obj, "add_prefix_space", field, false)? {
        return Err(cx.unsupported(
            &format!("{field}.add_prefix_space"),
            "ByteLevel add_prefix_space = true",
        ));
    }
    cx.bool_field(obj, "use_regex", field, true)
}

fn parse_pre_tokenizer(cx: &Ctx<'_>, v: &Value) -> Result<PreTokenizer, TokenizerError> {
    let field = "pre_tokenizer";
    let describe = |v: &Value| -> String {
        match v.get("pretokenizers").and_then(Value::as_array) {
            Some(steps) => format!(
                "Sequence[{}]",
                steps
                    .iter()
                    .map(|s| type_of(s).unwrap_or("?"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => type_of(v).unwrap_or("null").to_owned(),
        }
    };
    let unsupported = || {
        cx.unsupported(
            field,
            format!(
                "pre-tokenizer {} (supported: ByteLevel(use_regex), Sequence[Digits(individual_digits), ByteLevel(use_regex)], Sequence[Split(Regex, Isolated), ByteLevel(use_regex=false)])",
                describe(v)
            ),
        )
    };
    match type_of(v) {
        Some("ByteLevel") => {
            if byte_level_flags(cx, v, field)? {
                Ok(PreTokenizer::Gpt2)
            } else {
                Err(cx.unsupported(
                    field,
                    "ByteLevel with use_regex = false and no Split before it",
                ))
            }
        }
        Some("Sequence") => {
            let steps = v
                .get("pretokenizers")
                .and_then(Value::as_array)
                .ok_or_else(|| {
                    cx.invalid("pre_tokenizer.pretokenizers", "missing or not an array")
                })?;
            match steps.as_slice() {
                [first, second]
                    if type_of(first) == Some("Digits") && type_of(second) == Some("ByteLevel") =>
                {
                    let f = "pre_tokenizer.pretokenizers[0]";
                    if !cx.bool_field(cx.object(first, f)?, "individual_digits", f, false)? {
                        return Err(cx.unsupported(f, "Digits with individual_digits = false"));
                    }
                    if !byte_level_flags(cx, second, "pre_tokenizer.pretokenizers[1]")? {
                        return Err(cx.unsupported(
                            "pre_tokenizer.pretokenizers[1]",
                            "ByteLevel use_regex = false after Digits",
                        ));
                    }
                    Ok(PreTokenizer::SmolLm)
                }
                [first, second]
                    if type_of(first) == Some("Split") && type_of(second) == Some("ByteLevel") =>
                {
                    let f = "pre_tokenizer.pretokenizers[0]";
                    let split = cx.object(first, f)?;
                    let pattern = split
                        .get("pattern")
                        .and_then(|p| p.get("Regex"))
                        .and_then(Value::as_str)
                        .ok_or_else(|| {
                            cx.unsupported(
                                &format!("{f}.pattern"),
                                "Split pattern must be {\"Regex\": ...}",
                            )
                        })?;
                    let behavior = cx.str_field(split, "behavior", f)?;
                    if behavior != "Isolated" {
                        return Err(cx.unsupported(
                            &format!("{f}.behavior"),
                            format!("Split behavior {behavior:?} (only \"Isolated\")"),
                        ));
                    }
                    if cx.bool_field(split, "invert", f, false)? {
                        return Err(cx.unsupported(&format!("{f}.invert"), "Split invert = true"));
                    }
                    if byte_level_flags(cx, second, "pre_tokenizer.pretokenizers[1]")? {
                        return Err(cx.unsupported(
                            "pre_tokenizer.pretokenizers[1]",
                            "ByteLevel use_regex = true after Split",
                        ));
                    }
                    Ok(match pattern {
                        p if p == LLAMA3_PATTERN => PreTokenizer::Llama3,
                        p if p == GPT2_PATTERN => PreTokenizer::Gpt2,
                        p => PreTokenizer::Regex(p.to_owned()),
                    })
                }
                _ => Err(unsupported()),
            }
        }
        _ => Err(unsupported()),
    }
}
