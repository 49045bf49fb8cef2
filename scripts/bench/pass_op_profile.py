#!/usr/bin/env python3
"""Where the time of SmolLM2's recomputed layers goes, op by op: the same operations as the Rust
resumed pass (crates/kn-model/src/llama.rs, `resume_layer` and `attend_after_prefix`, one recomputed
position, m = 20: rows of layer l join after its down projection, 20 j rows reach layer j), in
PyTorch on the same libtorch kernels, with random weights of SmolLM2's shapes and a 4-token prefix;
one forward and one backward (to the starting activations, no weight gradients), then the same
under torch.profiler, its table sorted by self CPU time. The head and the clean pass are not in it
(examples/profile_bench.rs times those).

    python scripts/bench/pass_op_profile.py [--threads 2]     # with the reference venv's python
"""
import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

LAYERS, HIDDEN, FFN, HEADS, KV_HEADS, HEAD_DIM, PREFIX, STEPS = 30, 576, 1536, 9, 3, 64, 4, 20
GROUPS = HEADS // KV_HEADS


def make_layers():
    torch.manual_seed(0)
    return [dict(qkv=torch.randn((HEADS + 2 * KV_HEADS) * HEAD_DIM, HIDDEN) * 0.03,
                 wo=torch.randn(HIDDEN, HIDDEN) * 0.03,
                 gate_up=torch.randn(2 * FFN, HIDDEN) * 0.03,
                 down=torch.randn(HIDDEN, FFN) * 0.03,
                 attn_norm=torch.ones(HIDDEN), ffn_norm=torch.ones(HIDDEN),
                 prefix_k=torch.randn(KV_HEADS, PREFIX, HEAD_DIM), prefix_v=torch.randn(KV_HEADS, PREFIX, HEAD_DIM))
            for _ in range(LAYERS)]


def rope_tables():
    inv_freq = 1.0 / (10000 ** (torch.arange(0, HEAD_DIM, 2).float() / HEAD_DIM))
    angles = torch.tensor([float(PREFIX)])[:, None] * inv_freq[None]
    angles = torch.cat([angles, angles], 1)
    return angles.cos(), angles.sin()


COS, SIN = rope_tables()


def rope(x):
    first, second = x.chunk(2, -1)
    return x * COS + torch.cat([-second, first], -1) * SIN


def layer(x, w):
    n = x.shape[0]
    h = torch.nn.functional.rms_norm(x, [HIDDEN], w["attn_norm"], 1e-5)
    qkv = torch.nn.functional.linear(h, w["qkv"])
    qk, v = qkv.split([(HEADS + KV_HEADS) * HEAD_DIM, KV_HEADS * HEAD_DIM], -1)
    q, k = rope(qk.reshape(n, 1, HEADS + KV_HEADS, HEAD_DIM).transpose(1, 2)).split([HEADS, KV_HEADS], 1)
    v = v.reshape(n, 1, KV_HEADS, HEAD_DIM).transpose(1, 2)
    q = q.reshape(n, KV_HEADS, GROUPS, HEAD_DIM)
    scale = HEAD_DIM ** -0.5
    own = (q * k).sum(-1, keepdim=True) * scale
    by_head = q.transpose(0, 1).reshape(KV_HEADS, n * GROUPS, HEAD_DIM)
    prefix_scores = (by_head.bmm(w["prefix_k"].transpose(1, 2)) * scale).reshape(KV_HEADS, n, GROUPS, PREFIX).transpose(0, 1)
    weights = torch.cat([prefix_scores, own], -1).softmax(-1)
    to_prefix, to_own = weights.split([PREFIX, 1], -1)
    from_prefix = (to_prefix.transpose(0, 1).reshape(KV_HEADS, n * GROUPS, PREFIX).bmm(w["prefix_v"])
                   .reshape(KV_HEADS, n, GROUPS, HEAD_DIM).transpose(0, 1))
    attended = (from_prefix + to_own * v).reshape(n, HEADS * HEAD_DIM)
    x = x + torch.nn.functional.linear(attended, w["wo"])
    gate, up = torch.nn.functional.linear(torch.nn.functional.rms_norm(x, [HIDDEN], w["ffn_norm"], 1e-5), w["gate_up"]).split(FFN, -1)
    return x + torch.nn.functional.linear(torch.nn.functional.silu(gate) * up, w["down"])


def one_pass(layers):
    x = None
    for w in layers:
        if x is not None:
            x = layer(x, w)
        start = torch.randn(STEPS, FFN, requires_grad=True)
        rows = torch.randn(1, HIDDEN) + torch.nn.functional.linear(start, w["down"])
        x = rows if x is None else torch.cat([x, rows], 0)
    (x * torch.randn_like(x)).sum().backward()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    layers = make_layers()
    for _ in range(2):
        one_pass(layers)
    best = min(timed(one_pass, layers) for _ in range(3))
    print(f"forward + backward of the recomputed layers: {best:.3f} s (best of 3, {args.threads} threads)")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        one_pass(layers)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


def timed(function, *arguments):
    started = time.perf_counter()
    function(*arguments)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
