//! Byte-level BPE (GPT-2 / SmolLM2 / Llama 3 families).
//!
//! Encoding runs the same pipeline as Hugging Face `tokenizers` for these models:
//!
//! 1. added / special tokens written literally in the text (e.g. `<|im_start|>`) are cut out
//!    first (leftmost, longest match) and map straight to their ids;
//! 2. each remaining span is split by the [`PreTokenizer`];
//! 3. each piece is taken as UTF-8 bytes, each byte is one initial symbol (the GPT-2
//!    byte-to-unicode alphabet, see [`crate::byte_level`]; a byte whose symbol is not in the
//!    vocabulary becomes the unknown token if there is one and is dropped otherwise, as in
//!    Hugging Face — SmolLM2 lacks 21 of the 256 byte symbols, e.g. 0x04), and adjacent symbols are merged by
//!    merge rank — always the lowest-ranked pair present, leftmost first on ties — until no
//!    merge applies. With `ignore_merges` a piece that is itself a vocabulary token is emitted
//!    whole first.
//!
//! Results per piece are cached (up to [`CACHE_CAPACITY`] pieces), so repeated words cost one
//! hash lookup.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::RwLock;

use crate::byte_level::{byte_level_decode_into, byte_level_encode, byte_to_char_table};
use crate::error::TokenizerError;
use crate::pretokenizer::{CompiledPreTokenizer, PreTokenizer};
use crate::Tokenizer;

/// Most pieces kept in the per-tokenizer BPE cache (as in Hugging Face `tokenizers`).
pub const CACHE_CAPACITY: usize = 10_000;
/// Pieces longer than this many bytes are not cached.
const CACHE_MAX_PIECE_LEN: usize = 256;

/// A fast hasher for the `(u32, u32)` merge keys (FxHash-style multiply-rotate); the keys
/// are vocabulary ids, not attacker-chosen strings, so SipHash's DoS resistance is not needed.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PairHasher(u64);

impl std::hash::Hasher for PairHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type PairMap = HashMap<(u32, u32), (u32, u32), std::hash::BuildHasherDefault<PairHasher>>;

/// A token that is matched literally in the input before pre-tokenization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedToken {
    /// The literal text.
    pub content: String,
    /// Its id.
    pub id: u32,
    /// Whether it is a special (control) token, as opposed to a user-defined added token.
    pub special: bool,
    /// Also swallow whitespace to the left of a match.
    pub lstrip: bool,
    /// Also swallow whitespace to the right of a match.
    pub rstrip: bool,
}

impl AddedToken {
    /// A special token with no stripping.
    pub fn special(content: impl Into<String>, id: u32) -> Self {
        Self {
            content: content.into(),
            id,
            special: true,
            lstrip: false,
            rstrip: false,
        }
    }
}

/// GPT-2-style byte-level BPE tokenizer.
#[derive(Debug)]
pub struct ByteLevelBpe {
    vocab: HashMap<String, u32>,
    id_to_token: Vec<Option<String>>,
    /// (left id, right id) -> (rank, merged id)
    merges: PairMap,
    n_merges: usize,
    /// Id of each byte's symbol; `None` where the vocabulary lacks it.
    byte_ids: [Option<u32>; 256],
    /// Id used for bytes without a symbol (tokenizer.json `model.unk_token`); dropped if `None`.
    unk: Option<u32>,
    /// Fuse consecutive unknown bytes into one unknown token.
    fuse_unk: bool,
    /// Sorted by decreasing content length, so the first match at a position is the longest.
    added: Vec<AddedToken>,
    added_first_byte: [bool; 256],
    pre: CompiledPreTokenizer,
    ignore_merges: bool,
    cache: RwLock<HashMap<String, Vec<u32>>>,
}

enum Segment<'a> {
    Text(&'a str),
    Added(u32),
}

impl ByteLevelBpe {
    /// Builds a tokenizer from a token list (id = position), merge rules `"left right"` in rank
    /// order, and the special tokens to match literally in text (each must be in `tokens`).
    ///
    /// `ignore_merges` is set from [`PreTokenizer::default_ignore_merges`] (true for Llama 3);
    /// change it with [`with_ignore_merges`](Self::with_ignore_merges).
    /// If a token string occurs twice, the later id wins for `token_to_id` (as in llama.cpp).
    ///
    /// # Errors
    /// [`TokenizerError::EmptyVocab`], [`TokenizerError::MalformedMerge`],
    /// [`TokenizerError::MergeUnknownToken`], [`TokenizerError::MissingSpecialToken`],
    /// [`TokenizerError::Regex`].
    ///
    /// Bytes whose symbol is missing from `tokens` are dropped when encoding (there is no
    /// unknown token), as Hugging Face and llama.cpp do; see [`missing_bytes`](Self::missing_bytes).
    pub fn new(
        tokens: Vec<String>,
        merges: Vec<String>,
        special_tokens: Vec<String>,
        pre: PreTokenizer,
    ) -> Result<Self, TokenizerError> {
        let ignore_merges = pre.default_ignore_merges();
        let vocab = vocab_from_list(&tokens);
        let mut added = Vec::with_capacity(special_tokens.len());
        for s in special_tokens {
            let id = *vocab
                .get(&s)
                .ok_or_else(|| TokenizerError::MissingSpecialToken {
                    token: s.clone(),
                    location: None,
                })?;
            added.push(AddedToken::special(s, id));
        }
        let pairs = parse_merge_strings(merges)?;
        Self::from_parts(
            tokens.into_iter().map(Some).collect(),
            vocab,
            pairs,
            added,
            pre,
            ignore_merges,
            None,
            false,
        )
    }

    /// Builds a tokenizer from GGUF tokenizer metadata: `tokenizer.ggml.tokens`,
    /// `tokenizer.ggml.merges`, `tokenizer.ggml.token_type` and `tokenizer.ggml.pre`.
    ///
    /// Tokens of type 3 (control) and 4 (user defined) are matched literally in the text.
    /// Without `token_types` no token is matched literally. `pre_name` is mapped with
    /// [`PreTokenizer::from_gguf_pre`]; `ignore_merges` follows llama.cpp (true for the Llama 3
    /// names).
    ///
    /// # Errors
    /// As [`new`](Self::new), plus [`TokenizerError::UnknownPreTokenizer`] and
    /// [`TokenizerError::TokenTypesLength`].
    pub fn from_gguf_metadata(
        tokens: Vec<String>,
        merges: Vec<String>,
        token_types: Option<Vec<i64>>,
        pre_name: &str,
    ) -> Result<Self, TokenizerError> {
        let pre = PreTokenizer::from_gguf_pre(pre_name)?;
        let specials = match token_types {
            None => Vec::new(),
            Some(types) => {
                if types.len() != tokens.len() {
                    return Err(TokenizerError::TokenTypesLength {
                        tokens: tokens.len(),
                        types: types.len(),
                    });
                }
                tokens
                    .iter()
                    .zip(&types)
                    .filter(|(_, &t)| t == 3 || t == 4)
                    .map(|(tok, _)| tok.clone())
                    .collect()
            }
        };
        // Special tokens are looked up by string; with duplicates the later id wins, as for
        // every other token.
        Self::new(tokens, merges, specials, pre)
    }

    /// Shared constructor: `id_to_token` may have holes (ids without a token).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_parts(
        id_to_token: Vec<Option<String>>,
        vocab: HashMap<String, u32>,
        merges: Vec<(String, String)>,
        mut added: Vec<AddedToken>,
        pre: PreTokenizer,
        ignore_merges: bool,
        unk: Option<u32>,
        fuse_unk: bool,
    ) -> Result<Self, TokenizerError> {
        if vocab.is_empty() {
            return Err(TokenizerError::EmptyVocab);
        }
        let table = byte_to_char_table();
        let mut byte_ids = [None; 256];
        for (slot, symbol) in byte_ids.iter_mut().zip(table.iter()) {
            *slot = vocab
                .get(symbol.encode_utf8(&mut [0u8; 4]) as &str)
                .copied();
        }
        let n_merges = merges.len();
        let mut merge_map = PairMap::with_capacity_and_hasher(merges.len(), Default::default());
        for (rank, (a, b)) in merges.into_iter().enumerate() {
            let merge = || format!("{a} {b}");
            let unknown = |token: &str| TokenizerError::MergeUnknownToken {
                index: rank,
                merge: merge(),
                token: token.to_owned(),
            };
            let left = *vocab.get(&a).ok_or_else(|| unknown(&a))?;
            let right = *vocab.get(&b).ok_or_else(|| unknown(&b))?;
            let joined = format!("{a}{b}");
            let new_id = *vocab.get(&joined).ok_or_else(|| unknown(&joined))?;
            let rank = u32::try_from(rank).map_err(|_| TokenizerError::MalformedMerge {
                index: rank,
                merge: merge(),
            })?;
            merge_map.insert((left, right), (rank, new_id));
        }
        added.retain(|a| !a.content.is_empty());
        added.sort_by(|x, y| y.content.len().cmp(&x.content.len()).then(x.id.cmp(&y.id)));
        let mut added_first_byte = [false; 256];
        for a in &added {
            if let Some(&b) = a.content.as_bytes().first() {
                added_first_byte[usize::from(b)] = true;
            }
        }
        Ok(Self {
            vocab,
            id_to_token,
            merges: merge_map,
            n_merges,
            byte_ids,
            unk,
            fuse_unk,
            added,
            added_first_byte,
            pre: pre.compile()?,
            ignore_merges,
            cache: RwLock::new(HashMap::new()),
        })
    }

    /// Sets `ignore_merges`: when true, a pre-token that is itself in the vocabulary is emitted
    /// as that single token without running merges (Llama 3 behaviour).
    pub fn with_ignore_merges(mut self, ignore_merges: bool) -> Self {
        if ignore_merges != self.ignore_merges {
            self.ignore_merges = ignore_merges;
            if let Ok(mut c) = self.cache.write() {
                c.clear();
            }
        }
        self
    }

    /// Whether `ignore_merges` is on.
    pub fn ignore_merges(&self) -> bool {
        self.ignore_merges
    }

    /// The pre-tokenizer in use.
    pub fn pre_tokenizer(&self) -> &PreTokenizer {
        self.pre.kind()
    }

    /// Number of merge rules.
    pub fn num_merges(&self) -> usize {
        self.n_merges
    }

    /// The tokens matched literally in text (special and user-defined added tokens).
    pub fn added_tokens(&self) -> &[AddedToken] {
        &self.added
    }

    /// The byte values whose byte-level symbol is not in the vocabulary (encoding drops them,
    /// or maps them to the unknown token when the tokenizer has one).
    pub fn missing_bytes(&self) -> Vec<u8> {
        (0..=255u8)
            .filter(|&b| self.byte_ids[usize::from(b)].is_none())
            .collect()
    }

    /// Whether `id` is an added / special token.
    pub fn is_added_token(&self, id: u32) -> bool {
        self.added.iter().any(|a| a.id == id)
    }

    /// Cuts `text` at literal occurrences of added tokens (leftmost, then longest).
    fn split_added<'a>(&self, text: &'a str) -> Vec<Segment<'a>> {
        let mut segs = Vec::new();
        if self.added.is_empty() {
            segs.push(Segment::Text(text));
            return segs;
        }
        let bytes = text.as_bytes();
        let mut text_start = 0;
        let mut i = 0;
        while i < bytes.len() {
            let starts_token =
                self.added_first_byte[usize::from(bytes[i])] && text.is_char_boundary(i);
            if starts_token {
                let rest = &text[i..];
                if let Some(tok) = self
                    .added
                    .iter()
                    .find(|a| rest.starts_with(a.content.as_str()))
                {
                    let mut start = i;
                    let mut end = i + tok.content.len();
                    if tok.lstrip {
                        start = text_start + text[text_start..i].trim_end().len();
                    }
                    if tok.rstrip {
                        let after = &text[end..];
                        end += after.len() - after.trim_start().len();
                    }
                    if start > text_start {
                        segs.push(Segment::Text(&text[text_start..start]));
                    }
                    segs.push(Segment::Added(tok.id));
                    i = end;
                    text_start = end;
                    continue;
                }
            }
            i += 1;
        }
        if text_start < text.len() {
            segs.push(Segment::Text(&text[text_start..]));
        }
        segs
    }

    /// BPE over one pre-token, appending ids to `out`.
    fn encode_piece(&self, piece: &str, out: &mut Vec<u32>) {
        if piece.is_empty() {
            return;
        }
        let cacheable = piece.len() <= CACHE_MAX_PIECE_LEN;
        if cacheable {
            if let Ok(cache) = self.cache.read() {
                if let Some(ids) = cache.get(piece) {
                    out.extend_from_slice(ids);
                    return;
                }
            }
        }
        let ids = self.bpe(piece);
        out.extend_from_slice(&ids);
        if cacheable {
            if let Ok(mut cache) = self.cache.write() {
                if cache.len() < CACHE_CAPACITY {
                    cache.insert(piece.to_owned(), ids);
                }
            }
        }
    }

    fn bpe(&self, piece: &str) -> Vec<u32> {
        if self.ignore_merges {
            if let Some(&id) = self.vocab.get(&byte_level_encode(piece)) {
                return vec![id];
            }
        }
        // Initial symbols: one per byte; bytes without a symbol become `unk` or are dropped.
        let mut initial: Vec<u32> = Vec::with_capacity(piece.len());
        let mut last_was_unk = false;
        for &b in piece.as_bytes() {
            match (self.byte_ids[usize::from(b)], self.unk) {
                (Some(id), _) => {
                    initial.push(id);
                    last_was_unk = false;
                }
                (None, Some(unk)) => {
                    if !(self.fuse_unk && last_was_unk) {
                        initial.push(unk);
                    }
                    last_was_unk = true;
                }
                (None, None) => {}
            }
        }
        if initial.len() <= 1 {
            return initial;
        }
        // Doubly linked list of symbols; `alive == false` once merged into the left neighbour.
        struct Sym {
            id: u32,
            prev: usize,
            next: usize,
            alive: bool,
        }
        const NONE: usize = usize::MAX;
        let n = initial.len();
        let mut syms: Vec<Sym> = initial
            .iter()
            .enumerate()
            .map(|(i, &id)| Sym {
                id,
                prev: if i == 0 { NONE } else { i - 1 },
                next: if i + 1 == n { NONE } else { i + 1 },
                alive: true,
            })
            .collect();
        // Min-heap on (rank, position): lowest rank first, leftmost on ties.
        let mut heap: BinaryHeap<Reverse<(u32, usize, u32)>> = BinaryHeap::with_capacity(n);
        for i in 0..n - 1 {
            if let Some(&(rank, new_id)) = self.merges.get(&(syms[i].id, syms[i + 1].id)) {
                heap.push(Reverse((rank, i, new_id)));
            }
        }
        while let Some(Reverse((_, pos, new_id))) = heap.pop() {
            let (left_id, next, prev, alive) = {
                let s = &syms[pos];
                (s.id, s.next, s.prev, s.alive)
            };
            if !alive || next == NONE {
                continue;
            }
            let right_id = syms[next].id;
            match self.merges.get(&(left_id, right_id)) {
                Some(&(_, id)) if id == new_id => {}
                _ => continue, // stale entry
            }
            let after = syms[next].next;
            syms[next].alive = false;
            syms[pos].id = new_id;
            syms[pos].next = after;
            if after != NONE {
                syms[after].prev = pos;
            }
            if prev != NONE {
                if let Some(&(rank, id)) = self.merges.get(&(syms[prev].id, new_id)) {
                    heap.push(Reverse((rank, prev, id)));
                }
            }
            if after != NONE {
                if let Some(&(rank, id)) = self.merges.get(&(new_id, syms[after].id)) {
                    heap.push(Reverse((rank, pos, id)));
                }
            }
        }
        let mut ids = Vec::new();
        let mut cur = 0;
        while cur != NONE {
            ids.push(syms[cur].id);
            cur = syms[cur].next;
        }
        ids
    }
}

/// token -> id for a token list where the id is the position (later duplicates win).
fn vocab_from_list(tokens: &[String]) -> HashMap<String, u32> {
    tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect()
}

/// Parses `"left right"` merge strings (exactly one space, as Hugging Face requires).
pub(crate) fn parse_merge_strings(
    merges: Vec<String>,
) -> Result<Vec<(String, String)>, TokenizerError> {
    merges
        .into_iter()
        .enumerate()
        .map(|(index, m)| match m.split_once(' ') {
            Some((a, b)) if !a.is_empty() && !b.is_empty() && !b.contains(' ') => {
                Ok((a.to_owned(), b.to_owned()))
            }
            _ => Err(TokenizerError::MalformedMerge { index, merge: m }),
        })
        .collect()
}

impl Tokenizer for ByteLevelBpe {
    fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let mut ids = Vec::with_capacity(text.len() / 3 + 1);
        let mut pieces = Vec::new();
        for seg in self.split_added(text) {
            match seg {
                Segment::Added(id) => ids.push(id),
                Segment::Text(t) => {
                    pieces.clear();
                    self.pre.split_into(t, &mut pieces)?;
                    for p in &pieces {
                        self.encode_piece(p, &mut ids);
                    }
                }
            }
        }
        Ok(ids)
    }

    fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            let tok = self.id_to_token(id).ok_or(TokenizerError::UnknownId {
                id: u64::from(id),
                vocab_size: self.vocab_size(),
            })?;
            byte_level_decode_into(tok, &mut bytes);
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.vocab.get(token).copied()
    }

    fn id_to_token(&self, id: u32) -> Option<&str> {
        self.id_to_token.get(usize::try_from(id).ok()?)?.as_deref()
    }

    fn vocab_size(&self) -> usize {
        self.id_to_token.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// All 256 byte symbols, then extra tokens.
    fn byte_vocab(extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = byte_to_char_table().iter().map(|c| c.to_string()).collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    }

    #[test]
    fn merges_apply_by_rank() {
        // "abc": merges "b c" (rank 0) before "a b" (rank 1) -> a, bc
        let toks = byte_vocab(&["ab", "bc", "abc"]);
        let bpe = ByteLevelBpe::new(
            toks,
            vec!["b c".into(), "a b".into(), "a bc".into()],
            vec![],
            PreTokenizer::Gpt2,
        )
        .unwrap();
        let ids = bpe.encode("abc").unwrap();
        assert_eq!(ids, vec![bpe.token_to_id("abc").unwrap()]);
        let bpe2 = ByteLevelBpe::new(
            byte_vocab(&["ab", "bc"]),
            vec!["b c".into(), "a b".into()],
            vec![],
            PreTokenizer::Gpt2,
        )
        .unwrap();
        let ids = bpe2.encode("abc").unwrap();
        assert_eq!(
            ids,
            vec![
                bpe2.token_to_id("a").unwrap(),
                bpe2.token_to_id("bc").unwrap()
            ]
        );
    }

    #[test]
    fn repeated_pairs_merge_left_to_right() {
        let bpe = ByteLevelBpe::new(
            byte_vocab(&["aa"]),
            vec!["a a".into()],
            vec![],
            PreTokenizer::Gpt2,
        )
        .unwrap();
        let aa = bpe.token_to_id("aa").unwrap();
        let a = bpe.token_to_id("a").unwrap();
        assert_eq!(bpe.encode("aaa").unwrap(), vec![aa, a]);
        assert_eq!(bpe.encode("aaaa").unwrap(), vec![aa, aa]);
    }

    #[test]
    fn special_tokens_longest_match_and_roundtrip() {
        let bpe = ByteLevelBpe::new(
            byte_vocab(&["<s>", "<s>x"]),
            vec![],
            vec!["<s>".into(), "<s>x".into()],
            PreTokenizer::Gpt2,
        )
        .unwrap();
        let ids = bpe.encode("a<s>x<s>").unwrap();
        assert_eq!(
            ids,
            vec![
                bpe.token_to_id("a").unwrap(),
                bpe.token_to_id("<s>x").unwrap(),
                bpe.token_to_id("<s>").unwrap()
            ]
        );
        assert_eq!(bpe.decode(&ids).unwrap(), "a<s>x<s>");
    }

    #[test]
    fn decode_unknown_id_is_an_error() {
        let bpe = ByteLevelBpe::new(byte_vocab(&[]), vec![], vec![], PreTokenizer::Gpt2).unwrap();
        assert!(matches!(
            bpe.decode(&[9999]),
            Err(TokenizerError::UnknownId { id: 9999, .. })
        ));
    }
}
