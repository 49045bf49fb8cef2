#!/usr/bin/env python3
"""Floating-point work of one integrated-gradients attribution (all layers, m points), counted.

Counts multiply-adds (MACs) of the matrix products and reports FLOPs = 2 x MACs; element-wise work
(norms, activations, softmax) is left out (it is O(d) per token against O(d^2)). A backward pass
that only needs input gradients (weights never require grad) costs one product per linear layer,
the same MACs as its forward.

Rust (kn-attribution + kn-model): a row = (layer l, point k). Its pass starts at layer l from the
clean pass's cache: layer l's down/output projection at the answer position only, then layers
l+1..L-1 -- causal models at the answer position only (cached keys/values of the prefix), BERT at
every position -- then the output head at the answer position; forward + input-gradient backward.

Python reference (ig_reference.py): for each layer l, m copies of the prompt through the whole
model (all layers, all positions, the head at all positions -- transformers computes every
position's logits), backward from the logits through the head (all positions), layers L-1..l+1
(all positions) and layer l's down projection (all positions: the hooked tensor is a clone of the
whole activation).

Usage: flops.py smollm2 5      (model, prompt length in tokens)  -> prints the counts
       import flops; flops.rust_flops("smollm2", 5)
"""
import sys

MODELS = {
    # SmolLM2-135M: hidden 576, 30 layers, 9 heads / 3 KV heads of 64, SwiGLU FFN 1536, vocab 49152.
    "smollm2": dict(kind="causal", d=576, f=1536, layers=30, heads=9, kv_heads=3, head_dim=64, vocab=49152),
    # bert-base-cased: hidden 768, 12 layers, 12 heads of 64, FFN 3072, vocab 28996 (+ the MLM transform).
    "bert-base": dict(kind="masked", d=768, f=3072, layers=12, heads=12, kv_heads=12, head_dim=64, vocab=28996),
    # The Llama-3.2-1B shape (examples/make_llama_shaped.rs): hidden 2048, 16 layers, 32 heads / 8 KV heads of
    # 64, SwiGLU FFN 8192, vocab 128256 (tied head).
    "llama-3.2-1b-shaped": dict(kind="causal", d=2048, f=8192, layers=16, heads=32, kv_heads=8, head_dim=64,
                                vocab=128256),
}


def layer_macs(c):
    """Weights of one layer = MACs per token (projections + FFN)."""
    q = c["heads"] * c["head_dim"]
    kv = c["kv_heads"] * c["head_dim"]
    if c["kind"] == "causal":
        return c["d"] * q + 2 * c["d"] * kv + q * c["d"] + 3 * c["d"] * c["f"]  # q,k,v,o + gate,up,down
    return c["d"] * q + 2 * c["d"] * kv + q * c["d"] + 2 * c["d"] * c["f"]  # q,k,v,o + in,out


def attention_macs(c, t):
    """Scores and weighted sum of one query over t keys."""
    return 2 * c["heads"] * c["head_dim"] * t


def head_macs(c):
    return c["d"] * c["vocab"] + (c["d"] * c["d"] if c["kind"] == "masked" else 0)


def down_macs(c):
    return c["f"] * c["d"]


def rust_macs(model, t, m=20):
    """(layer MACs, head MACs) of the forward of all rows; the backward is the same again."""
    c = MODELS[model]
    L = c["layers"]
    per_token_layer = layer_macs(c) + attention_macs(c, t)
    recomputed = sum(L - 1 - l for l in range(L)) * m  # row-layers after the start layer
    tokens = 1 if c["kind"] == "causal" else t
    layers = recomputed * tokens * per_token_layer + L * m * down_macs(c)
    head = L * m * head_macs(c)
    return layers, head


def python_macs(model, t, m=20):
    """(forward MACs, backward MACs), head included, over all layers' passes."""
    c = MODELS[model]
    L = c["layers"]
    per_token_layer = layer_macs(c) + attention_macs(c, t)
    fwd = L * m * t * (L * per_token_layer + head_macs(c))
    bwd = sum(m * t * ((L - 1 - l) * per_token_layer + down_macs(c) + head_macs(c)) for l in range(L))
    return fwd, bwd


def clean_macs(model, t):
    c = MODELS[model]
    return t * c["layers"] * (layer_macs(c) + attention_macs(c, t)) + head_macs(c)


def rust_flops(model, t, m=20):
    layers, head = rust_macs(model, t, m)
    return 2 * 2 * (layers + head) + 2 * clean_macs(model, t)  # forward + backward, + the clean pass


def python_flops(model, t, m=20):
    fwd, bwd = python_macs(model, t, m)
    return 2 * (fwd + bwd) + 2 * clean_macs(model, t)


def report(model, t, m=20):
    layers, head = rust_macs(model, t, m)
    fwd, bwd = python_macs(model, t, m)
    g = 1e9
    print(f"{model}, {t} tokens, m = {m}: per-layer weights {layer_macs(MODELS[model]) / 1e6:.2f} M, head {head_macs(MODELS[model]) / 1e6:.2f} M")
    print(f"  rust:   layers {4 * layers / g:7.1f} GFLOP (fwd+bwd), head {4 * head / g:6.1f} GFLOP (fwd+bwd), "
          f"clean pass {2 * clean_macs(model, t) / g:5.2f} -> total {rust_flops(model, t, m) / g:7.1f} GFLOP")
    print(f"  python: forward {2 * fwd / g:7.1f} GFLOP, backward {2 * bwd / g:7.1f} GFLOP -> total {python_flops(model, t, m) / g:7.1f} GFLOP")
    print(f"  ratio python / rust: {python_flops(model, t, m) / rust_flops(model, t, m):.2f}")


if __name__ == "__main__":
    report(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 20)
