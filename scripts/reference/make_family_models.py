"""Tiny random models of the Llama family's variants, and their golden outputs.

Writes, for each variant below, fixtures/family/<name>/ (config.json, model.safetensors, and the
tiny-llama tokenizer files) with seeded random weights, and fixtures/golden/family_<name>.json:
next-token logits and top-5 of 8 PARAREL prompts, and integrated gradients (ig_reference.run_ig,
all layers, m = 20) of two of them (the first and the longest). Every prompt is longer than the variant's sliding window,
and the script checks that the window (or the scaling) changes the logits, so a Rust model that
ignored it would fail the golden test.

  tiny-llama3    Llama with `llama3` RoPE scaling (factor 8, original context 64: head_dim 16's
                 frequencies fall in all three bands: kept, blended, divided)
  tiny-mistral   Mistral with sliding_window 4 on every layer
  tiny-qwen2     Qwen2: biased q/k/v projections; use_sliding_window, max_window_layers 1 (layer 0
                 full, layers 1-2 window 4)
  tiny-qwen3     Qwen3: per-head RMSNorm of queries and keys; layer_types sliding/full/sliding,
                 window 3
  tiny-gemma3    Gemma-3 text: (1 + w) RMSNorms, sandwich norms, GELU-tanh gate, q/k norms,
                 query_pre_attn_scalar 24, sqrt(d) embedding scale, sliding/sliding/full layers
                 (window 3) with a local RoPE base 1e4 and a global 1e6 with linear scaling x4
  tiny-phi3      Phi-3: fused qkv_proj and gate_up_proj, partial rotary (0.5), sliding_window 4
  tiny-gpt2      GPT-2: LayerNorm, learned positions, Conv1D weights, plain gelu_new FFN, biases
  tiny-gpt-neo   GPT-Neo: global/local/local attention (window 3), unscaled scores
  tiny-gpt-neox  GPT-NeoX: partial rotary (0.25), per-head fused qkv, parallel residual, untied

Float32, eager attention, eval mode, 2 threads (ref_common.setup_torch); numbers rounded to 7
significant digits. Deterministic: reruns reproduce the files.

Run:  .deps/pyref/bin/python scripts/reference/make_family_models.py [--only NAME ...]
"""
import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_golden_outputs as mg  # noqa: E402
import make_tiny_models as mt  # noqa: E402
import ref_common as rc  # noqa: E402

FAMILY = rc.FIXTURES / "family"
SEED = 20261205

# The tiny-llama shape every variant shares.
SHAPE = dict(
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    hidden_act="silu",
    max_position_embeddings=256,
    rms_norm_eps=1e-5,
    tie_word_embeddings=True,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=2,
)


def variants():
    from transformers import (Gemma3TextConfig, GPT2Config, GPTNeoConfig, GPTNeoXConfig, LlamaConfig,
                              MistralConfig, Phi3Config, Qwen2Config, Qwen3Config)

    vocab = mt.LLAMA_VOCAB
    llama3 = {"rope_type": "llama3", "rope_theta": 100000.0, "factor": 8.0, "low_freq_factor": 1.0,
              "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
    plain = {"rope_type": "default", "rope_theta": 100000.0}
    return {
        "tiny-llama3": (LlamaConfig(vocab_size=vocab, rope_parameters=llama3, **SHAPE),
                        {"rope_parameters": plain}),
        "tiny-mistral": (MistralConfig(vocab_size=vocab, sliding_window=4, rope_parameters=plain, **SHAPE),
                         {"sliding_window": None}),
        "tiny-qwen2": (Qwen2Config(vocab_size=vocab, use_sliding_window=True, sliding_window=4,
                                   max_window_layers=1, rope_parameters=plain, **SHAPE),
                       {"use_sliding_window": False}),
        "tiny-qwen3": (Qwen3Config(vocab_size=vocab, use_sliding_window=True, sliding_window=3,
                                   layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                                   rope_parameters=plain, **SHAPE),
                       {"use_sliding_window": False}),
        "tiny-gemma3": (Gemma3TextConfig(vocab_size=vocab, sliding_window=3, query_pre_attn_scalar=24,
                                         layer_types=["sliding_attention", "sliding_attention", "full_attention"],
                                         rope_parameters={
                                             "full_attention": {"rope_type": "linear", "factor": 4.0,
                                                                "rope_theta": 1000000.0},
                                             "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}},
                                         **{**SHAPE, "hidden_act": None}, hidden_activation="gelu_pytorch_tanh"),
                        {"layer_types": ["full_attention"] * 3}),
        "tiny-phi3": (Phi3Config(vocab_size=vocab, sliding_window=4,
                                 rope_parameters={"rope_type": "default", "rope_theta": 100000.0,
                                                  "partial_rotary_factor": 0.5},
                                 **{k: v for k, v in SHAPE.items() if k != "head_dim"}),
                      {"sliding_window": None}),
        "tiny-gpt2": (GPT2Config(vocab_size=vocab, n_embd=64, n_layer=3, n_head=4, n_inner=96, n_positions=256,
                                 activation_function="gelu_new", layer_norm_epsilon=1e-5, bos_token_id=1,
                                 eos_token_id=2, tie_word_embeddings=True), None),
        "tiny-gpt-neo": (GPTNeoConfig(vocab_size=vocab, hidden_size=64, num_layers=3, num_heads=4,
                                      intermediate_size=96, max_position_embeddings=256, window_size=3,
                                      attention_types=[[["global", "local", "local"], 1]],
                                      activation_function="gelu_new", layer_norm_epsilon=1e-5,
                                      bos_token_id=1, eos_token_id=2), None),
        "tiny-gpt-neox": (GPTNeoXConfig(vocab_size=vocab, hidden_size=64, num_hidden_layers=3,
                                        num_attention_heads=4, intermediate_size=96, max_position_embeddings=256,
                                        hidden_act="gelu", layer_norm_eps=1e-5, use_parallel_residual=True,
                                        rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                         "partial_rotary_factor": 0.25},
                                        tie_word_embeddings=False, bos_token_id=1, eos_token_id=2),
                          {"use_parallel_residual": False}),
    }


def make_variant(name, config):
    from transformers import AutoModelForCausalLM

    out = FAMILY / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    mt.randomize(model, SEED, emb_std=0.4)
    # randomize() knows norms by "norm" in their name; GPT-2's and GPT-Neo's are ln_1, ln_2, ln_f.
    rng = np.random.default_rng(SEED + 1)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name.split(".")[-2].startswith("ln_") and name.endswith("weight"):
                p.copy_(torch.from_numpy((1.0 + 0.1 * rng.standard_normal(tuple(p.shape))).astype(np.float32)))
            # Gemma's norms multiply by 1 + w: w near 0 is the same scale as other models' 1 + noise.
            elif config.model_type == "gemma3_text" and "norm" in name.split(".")[-2]:
                p.copy_(torch.from_numpy((0.1 * rng.standard_normal(tuple(p.shape))).astype(np.float32)))
    model.tie_weights()
    model.eval()
    model.save_pretrained(str(out), safe_serialization=True)
    for f in ["tokenizer.json", "tokenizer_config.json"]:
        shutil.copy(rc.TINY_LLAMA / f, out / f)
    return out


def check_the_variant_matters(loaded, name, neutral):
    """The same weights without the variant's feature must give other logits on the prompts."""
    from transformers import AutoConfig, AutoModelForCausalLM

    if neutral is None:
        return None
    cfg = AutoConfig.from_pretrained(str(loaded.path))
    for key, value in neutral.items():
        setattr(cfg, key, value)
    if "use_sliding_window" in neutral:
        cfg.layer_types = ["full_attention"] * cfg.num_hidden_layers
    other = AutoModelForCausalLM.from_pretrained(str(loaded.path), config=cfg, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    worst = 0.0
    for rel, pat, subj, obj in FACTS:
        ids, _ = loaded.encode(mg.pr.causal_prefix(pat, subj))
        with torch.no_grad():
            a = loaded.forward_logits(ids)[-1]
            b = other(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1]
        worst = max(worst, (a - b).abs().max().item())
    assert worst > 1e-2, f"{name}: the variant's feature changes logits by only {worst:.1e}"
    print(f"  {name}: without its feature the logits move by up to {worst:.3f}: the golden tests it")
    return worst


FACTS = rc.TINY_LLAMA_FACTS[:8]
# Where the variant's feature is the architecture itself (GPT-2, GPT-Neo), no neutral form.


def golden(name, neutral):
    path = FAMILY / name
    loaded = rc.load_model(path)
    entries = mg.logits_entries(loaded, FACTS, masked=False)
    shortest = min(len(e["input_ids"]) for e in entries)
    moved = check_the_variant_matters(loaded, name, neutral)
    layers = list(range(loaded.n_layers()))
    # The first fact and the one with the longest prompt.
    longest = max(range(len(entries)), key=lambda k: len(entries[k]["input_ids"]))
    cases = [
        mg.ig_case(loaded, "first", FACTS[0], False, layers),
        mg.ig_case(loaded, "longest", FACTS[longest], False, layers),
    ]
    doc = rc.header("make_family_models.py", path)
    doc.update({
        "description": f"{name}: next-token logits at the last prompt position (no BOS; answer = first "
                       "token of ' ' + object) and integrated gradients (definition as ig_tiny_llama.json).",
        "definition": mg.IG_DEFINITION,
        "tolerances": {**mg.TOLERANCES, "logits": "absolute 1e-4"},
        "model_type": loaded.model.config.model_type,
        "vocab_size": loaded.model.config.vocab_size,
        "shortest_prompt_tokens": shortest,
        "max_abs_logit_change_without_the_feature": None if moved is None else rc.r7(moved),
        "prompts": entries,
        "cases": cases,
    })
    return doc


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", help="write only these variants")
    args = ap.parse_args()
    rc.setup_torch(2)
    for name, (config, neutral) in variants().items():
        if args.only and name not in args.only:
            continue
        print(f"{name} ...", flush=True)
        make_variant(name, config)
        path = rc.write_json(rc.GOLDEN / f"family_{name.removeprefix('tiny-')}.json", golden(name, neutral))
        print(f"wrote {rc.rel(path)} ({path.stat().st_size} bytes)", flush=True)


if __name__ == "__main__":
    main()
