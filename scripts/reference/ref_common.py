"""Shared helpers for the Python reference scripts: paths, prompt sets, model loading, JSON output.

Everything here runs in float32 on the CPU with eager attention, in eval mode, on 2 threads
unless told otherwise, so that the golden numbers are reproducible and comparable with the
Rust (libtorch) implementation.
"""
import hashlib
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch

import ref_pararel as pr

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "fixtures"
GOLDEN = FIXTURES / "golden"
TINY_BERT = FIXTURES / "tiny-bert"
TINY_LLAMA = FIXTURES / "tiny-llama"
TINY_LLAMA_GGUF = FIXTURES / "tiny-llama.gguf"
TINY_LLAMA_Q8_GGUF = FIXTURES / "tiny-llama-q8.gguf"
KN_CACHE_DIR = Path(
    os.environ.get("KN_CACHE_DIR")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "knowledge-neurons"
)
SMOLLM2_GGUF = Path(
    os.environ.get("KN_SMOLLM2_GGUF") or KN_CACHE_DIR / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
)

SIG_DIGITS = 7


# ---------------------------------------------------------------------------------------------
# Prompt sets. Each entry: (relation, PARAREL template, subject, object). Templates are copied
# verbatim from PARAREL (see ref_pararel.PATTERNS); the object is the PARAREL answer.
# ---------------------------------------------------------------------------------------------

# Masked-LM prompts for tiny-bert: [X] -> subject, [Y] -> [MASK]. Some have the mask first,
# some subjects split into "##" pieces (Putin, Nigeria, Seinfeld) and one becomes [UNK] (iPhone).
TINY_BERT_FACTS = [
    ("P36", "The capital of [X] is [Y] .", "France", "Paris"),
    ("P36", "[Y] is the capital of [X].", "Germany", "Berlin"),
    ("P1376", "[X] is the capital of [Y].", "Rome", "Italy"),
    ("P37", "The official language of [X] is [Y].", "Japan", "Japanese"),
    ("P103", "The native language of [X] is [Y].", "Vladimir Putin", "Russian"),
    ("P30", "[X] is located in [Y].", "Nigeria", "Africa"),
    ("P176", "[X] is produced by [Y].", "iPhone", "Apple"),
    ("P108", "[X] works for [Y] .", "Bill Gates", "Microsoft"),
    ("P136", "[X] plays [Y].", "Miles Davis", "jazz"),
    ("P127", "[X] is owned by [Y] .", "YouTube", "Google"),
    ("P449", "[X] was originally aired on [Y].", "Seinfeld", "NBC"),
    ("P37", "[Y] is the official language of [X].", "France", "French"),
]

# Words of the prompts above that are deliberately left out of tiny-bert's vocabulary so that
# WordPiece has to split them (or give [UNK]).
TINY_BERT_SPLIT_WORDS = ["Putin", "Nigeria", "Seinfeld", "iPhone"]

# Causal-LM prompts for tiny-llama: templates whose [Y] comes last, cut before [Y].
# The last one has a non-ASCII subject (from PARAREL P36) to exercise byte-level fallback.
# Chosen so that the top-6 probabilities are >= 2e-4 apart for both the F32 and the Q8_0 model.
TINY_LLAMA_FACTS = [
    ("P36", "The capital of [X] is [Y] .", "France", "Paris"),
    ("P1376", "[X] is the capital of [Y].", "Rome", "Italy"),
    ("P37", "The official language of [X] is [Y].", "Spain", "Spanish"),
    ("P103", "The native language of [X] is [Y].", "Vladimir Putin", "Russian"),
    ("P30", "[X] belongs to the continent of [Y].", "Nigeria", "Africa"),
    ("P176", "[X] is a product of [Y].", "iPhone", "Apple"),
    ("P108", "[X] works for [Y] .", "Bill Gates", "Microsoft"),
    ("P136", "[X] plays [Y].", "Miles Davis", "jazz"),
    ("P127", "[X] is owned by [Y] .", "YouTube", "Google"),
    ("P449", "[X] was originally aired on [Y].", "Seinfeld", "NBC"),
    ("P36", "The capital of [X] is [Y] .", "Kyōto Prefecture", "Kyoto"),
]

# Fact prompts for SmolLM2-135M-Instruct (all (subject, object) pairs are in PARAREL's
# query_pairs.json under the given relation). Chosen so that the top-6 probabilities are >= 2e-4
# apart (e.g. "The capital of Germany is" is not: its 5th and 6th are 2.7e-5 apart).
SMOLLM2_FACTS = [
    ("P36", "The capital of [X] is [Y] .", "France", "Paris"),
    ("P36", "The capital of [X] is [Y] .", "Austria", "Vienna"),
    ("P36", "The capital of [X] is [Y] .", "Italy", "Rome"),
    ("P36", "The capital of [X] is [Y] .", "Japan", "Tokyo"),
    ("P36", "The capital of [X] is [Y] .", "Spain", "Madrid"),
    ("P36", "The capital of [X] is [Y] .", "Egypt", "Cairo"),
    ("P36", "The capital of [X] is [Y] .", "Russia", "Moscow"),
    ("P36", "The capital of [X] is [Y] .", "Greece", "Athens"),
    ("P1376", "[X] is the capital of [Y].", "Paris", "France"),
    ("P1376", "[X] is the capital of [Y].", "Berlin", "Germany"),
    ("P1376", "[X] is the capital city of [Y].", "Tokyo", "Japan"),
    ("P37", "The official language of [X] is [Y].", "France", "French"),
    ("P37", "The official language of [X] is [Y].", "Germany", "German"),
    ("P37", "The official language of [X] is [Y].", "Spain", "Spanish"),
    ("P37", "The official language of [X] is [Y].", "Japan", "Japanese"),
    ("P103", "The native language of [X] is [Y].", "Vladimir Putin", "Russian"),
    ("P103", "The native language of [X] is [Y].", "Pablo Picasso", "Spanish"),
    ("P103", "The mother tongue of [X] is [Y].", "Emmanuel Macron", "French"),
    ("P30", "[X] is located in [Y].", "Nigeria", "Africa"),
    ("P30", "[X] is located in the continent [Y].", "Japan", "Asia"),
    ("P176", "[X] is produced by [Y].", "iPhone", "Apple"),
    ("P176", "[X] is produced by [Y].", "Xbox", "Microsoft"),
    ("P178", "[X] is developed by [Y].", "iOS", "Apple"),
    ("P178", "[X] was developed by [Y].", "Gmail", "Google"),
    ("P127", "[X] is owned by [Y] .", "YouTube", "Google"),
    ("P108", "[X] works for [Y] .", "Bill Gates", "Microsoft"),
    ("P108", "[X] is employed by [Y].", "Steve Jobs", "Apple"),
    ("P463", "[X] is a member of [Y].", "Germany", "NATO"),
    ("P1303", "[X] plays [Y] .", "Jimi Hendrix", "guitar"),
    ("P101", "[X] works in the field of [Y].", "Isaac Newton", "physics"),
    ("P101", "[X] works in the field of [Y].", "Charles Darwin", "biology"),
    ("P136", "[X] plays [Y].", "Miles Davis", "jazz"),
    ("P449", "[X] was originally aired on [Y].", "Seinfeld", "NBC"),
]


def check_fact_sets():
    """Every template above must be a PARAREL template of its relation."""
    for facts in (TINY_BERT_FACTS, TINY_LLAMA_FACTS, SMOLLM2_FACTS):
        for rel, pat, _, _ in facts:
            assert pat in pr.PATTERNS[rel], (rel, pat)


# ---------------------------------------------------------------------------------------------
# Numbers and JSON
# ---------------------------------------------------------------------------------------------

def r7(x):
    """Round a float (or nested lists / arrays of floats) to 7 significant digits."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    if isinstance(x, np.ndarray):
        x = x.tolist()
    if isinstance(x, (list, tuple)):
        return [r7(v) for v in x]
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return int(x)
    x = float(x)
    if x == 0.0 or not np.isfinite(x):
        return x
    return float(f"{x:.{SIG_DIGITS}g}")


def write_json(path, obj):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(obj, ensure_ascii=False, indent=1)
    # Keep long number arrays on one line: indent only objects, not lists of numbers.
    text = _compact_number_lists(text)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def _compact_number_lists(text):
    import re

    pat = re.compile(r"\[\s*(?:-?[0-9][0-9eE.+-]*|-?Infinity|NaN)(?:\s*,\s*(?:-?[0-9][0-9eE.+-]*|-?Infinity|NaN))*\s*\]")
    return pat.sub(lambda m: "[" + ",".join(s.strip() for s in m.group(0)[1:-1].split(",")) + "]", text)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def versions():
    import gguf  # noqa: F401
    import tokenizers
    import transformers
    from importlib.metadata import version

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "gguf": version("gguf"),
        "safetensors": version("safetensors"),
        "numpy": np.__version__,
    }


def rel(path):
    """A path relative to the repository root when it lies inside it, "$KN_CACHE_DIR/..." when it
    lies in the model cache, else as given."""
    path = Path(path).resolve()
    for base, shown in ((REPO_ROOT, None), (KN_CACHE_DIR.resolve(), "$KN_CACHE_DIR")):
        try:
            r = path.relative_to(base)
        except ValueError:
            continue
        return str(r) if shown is None else f"{shown}/{r}"
    return str(path)


def header(script, model_path, **extra):
    model_path = Path(model_path)
    model = {"path": rel(model_path)}
    if model_path.is_file():
        model["sha256"] = sha256_file(model_path)
        model["format"] = "gguf"
    else:
        model["format"] = "hf-safetensors"
        single = model_path / "model.safetensors"
        # A sharded checkpoint is named by its index (the shards' digests are the caller's).
        model["sha256"] = sha256_file(single if single.is_file() else model_path / "model.safetensors.index.json")
    h = {
        "generator": f"scripts/reference/{script}",
        "versions": versions(),
        "model": model,
        "settings": {
            "dtype": "float32",
            "attn_implementation": "eager",
            "mode": "eval",
            "torch_threads": torch.get_num_threads(),
            "device": "cpu",
        },
    }
    h.update(extra)
    return h


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------

def setup_torch(threads=2, seed=0):
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    torch.set_grad_enabled(True)


class Loaded:
    """A model with its tokenizer and how to build prompts for it."""

    def __init__(self, kind, model, tokenizer, path):
        self.kind = kind  # "bert" (masked LM) or "llama" (causal LM)
        self.model = model
        self.tok = tokenizer
        self.path = Path(path)
        self.device = next(model.parameters()).device

    # Prompt -> input ids and the position whose logits predict the answer.
    def encode(self, prompt):
        if self.kind == "bert":
            enc = self.tok(prompt, add_special_tokens=True)
            ids = list(enc["input_ids"])
            mask_id = self.tok.mask_token_id
            if ids.count(mask_id) != 1:
                raise ValueError(f"prompt must contain exactly one {self.tok.mask_token}: {prompt!r}")
            return ids, ids.index(mask_id)
        # Gemma's tokenizer adds <bos> (tokenizer.ggml.add_bos_token), as kn does; the others none.
        bos = self.model.config.model_type.startswith("gemma")
        ids = list(self.tok(prompt, add_special_tokens=bos)["input_ids"])
        return ids, len(ids) - 1

    def answer_id(self, answer):
        """Masked LM: the first WordPiece of the answer word; causal LM: the first token of " "+answer."""
        if self.kind == "bert":
            pieces = self.tok.tokenize(answer)
            return self.tok.convert_tokens_to_ids(pieces[0])
        return self.tok(" " + answer, add_special_tokens=False)["input_ids"][0]

    def token_str(self, i):
        if self.kind == "bert":
            return self.tok.convert_ids_to_tokens(int(i))
        return self.tok.decode([int(i)])

    def raw_token(self, i):
        return self.tok.convert_ids_to_tokens(int(i))

    def layers(self):
        if self.kind == "bert":
            return self.model.bert.encoder.layer
        model_type = self.model.config.model_type
        if model_type in ("gpt2", "gpt_neo"):
            return self.model.transformer.h
        if model_type == "gpt_neox":
            return self.model.gpt_neox.layers
        return self.model.model.layers

    def down_proj(self, layer):
        """The FFN's output projection of `layer`, whose input is the knowledge neuron."""
        mlp = self.layers()[layer].mlp
        model_type = self.model.config.model_type
        if model_type in ("gpt2", "gpt_neo"):
            return mlp.c_proj
        if model_type == "gpt_neox":
            return mlp.dense_4h_to_h
        return mlp.down_proj

    def n_layers(self):
        return len(self.layers())

    def ffn_size(self):
        cfg = self.model.config
        if cfg.model_type == "gpt2":
            return cfg.n_inner or 4 * cfg.n_embd
        return cfg.intermediate_size or 4 * cfg.hidden_size

    def forward_logits(self, ids):
        x = torch.tensor([ids], dtype=torch.long, device=self.device)
        if self.kind == "bert":
            out = self.model(input_ids=x, attention_mask=torch.ones_like(x), token_type_ids=torch.zeros_like(x))
        else:
            out = self.model(input_ids=x, use_cache=False)
        return out.logits[0]


def bert_tokenizer(model_dir):
    from transformers import BertTokenizer

    vocab = {}
    for i, line in enumerate(Path(model_dir, "vocab.txt").read_text(encoding="utf-8").splitlines()):
        vocab[line] = i
    return BertTokenizer(vocab=vocab, do_lower_case=False, strip_accents=False, tokenize_chinese_chars=True)


def load_model(path, threads=None, device="cpu"):
    """Load a tiny-bert / tiny-llama (or any BERT / Llama) directory or a GGUF file, float32,
    eager attention, eval, on `device`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, BertForMaskedLM, LlamaForCausalLM

    path = Path(path)
    if threads:
        torch.set_num_threads(threads)
    if path.suffix == ".gguf":
        model = AutoModelForCausalLM.from_pretrained(
            str(path.parent), gguf_file=path.name, dtype=torch.float32, attn_implementation="eager"
        )
        tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        kind = "llama"
    else:
        cfg = json.loads((path / "config.json").read_text())
        if cfg["model_type"] == "bert":
            model = BertForMaskedLM.from_pretrained(str(path), dtype=torch.float32, attn_implementation="eager")
            tok = bert_tokenizer(path)
            kind = "bert"
        elif cfg["model_type"] in ("llama", "mistral", "qwen2", "qwen3", "gemma3_text", "phi3", "gpt2",
                                   "gpt_neo", "gpt_neox"):
            model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, attn_implementation="eager")
            tok = AutoTokenizer.from_pretrained(str(path))
            kind = "llama"
        else:
            raise ValueError(f"unsupported model_type {cfg['model_type']}")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return Loaded(kind, model.to(device), tok, path)


def top_k(loaded, logits, k=5):
    """Top-k of softmax(logits): id, token (decoded text; for WordPiece the vocab entry), raw
    vocabulary piece, probability and logit."""
    probs = torch.softmax(logits.float(), dim=-1)
    p, i = torch.topk(probs, k)
    return [
        {"id": int(a), "token": loaded.token_str(a), "piece": loaded.raw_token(a), "prob": r7(b),
         "logit": r7(logits[int(a)])}
        for a, b in zip(i.tolist(), p.tolist())
    ]
