#!/usr/bin/env python3
"""Generate the reference fixtures that the `kn-tokenizer` crate is tested against.

Run with the reference Python environment (torch, transformers 5.x, tokenizers 0.23, gguf):

    /tmp/pyref/bin/python scripts/reference/make_tokenizer_fixtures.py

It writes (paths relative to the repository root):

* ``fixtures/tokenizer/smollm2-tokenizer.json`` -- the SmolLM2 tokenizer (vocabulary, merges,
  added tokens, original pre-tokenizer) in Hugging Face ``tokenizer.json`` format, produced by
  the ``tokenizers`` library from the GGUF metadata (written compactly, merges as ``"a b"``).
* ``fixtures/golden/smollm2_tokens.json`` -- Hugging Face token ids for >= 600 PARAREL causal-LM
  prompts plus hard strings, and the ids of ``" " + object`` for each.
* ``fixtures/tokenizer/pretokenizer_golden.json`` -- pre-tokenizer splits (GPT-2, SmolLM,
  Llama-3) and ids for a Llama-3-style pipeline (ignore_merges) over the SmolLM2 vocabulary.
* ``fixtures/tokenizer/bert-vocab-cased.txt``, ``fixtures/tokenizer/bert-vocab-uncased.txt`` --
  small WordPiece vocabularies built here (deterministically) from PARAREL text.
* ``fixtures/golden/wordpiece_tokens.json`` -- ``transformers.BertTokenizer`` ids (cased and
  uncased) for ~100 masked PARAREL prompts plus hard strings.

Choice of the SmolLM2 reference
-------------------------------
The model is a GGUF file (``tokenizer.ggml.model = gpt2``, ``tokenizer.ggml.pre = smollm``).
The original SmolLM2 ``tokenizer.json`` pre-tokenizer is
``Sequence[Digits(individual_digits=true), ByteLevel(add_prefix_space=false, use_regex=true)]``
and llama.cpp's ``LLAMA_VOCAB_PRE_TYPE_SMOLLM`` does the same (``\\p{N}`` split, then the GPT-2
regex). ``transformers``' GGUF conversion (checked below, at run time) builds a plain
``ByteLevel`` pre-tokenizer without the ``Digits`` step, so it does NOT reproduce the original
tokenizer: e.g. ``"a  1"`` (two spaces before a digit) differs. The script therefore builds the
reference with the ``tokenizers`` library from the GGUF vocabulary/merges/token types and the
original pre-tokenizer config, and only falls back to the ``transformers`` GGUF tokenizer if a
future version reproduces the Digits step. The decision, and how many fixture strings the two
disagree on, are recorded in the fixture's ``reference`` object.

Note on ``transformers.BertTokenizer`` (5.x): ``BertTokenizer(vocab_file=...)`` silently ignores
the file and builds a 5-token vocabulary; this script uses ``BertTokenizer.from_pretrained(dir)``
and checks that the loaded vocabulary has the expected size.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

import gguf
import tokenizers
import transformers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers, processors

ROOT = Path(__file__).resolve().parents[2]
SEED = 20261126
N_CAUSAL_PER_RELATION = 19  # 34 relations x 19 = 646 PARAREL prompts
N_MASKED = 102  # 34 relations x 3
MAX_TOKENIZER_JSON_BYTES = 2 * 1024 * 1024

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# transformers' own Qwen2 split (the one its GGUF loader uses for `tokenizer.ggml.pre = qwen2`).
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX as QWEN2_PATTERN  # noqa: E402

# Hard strings for the byte-level BPE: (text, answer object).
HARD_CAUSAL = [
    ("The year 1984 was", "good"),
    ("In 2024, the population of São Paulo was", "12"),
    ("São Paulo is located in", "Brazil"),
    ("Zürich's  oldest   bridge is", "old"),
    ("The mayor of Paris's", "office"),
    ("I'M SURE it's what they'VE said, we'll see, you'd", "know"),
    ("line one\nline two\n\nline  three", "is"),
    ("tab\tseparated\tvalues", "are"),
    ("windows\r\nline endings\r\n", "are"),
    ("   leading spaces", "x"),
    ("trailing spaces   ", "x"),
    ("x  1984", "y"),
    ("a  1 and  22 and   333", "b"),
    ("12345678901234567890", "1"),
    ("3.14159 and 2,718 and 1e10", "0"),
    ("Numbers like ١٢٣ and ² and ½ and Ⅻ", "x"),
    ("Emoji 😀 and 👍🏽 and flags 🇫🇷🇩🇪", "ok"),
    ("Family: 👨‍👩‍👧‍👦", "ok"),
    ("東京は日本の首都です", "。"),
    ("北京是中国的首都", "。"),
    ("서울은 한국의 수도이다", "."),
    ("Москва — столица России", "."),
    ("Αθήνα είναι η πρωτεύουσα", "της"),
    ("القاهرة هي عاصمة", "مصر"),
    ("naïve café résumé coöperate", "x"),
    ("Straße in Köln, Ærø, Œuvre, ﬁne ligature", "x"),
    ("combining e\u0301 vs é", "x"),
    ("curly ’s and ‘quotes’ and “double”", "x"),
    ("em—dash and en–dash and … ellipsis", "x"),
    ("$100 + €50 = ¥10,000 (approx.)", "x"),
    ("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n", "Paris"),
    ("text<|endoftext|>more text", "x"),
    ("<|im_start|><|im_end|>", "x"),
    ("<|im_start", "x"),
    ("[MASK] is not special here", "x"),
    ("don't can't won't shouldn't", "x"),
    ("'s 't 're 've 'm 'll 'd 'S 'T", "x"),
    ("C++ and C# and F# and .NET", "x"),
    ("https://example.com/path?q=1&r=2#frag", "x"),
    ("user@example.com", "x"),
    ("snake_case and camelCase and kebab-case", "x"),
    ("\u00a0non-breaking\u00a0space and\u2009thin space", "x"),
    ("zero\u200bwidth", "x"),
    ("", "empty"),
    (" ", "space"),
    ("\n", "newline"),
    ("!!!???...", "x"),
    ("Ünïcödé ÄÖÜ äöü ß", "x"),
    ("Hello world", "!"),
    # Bytes whose byte-level symbol is not in the SmolLM2 vocabulary (0x04, 0x06, 0x13, 0x14,
    # 0x16, 0x1d; lead bytes 0xf1/0xf2 of planes 4-11): Hugging Face drops them silently.
    ("ctrl\x04char\x06 \x13\x14\x16\x1d end", "x"),
    ("plane four \U00040000 and eleven \U000B0001 here", "x"),
]

# Hard strings for WordPiece (masked).
HARD_MASKED = [
    "São Paulo is the capital of [MASK].",
    "[MASK]'s  capital\tis\nParis",
    "Tokyo 東京 is located in [MASK] .",
    "The year 1984 [MASK] 2001",
    "naïve café [MASK] résumé",
    "a[MASK]b",
    "[mask] is lowercase",
    "[MASK][MASK] [SEP] [CLS] [PAD] [UNK]",
    "€5 costs [MASK] ° —",
    "emoji 😀 [MASK]",
    "control\x01char and\x7fdelete [MASK]",
    "Straße in Köln [MASK]",
    "Ærø and Œuvre [MASK]",
    "don't can't [MASK]'s",
    "[MASK]",
    "",
    "   ",
    "x" * 150 + " [MASK]",
    "Supercalifragilisticexpialidocious [MASK]",
    "curly ’s “double” [MASK]",
    "Москва — столица [MASK]",
    "combining e\u0301 vs é [MASK]",
    "3.14159 and 2,718 [MASK]",
    "C++ and C# [MASK]",
    "https://example.com/path?q=1 [MASK]",
]


def load_pararel(pararel_dir: Path):
    """Return ({relation: [template, ...]}, {relation: [[subject, object], ...]})."""
    pairs = json.loads((pararel_dir / "query_pairs.json").read_text(encoding="utf-8"))
    templates = {}
    for rel in sorted(pairs):
        path = pararel_dir / "patterns" / f"{rel}.jsonl"
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        templates[rel] = [r["pattern"] for r in rows]
    return templates, pairs


CAUSAL_RE = re.compile(r"^(?P<prefix>.*)\[Y\]\s*\.?\s*$", re.DOTALL)


def causal_prefix(template: str) -> str | None:
    """The part of a template before a final [Y] (a trailing '.' or ' .' may follow)."""
    if template.count("[Y]") != 1 or "[X]" not in template:
        return None
    m = CAUSAL_RE.match(template)
    if m is None or "[X]" not in m.group("prefix"):
        return None
    return m.group("prefix")


def sample_causal(templates, pairs, rng):
    out = []
    for rel in sorted(pairs):
        causal = [t for t in templates[rel] if causal_prefix(t) is not None]
        if not causal:
            continue
        facts = rng.sample(pairs[rel], min(N_CAUSAL_PER_RELATION, len(pairs[rel])))
        order = causal[:]
        rng.shuffle(order)
        for k, (subj, obj) in enumerate(facts):
            tmpl = order[k % len(order)]
            prompt = causal_prefix(tmpl).replace("[X]", subj).rstrip()
            out.append({"kind": "pararel", "relation": rel, "template": tmpl, "subject": subj,
                        "object": obj, "prompt": prompt})
    return out


def sample_masked(templates, pairs, rng, n_per_rel):
    out = []
    for rel in sorted(pairs):
        facts = rng.sample(pairs[rel], n_per_rel)
        for subj, obj in facts:
            tmpl = rng.choice(templates[rel])
            prompt = tmpl.replace("[X]", subj).replace("[Y]", "[MASK]")
            out.append({"kind": "pararel", "relation": rel, "template": tmpl, "subject": subj,
                        "object": obj, "prompt": prompt})
    return out


# --------------------------------------------------------------------------------------------
# SmolLM2 (byte-level BPE)
# --------------------------------------------------------------------------------------------

def read_gguf_tokenizer(path: Path):
    reader = gguf.GGUFReader(str(path))

    def scalar_str(key):
        f = reader.fields[key]
        return bytes(f.parts[f.data[0]]).decode("utf-8")

    def str_array(key):
        f = reader.fields[key]
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    def int_array(key):
        f = reader.fields[key]
        return [int(f.parts[i][0]) for i in f.data]

    meta = {
        "model": scalar_str("tokenizer.ggml.model"),
        "pre": scalar_str("tokenizer.ggml.pre"),
        "tokens": str_array("tokenizer.ggml.tokens"),
        "merges": str_array("tokenizer.ggml.merges"),
        "token_type": int_array("tokenizer.ggml.token_type"),
    }
    return meta


def smollm_pre_tokenizer():
    return pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])


def build_bpe(meta, pre_tokenizer, ignore_merges=False) -> Tokenizer:
    vocab = {tok: i for i, tok in enumerate(meta["tokens"])}
    merges = [tuple(m.split(" ")) for m in meta["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, dropout=None, unk_token=None,
                               fuse_unk=False, byte_fallback=False, ignore_merges=ignore_merges))
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizer
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.decoder = decoders.ByteLevel()
    specials = [AddedToken(t, special=True, normalized=False, lstrip=False, rstrip=False, single_word=False)
                for t, ty in zip(meta["tokens"], meta["token_type"]) if ty in (3, 4)]
    tok.add_special_tokens(specials)
    for t, ty in zip(meta["tokens"], meta["token_type"]):
        if ty in (3, 4):
            assert tok.token_to_id(t) == meta["tokens"].index(t), t
    assert tok.get_vocab_size(with_added_tokens=True) == len(meta["tokens"])
    return tok


def transformers_gguf_tokenizer(gguf_path: Path):
    from transformers import AutoTokenizer
    t = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    backend = json.loads(t.backend_tokenizer.to_str())
    pre = backend.get("pre_tokenizer")
    reproduces = (
        isinstance(pre, dict) and pre.get("type") == "Sequence"
        and any(p.get("type") == "Digits" and p.get("individual_digits") for p in pre.get("pretokenizers", []))
    )
    return t, pre, reproduces


def transformers_gguf_byte_level(meta, architecture: str, pre: str) -> Tokenizer:
    """The tokenizer transformers' GGUF loader builds from these byte-level BPE metadata, as if a
    file of `architecture` named the pre-tokenizer `pre`."""
    from transformers.integrations.gguf.gguf_tokenizer_mapping import convert_gguf_tokenizer

    tokenizer_dict = {"tokenizer_type": "gpt2", "pre_tokenizer_type": pre, "tokens": meta["tokens"],
                      "merges": meta["merges"], "token_type": meta["token_type"]}
    backend, _ = convert_gguf_tokenizer(architecture, tokenizer_dict)
    return backend


def compact_tokenizer_json(tok: Tokenizer) -> str:
    """tokenizer.json text without indentation, merges as "a b" strings (no token has a space)."""
    data = json.loads(tok.to_str())
    merges = data["model"]["merges"]
    if all(isinstance(m, list) and len(m) == 2 and " " not in m[0] and " " not in m[1] for m in merges):
        data["model"]["merges"] = [f"{a} {b}" for a, b in merges]
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n"


def make_smollm2(args, templates, pairs):
    meta = read_gguf_tokenizer(args.gguf)
    assert meta["model"] == "gpt2" and meta["pre"] == "smollm", (meta["model"], meta["pre"])
    print(f"GGUF: {len(meta['tokens'])} tokens, {len(meta['merges'])} merges, pre={meta['pre']}")

    ref = build_bpe(meta, smollm_pre_tokenizer())
    hf_t, hf_pre, hf_reproduces = transformers_gguf_tokenizer(args.gguf)
    print(f"transformers GGUF pre_tokenizer: {json.dumps(hf_pre)} -> reproduces original: {hf_reproduces}")

    rng = random.Random(SEED)
    cases = sample_causal(templates, pairs, rng)
    n_pararel = len(cases)
    for text, obj in HARD_CAUSAL:
        cases.append({"kind": "hard", "relation": None, "template": None, "subject": None,
                      "object": obj, "prompt": text})

    if hf_reproduces:
        def encode(s):
            return hf_t.encode(s, add_special_tokens=False)

        def decode(ids):
            return hf_t.decode(ids)
        used = "transformers"
    else:
        def encode(s):
            return ref.encode(s, add_special_tokens=False).ids

        def decode(ids):
            return ref.decode(ids, skip_special_tokens=False)
        used = "tokenizers"

    disagreements = []
    for i, c in enumerate(cases):
        c["id"] = i
        c["prompt_ids"] = encode(c["prompt"])
        c["answer"] = " " + c["object"]
        c["answer_ids"] = encode(c["answer"])
        c["decoded"] = decode(c["prompt_ids"])
        a = ref.encode(c["prompt"], add_special_tokens=False).ids
        b = hf_t.encode(c["prompt"], add_special_tokens=False)
        if a != b:
            disagreements.append({"prompt": c["prompt"], "tokenizers_original_pre": a, "transformers_gguf": b})
    print(f"{len(cases)} cases ({n_pararel} PARAREL); transformers-GGUF disagrees with the original "
          f"pre-tokenizer on {len(disagreements)}")

    tok_json = compact_tokenizer_json(ref)
    size = len(tok_json.encode("utf-8"))
    print(f"smollm2-tokenizer.json: {size} bytes")
    if size > MAX_TOKENIZER_JSON_BYTES:
        sys.exit(f"smollm2-tokenizer.json would be {size} bytes (> 2 MiB): not writing it")
    (ROOT / "fixtures/tokenizer").mkdir(parents=True, exist_ok=True)
    (ROOT / "fixtures/tokenizer/smollm2-tokenizer.json").write_text(tok_json, encoding="utf-8")

    # Check that the committed JSON loads back to the same tokenizer.
    reloaded = Tokenizer.from_str(tok_json)
    for c in cases:
        assert reloaded.encode(c["prompt"], add_special_tokens=False).ids == ref.encode(
            c["prompt"], add_special_tokens=False).ids

    fixture = {
        "description": "Hugging Face token ids of PARAREL causal-LM prompts (and hard strings) for SmolLM2; "
                       "generated by scripts/reference/make_tokenizer_fixtures.py",
        "reference": {
            "used": used,
            "why": ("transformers' GGUF conversion builds pre_tokenizer ByteLevel only (no Digits(individual_digits)"
                    " step), which does not reproduce the original SmolLM2 tokenizer.json; the reference is the "
                    "`tokenizers` library with the GGUF vocabulary/merges/token types and the original pre-tokenizer "
                    "Sequence[Digits(individual_digits=true), ByteLevel(add_prefix_space=false, use_regex=true)]")
                   if used == "tokenizers" else
                   "transformers' GGUF conversion reproduces the original SmolLM2 pre-tokenizer",
            "gguf_file": args.gguf.name,
            "gguf_pre": meta["pre"],
            "gguf_model": meta["model"],
            "n_tokens": len(meta["tokens"]),
            "n_merges": len(meta["merges"]),
            "tokenizer_json": "fixtures/tokenizer/smollm2-tokenizer.json",
            "transformers_version": transformers.__version__,
            "tokenizers_version": tokenizers.__version__,
            "gguf_py_version": getattr(gguf, "__version__", "unknown"),
            "transformers_gguf_pre_tokenizer": hf_pre,
            "transformers_gguf_reproduces_original": hf_reproduces,
            "transformers_gguf_disagreements": len(disagreements),
            "transformers_gguf_disagreement_examples": disagreements[:5],
            "seed": SEED,
            "n_pararel_prompts": n_pararel,
            "n_hard_strings": len(cases) - n_pararel,
            "encode": "add_special_tokens=False; answer = ' ' + object",
        },
        "cases": cases,
    }
    write_json(ROOT / "fixtures/golden/smollm2_tokens.json", fixture)
    return meta, cases


def make_pretokenizer_golden(meta, causal_cases):
    gpt2 = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    smollm = smollm_pre_tokenizer()
    llama3 = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    llama3_tok = build_bpe(meta, llama3, ignore_merges=True)
    gpt2_tok = build_bpe(meta, gpt2)
    qwen2_tok = transformers_gguf_byte_level(meta, "qwen2", "qwen2")
    extra = [
        "I'M HERE, YOU'RE THERE, IT'S 'LL 'D", "Hello\r\n\r\nWorld", "a\n\n\n b", "  \n  x", "x \n",
        "1234567", "ab12cd345ef6789", "...hello???", "  ...  ", "a\u3000b", "tab\t\tx", "end with space ",
        "ｆｕｌｌｗｉｄｔｈ １２３", "x'sy 's", "é1é", "\u2028line sep\u2029", "\x00nul\x01ctl",
    ]
    strings = [t for t, _ in HARD_CAUSAL] + extra + [c["prompt"] for c in causal_cases[:646:11]]
    rows = []
    for s in strings:
        rows.append({
            "text": s,
            "gpt2": [p for p, _ in gpt2.pre_tokenize_str(s)],
            "smollm": [p for p, _ in smollm.pre_tokenize_str(s)],
            "llama3": [p for p, _ in llama3.pre_tokenize_str(s)],
            "ids_gpt2_pre": gpt2_tok.encode(s, add_special_tokens=False).ids,
            "ids_llama3_pre_ignore_merges": llama3_tok.encode(s, add_special_tokens=False).ids,
            "ids_qwen2_pre": qwen2_tok.encode(s, add_special_tokens=False).ids,
        })
    fixture = {
        "description": "Pre-tokenizer splits (byte-level mapped, as tokenizers' pre_tokenize_str returns them) and "
                       "ids over the SmolLM2 vocabulary with other pre-tokenizers; generated by "
                       "scripts/reference/make_tokenizer_fixtures.py",
        "tokenizers_version": tokenizers.__version__,
        "gpt2_pattern": GPT2_PATTERN,
        "llama3_pattern": LLAMA3_PATTERN,
        "qwen2_pattern": QWEN2_PATTERN,
        "ids_gpt2_pre": "SmolLM2 vocab+merges+special tokens, pre_tokenizer ByteLevel(use_regex=true)",
        "ids_llama3_pre_ignore_merges": "SmolLM2 vocab+merges+special tokens, pre_tokenizer "
                                        "Sequence[Split(llama3_pattern, isolated), ByteLevel(use_regex=false)], "
                                        "BPE ignore_merges=true",
        "ids_qwen2_pre": "SmolLM2 vocab+merges+token types as a qwen2 GGUF file with tokenizer.ggml.pre "
                         "'qwen2', built by transformers' own GGUF loader (convert_gguf_tokenizer)",
        "rows": rows,
    }
    write_json(ROOT / "fixtures/tokenizer/pretokenizer_golden.json", fixture)


# --------------------------------------------------------------------------------------------
# WordPiece (BERT)
# --------------------------------------------------------------------------------------------

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_wordpiece_vocab(corpus, lowercase: bool, vocab_size: int, out_path: Path):
    """A small, deterministic WordPiece vocabulary built from word / piece frequencies.

    (``tokenizers``' WordPieceTrainer is not deterministic across runs: ties are broken in hash
    order.) Layout: the 5 special tokens, frequent single characters and their ``##`` forms,
    then the most frequent whole words, word-initial pieces and ``##`` suffix pieces (2-5
    characters), ordered by decreasing count then by string.
    """
    normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                            strip_accents=None, lowercase=lowercase)
    pre = pre_tokenizers.BertPreTokenizer()
    words = Counter()
    for text in corpus:
        for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(text)):
            words[w] += 1
    chars = Counter()
    pieces = Counter()
    for w, n in words.items():
        for c in w:
            chars[c] += n
        for k in range(2, 6):
            if len(w) > k:
                pieces[w[:k]] += n
                pieces["##" + w[-k:]] += n
    by_count = lambda counter: sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))  # noqa: E731
    vocab = list(SPECIALS)
    seen = set(vocab)

    def add(tok):
        if tok not in seen and len(vocab) < vocab_size:
            seen.add(tok)
            vocab.append(tok)

    for c, n in by_count(chars):
        if n >= 3:
            add(c)
            add("##" + c)
    word_budget = (vocab_size - len(vocab)) // 2
    for w, _ in by_count(words)[:word_budget]:
        add(w)
    for p, _ in by_count(pieces):
        add(p)
    out_path.write_text("".join(t + "\n" for t in vocab), encoding="utf-8")
    return len(vocab)


def load_hf_bert(vocab_path: Path, lowercase: bool):
    from transformers import BertTokenizer
    d = tempfile.mkdtemp()
    try:
        shutil.copy(vocab_path, os.path.join(d, "vocab.txt"))
        t = BertTokenizer.from_pretrained(d, do_lower_case=lowercase)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    n_lines = len(vocab_path.read_text(encoding="utf-8").splitlines())
    assert len(t.get_vocab()) == n_lines, (len(t.get_vocab()), n_lines)
    return t


def make_wordpiece(templates, pairs):
    rng = random.Random(SEED + 1)
    corpus = []
    for rel in sorted(pairs):
        for subj, obj in rng.sample(pairs[rel], min(120, len(pairs[rel]))):
            tmpl = rng.choice(templates[rel])
            corpus.append(tmpl.replace("[X]", subj).replace("[Y]", obj))
    cased_path = ROOT / "fixtures/tokenizer/bert-vocab-cased.txt"
    uncased_path = ROOT / "fixtures/tokenizer/bert-vocab-uncased.txt"
    n_cased = build_wordpiece_vocab(corpus, lowercase=False, vocab_size=3000, out_path=cased_path)
    n_uncased = build_wordpiece_vocab(corpus, lowercase=True, vocab_size=2000, out_path=uncased_path)
    print(f"WordPiece vocabularies: cased {n_cased}, uncased {n_uncased}")

    cased = load_hf_bert(cased_path, lowercase=False)
    uncased = load_hf_bert(uncased_path, lowercase=True)

    cases = sample_masked(templates, pairs, random.Random(SEED + 2), N_MASKED // len(pairs))
    n_pararel = len(cases)
    for text in HARD_MASKED:
        cases.append({"kind": "hard", "relation": None, "template": None, "subject": None,
                      "object": None, "prompt": text})
    for i, c in enumerate(cases):
        c["id"] = i
        for name, t in (("cased", cased), ("uncased", uncased)):
            ids = t.encode(c["prompt"], add_special_tokens=False)
            c[f"{name}_ids"] = ids
            c[f"{name}_tokens"] = t.convert_ids_to_tokens(ids)
            c[f"{name}_decoded"] = t.decode(ids)
    fixture = {
        "description": "transformers BertTokenizer ids (add_special_tokens=False) of masked PARAREL prompts and hard "
                       "strings; generated by scripts/reference/make_tokenizer_fixtures.py",
        "reference": {
            "library": "transformers.BertTokenizer.from_pretrained(<dir with vocab.txt>)",
            "transformers_version": transformers.__version__,
            "tokenizers_version": tokenizers.__version__,
            "cased": {"vocab": "fixtures/tokenizer/bert-vocab-cased.txt", "do_lower_case": False,
                      "strip_accents": None, "vocab_size": n_cased,
                      "special_ids": {s: cased.convert_tokens_to_ids(s) for s in SPECIALS}},
            "uncased": {"vocab": "fixtures/tokenizer/bert-vocab-uncased.txt", "do_lower_case": True,
                        "strip_accents": None, "vocab_size": n_uncased,
                        "special_ids": {s: uncased.convert_tokens_to_ids(s) for s in SPECIALS}},
            "decode": "tokenizer.decode(ids) with defaults (skip_special_tokens=False)",
            "seed": SEED,
            "n_pararel_prompts": n_pararel,
            "n_hard_strings": len(cases) - n_pararel,
        },
        "cases": cases,
    }
    write_json(ROOT / "fixtures/golden/wordpiece_tokens.json", fixture)


def write_json(path: Path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size} bytes)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pararel", type=Path, default=Path(os.environ.get("KN_PARAREL_DIR", "/work/shared/data/pararel")))
    ap.add_argument("--gguf", type=Path, default=Path(os.environ.get(
        "KN_GGUF", os.path.expanduser("~/.cache/knowledge-neurons/models/SmolLM2-135M-Instruct.Q4_1.gguf"))))
    args = ap.parse_args()
    templates, pairs = load_pararel(args.pararel)
    meta, cases = make_smollm2(args, templates, pairs)
    make_pretokenizer_golden(meta, cases)
    make_wordpiece(templates, pairs)


if __name__ == "__main__":
    main()
