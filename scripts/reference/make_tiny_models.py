#!/usr/bin/env python3
"""Make the tiny random test models (committed fixtures). Seeded and deterministic.

Writes
  fixtures/tiny-bert/           BertForMaskedLM: config.json, model.safetensors, vocab.txt,
                                tokenizer_config.json, README.md
  fixtures/tiny-llama/          LlamaForCausalLM: config.json, generation_config.json,
                                model.safetensors, tokenizer.json, tokenizer_config.json, README.md
  fixtures/tiny-llama.gguf      the same Llama as GGUF (F32), llama.cpp convert_hf_to_gguf.py layout
  fixtures/tiny-llama-q8.gguf   the same with every 2-D weight quantized to Q8_0

Run:  .deps/pyref/bin/python scripts/reference/make_tiny_models.py [--check-only]
"""
import argparse
import collections
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ref_common as rc  # noqa: E402
import ref_pararel as pr  # noqa: E402

SEED_BERT = 20220522  # ACL 2022
SEED_LLAMA = 20221126

# ---------------------------------------------------------------------------------------------
# Shared: non-trivial random weights
# ---------------------------------------------------------------------------------------------


def randomize(model, seed, emb_std, weight_std=0.2, bias_std=0.1, norm_noise=0.1, overrides=None):
    """Overwrite every parameter with seeded normal noise (numpy PCG64, stable across platforms).

    Norm weights ~ 1 + norm_noise*N(0,1), biases ~ bias_std*N, embeddings ~ emb_std*N, other
    weights ~ weight_std*N. Parameters are visited in sorted name order; tied parameters once.
    """
    rng = np.random.default_rng(seed)
    overrides = overrides or {}
    seen = set()
    params = dict(model.named_parameters())
    for name in sorted(params):
        p = params[name]
        if id(p) in seen:
            continue
        seen.add(id(p))
        shape = tuple(p.shape)
        noise = rng.standard_normal(shape)
        is_norm = "LayerNorm" in name or "norm" in name.split(".")[-2]
        if name in overrides:
            std = overrides[name]
            val = std * noise
        elif is_norm and name.endswith("weight"):
            val = 1.0 + norm_noise * noise
        elif name.endswith("bias"):
            val = bias_std * noise
        elif "embed" in name or "embeddings" in name:
            val = emb_std * noise
        else:
            val = weight_std * noise
        with torch.no_grad():
            p.copy_(torch.from_numpy(val.astype(np.float32)))


def tensor_listing(path):
    from safetensors import safe_open

    rows = []
    with safe_open(str(path), "pt") as f:
        for k in sorted(f.keys()):
            t = f.get_slice(k)
            rows.append((k, t.get_dtype(), list(t.get_shape())))
    return rows


# ---------------------------------------------------------------------------------------------
# tiny-bert
# ---------------------------------------------------------------------------------------------

BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
BERT_N_WORDS = 300
BERT_SUFFIXES = ["##ed", "##ing", "##er", "##an", "##ian", "##ese", "##ia", "##in", "##ut",
                 "##ly", "##ish", "##on", "##el", "##ra"]


def build_bert_vocab():
    from transformers.models.bert.tokenization_bert_legacy import BasicTokenizer

    basic = BasicTokenizer(do_lower_case=False, strip_accents=False, never_split=BERT_SPECIALS)
    counts = collections.Counter()
    for line in pr.corpus():
        counts.update(basic.tokenize(line))
    split = set(rc.TINY_BERT_SPLIT_WORDS)
    required = []
    for _, pat, subj, obj in rc.TINY_BERT_FACTS:
        for w in basic.tokenize(pr.fill_full(pat, subj, obj)):
            if len(w) > 1 and w not in split and w not in required:
                required.append(w)
    words = list(required)
    for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(words) >= BERT_N_WORDS:
            break
        if len(w) > 1 and w not in split and w not in words and w.isascii():
            words.append(w)
    punct = list(".,'-()/:;!?&\"")
    chars = punct + [str(d) for d in range(10)] + [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    chars += [chr(c) for c in range(ord("a"), ord("z") + 1)]
    pieces = ["##" + chr(c) for c in range(ord("a"), ord("z") + 1)] + BERT_SUFFIXES
    vocab = BERT_SPECIALS + chars + words + pieces
    dup = [k for k, v in collections.Counter(vocab).items() if v > 1]
    assert not dup, f"duplicate vocabulary entries: {dup}"
    return vocab


def make_tiny_bert(out_dir):
    from transformers import BertConfig, BertForMaskedLM

    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    vocab = build_bert_vocab()
    (out_dir / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    cfg = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=64,
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        max_position_embeddings=64,
        type_vocab_size=2,
        layer_norm_eps=1e-12,
        initializer_range=0.02,
        pad_token_id=0,
        tie_word_embeddings=True,
    )
    torch.manual_seed(SEED_BERT)
    model = BertForMaskedLM(cfg)
    randomize(model, SEED_BERT, emb_std=0.3, weight_std=0.4)
    model.tie_weights()
    model.eval()
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tok_cfg = {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": False,
        "strip_accents": False,
        "tokenize_chinese_chars": True,
        "unk_token": "[UNK]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
        "model_max_length": 64,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2) + "\n")
    return model, vocab


def bert_readme(out_dir, vocab):
    rows = tensor_listing(Path(out_dir) / "model.safetensors")
    lines = [
        "# tiny-bert (random test model)",
        "",
        "A `BertForMaskedLM` with random, seeded weights, made by `scripts/reference/make_tiny_models.py`",
        f"(seed {SEED_BERT}). It knows nothing; it exists so that every numeric path can be checked",
        "against Hugging Face transformers (`fixtures/golden/tiny_bert_logits.json`, `ig_tiny_bert.json`).",
        "",
        "- hidden 32, 3 layers, 4 heads (head dim 8), intermediate 64, `gelu` (exact erf GELU),",
        "  max_position_embeddings 64, type_vocab_size 2, layer_norm_eps 1e-12, absolute positions.",
        f"- `vocab.txt`: {len(vocab)} entries, cased (`do_lower_case: false`, no accent stripping):",
        "  ids 0-4 are `[PAD] [UNK] [CLS] [SEP] [MASK]`, then punctuation, digits, A-Z, a-z, then",
        f"  {BERT_N_WORDS} whole words from PARAREL templates/subjects/objects, then `##a`..`##z` and a few",
        "  suffix pieces. Some prompt words (Putin, Nigeria, Seinfeld) split into pieces; `iPhone` is `[UNK]`.",
        "- Weights: N(0, 0.4) for dense weights, N(0, 0.3) for embeddings, N(0, 0.1) for biases",
        "  (the MLM output bias included), LayerNorm weights 1 + N(0, 0.1).",
        "- Tied weights: the MLM decoder `cls.predictions.decoder.weight` IS",
        "  `bert.embeddings.word_embeddings.weight` and is not stored; the decoder bias is",
        "  `cls.predictions.bias` (`cls.predictions.decoder.bias` is the same tensor, not stored).",
        "  There is no pooler (BertForMaskedLM has none).",
        "",
        "## Tensors in model.safetensors",
        "",
        "| name | dtype | shape |",
        "| --- | --- | --- |",
    ]
    lines += [f"| `{n}` | {d} | {s} |" for n, d, s in rows]
    Path(out_dir, "README.md").write_text("\n".join(lines) + "\n")
    return rows


# ---------------------------------------------------------------------------------------------
# tiny-llama
# ---------------------------------------------------------------------------------------------

LLAMA_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
LLAMA_VOCAB = 600
# SmolLM2-135M-Instruct's chat template, copied from its GGUF metadata (tokenizer.chat_template).
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}"
)


def train_llama_tokenizer():
    """Byte-level BPE like SmolLM2's: individual digits, then GPT-2 byte-level pre-tokenization."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    tok.post_processor = processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=LLAMA_VOCAB,
        min_frequency=2,
        special_tokens=LLAMA_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(pr.corpus(), trainer=trainer)
    assert tok.token_to_id("<|endoftext|>") == 0
    assert tok.get_vocab_size() == LLAMA_VOCAB, tok.get_vocab_size()
    return tok


def make_tiny_llama(out_dir):
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    raw = train_llama_tokenizer()
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
        pad_token="<|im_end|>",
        model_max_length=256,
        clean_up_tokenization_spaces=False,
        add_bos_token=False,
    )
    hf_tok.chat_template = CHAT_TEMPLATE
    cfg = LlamaConfig(
        vocab_size=raw.get_vocab_size(),
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        hidden_act="silu",
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 100000.0},
        tie_word_embeddings=True,
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
        initializer_range=0.02,
    )
    torch.manual_seed(SEED_LLAMA)
    model = LlamaForCausalLM(cfg)
    randomize(model, SEED_LLAMA, emb_std=0.4)
    model.tie_weights()
    model.eval()
    model.save_pretrained(str(out_dir), safe_serialization=True)
    hf_tok.save_pretrained(str(out_dir))
    return model, hf_tok


def llama_readme(out_dir, tok):
    rows = tensor_listing(Path(out_dir) / "model.safetensors")
    lines = [
        "# tiny-llama (random test model)",
        "",
        "A `LlamaForCausalLM` with random, seeded weights, made by `scripts/reference/make_tiny_models.py`",
        f"(seed {SEED_LLAMA}), shaped like a miniature SmolLM2. GGUF copies: `../tiny-llama.gguf` (F32) and",
        "`../tiny-llama-q8.gguf` (2-D weights Q8_0). Golden outputs: `fixtures/golden/tiny_llama*.json`,",
        "`ig_tiny_llama.json`.",
        "",
        "- hidden 64, 3 layers, 4 attention heads, 2 key-value heads (grouped-query attention), head_dim 16,",
        "  intermediate 96, SiLU gated MLP, RMSNorm eps 1e-5, RoPE theta 100000 (HF rotate-half layout),",
        "  max_position_embeddings 256, no biases, `tie_word_embeddings: true` (like SmolLM2).",
        f"- `tokenizer.json`: byte-level BPE, {tok.vocab_size} tokens (ids 0-2 `<|endoftext|>`, `<|im_start|>`,",
        "  `<|im_end|>`, then the 256 byte symbols, then merges), trained with `tokenizers` on PARAREL",
        "  sentences. Pre-tokenizer: Sequence[Digits(individual_digits), ByteLevel(add_prefix_space=false,",
        "  use_regex=true)], i.e. SmolLM2's (llama.cpp pre-tokenizer `smollm`); decoder ByteLevel.",
        "  bos `<|im_start|>` (1), eos `<|im_end|>` (2), unk `<|endoftext|>` (0), pad `<|im_end|>` (2);",
        "  no BOS is added when encoding (like SmolLM2).",
        "- Weights: N(0, 0.2) for projections, N(0, 0.4) for the embedding, RMSNorm weights 1 + N(0, 0.1).",
        "- Tied weights: `lm_head.weight` IS `model.embed_tokens.weight` and is not stored.",
        "",
        "## Tensors in model.safetensors",
        "",
        "| name | dtype | shape |",
        "| --- | --- | --- |",
    ]
    lines += [f"| `{n}` | {d} | {s} |" for n, d, s in rows]
    Path(out_dir, "README.md").write_text("\n".join(lines) + "\n")
    return rows


# ---------------------------------------------------------------------------------------------
# GGUF, following llama.cpp's convert_hf_to_gguf.py (LlamaModel)
# ---------------------------------------------------------------------------------------------


def permute(weights, n_head, n_head_kv):
    """llama.cpp convert_hf_to_gguf.py LlamaModel.permute, verbatim semantics."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def unpermute(weights, n_head, n_head_kv):
    """Inverse of permute (what a loader must do to get HF's rotate-half layout back)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (
        weights.reshape(n_head, weights.shape[0] // n_head // 2, 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def gguf_name(hf_name):
    if hf_name == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf_name == "model.norm.weight":
        return "output_norm.weight"
    if hf_name == "lm_head.weight":
        return "output.weight"
    parts = hf_name.split(".")
    assert parts[0] == "model" and parts[1] == "layers", hf_name
    n = parts[2]
    rest = ".".join(parts[3:])
    table = {
        "input_layernorm.weight": "attn_norm.weight",
        "post_attention_layernorm.weight": "ffn_norm.weight",
        "self_attn.q_proj.weight": "attn_q.weight",
        "self_attn.k_proj.weight": "attn_k.weight",
        "self_attn.v_proj.weight": "attn_v.weight",
        "self_attn.o_proj.weight": "attn_output.weight",
        "self_attn.q_proj.bias": "attn_q.bias",
        "self_attn.k_proj.bias": "attn_k.bias",
        "self_attn.v_proj.bias": "attn_v.bias",
        "mlp.gate_proj.weight": "ffn_gate.weight",
        "mlp.up_proj.weight": "ffn_up.weight",
        "mlp.down_proj.weight": "ffn_down.weight",
    }
    return f"blk.{n}.{table[rest]}"


def hf_tensors_for_gguf(model_dir):
    """Tensors as convert_hf_to_gguf.py sees them: the safetensors file, in its (sorted) order."""
    from safetensors import safe_open

    out = []
    with safe_open(str(Path(model_dir) / "model.safetensors"), "np") as f:
        for k in sorted(f.keys()):
            out.append((k, f.get_tensor(k).astype(np.float32)))
    return out


def write_gguf(model_dir, path, q8=False, arch="llama", pre="smollm", name=None):
    """A GGUF of `model_dir` as llama.cpp's converter writes it: `arch` llama (query/key rows
    permuted) or qwen2 (not permuted, q/k/v biases), byte-level BPE with pre-tokenizer `pre`."""
    import gguf

    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    tj = json.loads((Path(model_dir) / "tokenizer.json").read_text())
    n_head, n_kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    vocab = tj["model"]["vocab"]
    added = {a["id"]: a for a in tj["added_tokens"]}
    for i, a in added.items():
        vocab[a["content"]] = i
    tokens = [None] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    assert all(t is not None for t in tokens)
    types = []
    for i in range(len(tokens)):
        if i in added:
            types.append(int(gguf.TokenType.CONTROL if added[i]["special"] else gguf.TokenType.USER_DEFINED))
        else:
            types.append(int(gguf.TokenType.NORMAL))
    merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]

    ftype = gguf.LlamaFileType.MOSTLY_Q8_0 if q8 else gguf.LlamaFileType.ALL_F32
    w = gguf.GGUFWriter(str(path), arch)
    w.add_type("model")
    w.add_name(name or ("tiny-llama-q8" if q8 else "tiny-llama"))
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_rope_freq_base(float(cfg["rope_parameters"]["rope_theta"]))
    w.add_layer_norm_rms_eps(float(cfg["rms_norm_eps"]))
    w.add_file_type(int(ftype))
    w.add_vocab_size(cfg["vocab_size"])
    w.add_rope_dimension_count(cfg["head_dim"])
    w.add_add_space_prefix(False)
    w.add_add_bos_token(False)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(cfg["bos_token_id"])
    w.add_eos_token_id(cfg["eos_token_id"])
    w.add_unk_token_id(0)
    w.add_pad_token_id(cfg["pad_token_id"])
    w.add_chat_template(CHAT_TEMPLATE)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    for hf_name, data in hf_tensors_for_gguf(model_dir):
        if hf_name == "lm_head.weight" and cfg.get("tie_word_embeddings"):
            continue
        if arch == "llama" and hf_name.endswith("q_proj.weight"):
            data = permute(data, n_head, n_head)
        elif arch == "llama" and hf_name.endswith("k_proj.weight"):
            data = permute(data, n_head, n_kv)
        name = gguf_name(hf_name)
        data = np.ascontiguousarray(data, dtype=np.float32)
        if q8 and data.ndim == 2:
            qdata = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(name, qdata, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            w.add_tensor(name, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def read_gguf_as_hf(path, cfg):
    """Dequantize a GGUF with gguf-py and undo the Q/K permutation -> HF state dict (numpy f32)."""
    import gguf

    inv = {}
    for hf in ["model.embed_tokens.weight", "model.norm.weight"]:
        inv[gguf_name(hf)] = hf
    for n in range(cfg["num_hidden_layers"]):
        for rest in ["input_layernorm.weight", "post_attention_layernorm.weight", "self_attn.q_proj.weight",
                     "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.o_proj.weight",
                     "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"]:
            hf = f"model.layers.{n}.{rest}"
            inv[gguf_name(hf)] = hf
    r = gguf.GGUFReader(str(path))
    sd = {}
    for t in r.tensors:
        arr = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        shape = tuple(int(x) for x in reversed(t.shape.tolist()))
        arr = arr.reshape(shape)
        hf = inv[t.name]
        if hf.endswith("q_proj.weight"):
            arr = unpermute(arr, cfg["num_attention_heads"], cfg["num_attention_heads"])
        elif hf.endswith("k_proj.weight"):
            arr = unpermute(arr, cfg["num_attention_heads"], cfg["num_key_value_heads"])
        sd[hf] = arr
    return sd


def model_from_gguf_manual(gguf_path, model_dir):
    """LlamaForCausalLM from config.json with weights from a GGUF dequantized by gguf-py."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    sd = read_gguf_as_hf(gguf_path, cfg)
    model = LlamaForCausalLM(LlamaConfig.from_pretrained(str(model_dir), attn_implementation="eager"))
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=False)
    assert not unexpected, unexpected
    assert set(missing) <= {"lm_head.weight"}, missing
    model.tie_weights()
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------


def check_all():
    """Round trips that must hold for the fixtures to be trustworthy."""
    import gguf
    from transformers import AutoModelForCausalLM

    rc.setup_torch(2)
    # tiny-bert: fast tokenizer == legacy python WordPiece; tied decoder.
    bert = rc.load_model(rc.TINY_BERT)
    from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy as LegacyBert

    legacy = LegacyBert(str(rc.TINY_BERT / "vocab.txt"), do_lower_case=False, strip_accents=False)
    for _, pat, subj, _ in rc.TINY_BERT_FACTS:
        p = pr.fill_masked(pat, subj)
        a = bert.tok(p)["input_ids"]
        b = legacy(p)["input_ids"]
        assert list(a) == list(b), (p, a, b)
    m = bert.model
    assert m.cls.predictions.decoder.weight.data_ptr() == m.bert.embeddings.word_embeddings.weight.data_ptr()
    print("[check] tiny-bert tokenizer (fast == legacy WordPiece) and tied decoder: ok")

    # tiny-llama: the F32 GGUF read back exactly reproduces the safetensors weights.
    llama = rc.load_model(rc.TINY_LLAMA)
    cfg = json.loads((rc.TINY_LLAMA / "config.json").read_text())
    sd = read_gguf_as_hf(rc.TINY_LLAMA_GGUF, cfg)
    ref = llama.model.state_dict()
    for k, v in sd.items():
        assert np.array_equal(v, ref[k].numpy()), k
    r = gguf.GGUFReader(str(rc.TINY_LLAMA_GGUF))
    q = r.get_tensor(0)
    assert q.name == "token_embd.weight"
    # The stored attn_q really is permuted (differs from the HF layout).
    t = next(t for t in r.tensors if t.name == "blk.0.attn_q.weight")
    assert not np.array_equal(np.asarray(t.data).reshape(64, 64), ref["model.layers.0.self_attn.q_proj.weight"].numpy())
    print("[check] tiny-llama.gguf weights == safetensors after un-permuting Q/K: ok")

    # transformers' own GGUF loader (which reverses the permutation itself) gives the same logits.
    ids = llama.tok("The capital of France is", add_special_tokens=False)["input_ids"]
    x = torch.tensor([ids])
    with torch.no_grad():
        want = llama.model(x).logits
        g = AutoModelForCausalLM.from_pretrained(
            str(rc.FIXTURES), gguf_file=rc.TINY_LLAMA_GGUF.name, dtype=torch.float32, attn_implementation="eager"
        ).eval()
        got = g(x).logits
        diff = (want - got).abs().max().item()
        assert diff < 1e-5, diff
        print(f"[check] transformers GGUF loader on tiny-llama.gguf: max |logit diff| {diff:.2e}: ok")
        mq = model_from_gguf_manual(rc.TINY_LLAMA_Q8_GGUF, rc.TINY_LLAMA)
        gq = AutoModelForCausalLM.from_pretrained(
            str(rc.FIXTURES), gguf_file=rc.TINY_LLAMA_Q8_GGUF.name, dtype=torch.float32, attn_implementation="eager"
        ).eval()
        a, b = mq(x).logits, gq(x).logits
        diff_q = (a - b).abs().max().item()
        assert diff_q < 1e-5, diff_q
        print(f"[check] Q8_0: manual dequant vs transformers loader {diff_q:.2e}; "
              f"Q8_0 vs F32 max |logit diff| {(a - want).abs().max().item():.3e}: ok")
    # Tokenizer from the GGUF metadata (transformers' converter) agrees with tokenizer.json.
    from transformers import AutoTokenizer

    gt = AutoTokenizer.from_pretrained(str(rc.FIXTURES), gguf_file=rc.TINY_LLAMA_GGUF.name)
    for _, pat, subj, _ in rc.TINY_LLAMA_FACTS:
        p = pr.causal_prefix(pat, subj)
        a = llama.tok(p, add_special_tokens=False)["input_ids"]
        b = gt(p, add_special_tokens=False)["input_ids"]
        if list(a) != list(b):
            print(f"[check] NOTE: GGUF-derived tokenizer differs on {p!r}: {a} vs {b}")
    print("[check] done")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check-only", action="store_true", help="only verify the committed fixtures")
    args = ap.parse_args()
    rc.setup_torch(2)
    rc.check_fact_sets()
    if not args.check_only:
        _, vocab = make_tiny_bert(rc.TINY_BERT)
        rows = bert_readme(rc.TINY_BERT, vocab)
        print(f"tiny-bert: {len(vocab)} vocab entries, {len(rows)} tensors")
        _, tok = make_tiny_llama(rc.TINY_LLAMA)
        rows = llama_readme(rc.TINY_LLAMA, tok)
        print(f"tiny-llama: {tok.vocab_size} vocab entries, {len(rows)} tensors")
        write_gguf(rc.TINY_LLAMA, rc.TINY_LLAMA_GGUF, q8=False)
        write_gguf(rc.TINY_LLAMA, rc.TINY_LLAMA_Q8_GGUF, q8=True)
        for p in [rc.TINY_LLAMA_GGUF, rc.TINY_LLAMA_Q8_GGUF]:
            print(f"{rc.rel(p)}: {p.stat().st_size} bytes")
    check_all()


if __name__ == "__main__":
    main()
