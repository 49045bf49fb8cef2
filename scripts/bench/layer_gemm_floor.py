#!/usr/bin/env python3
"""The floor of SmolLM2's work in one attribution pass: only its matrix products, at the row
counts they really have, timed with torch's float32 GEMM (the MKL that the Rust side's libtorch
uses), best of 3. The recomputed layers: 20 j rows at layer j for m = 20, forward x Wᵀ and
input-gradient g W. The output head: 600 rows against the vocabulary in blocks of 2,048 rows of
the tied embedding, logits W_b fᵀ and the weighted sum eᵀ W_b (as in kn-attribution's closed-form
head). Everything else the pass does (norms, RoPE, attention, activations, softmax) comes on top.

    python scripts/bench/layer_gemm_floor.py [--threads 2]     # with the reference venv's python
"""
import argparse
import time

import torch

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--threads", type=int, default=2)
threads = parser.parse_args().threads
torch.set_num_threads(threads)
shapes = [(960, 576), (576, 576), (3072, 576), (576, 1536)]  # (out, in)
Ws = [torch.randn(o, i) for o, i in shapes]


def t(f, reps=3):
    f(); best = 1e9
    for _ in range(reps):
        s = time.perf_counter(); f(); best = min(best, time.perf_counter() - s)
    return best


total_f = total_b = 0; flops = 0
for j in range(1, 30):
    M = 20 * j
    xs = [torch.randn(M, i) for o, i in shapes]; gs = [torch.randn(M, o) for o, i in shapes]
    tf = t(lambda: [torch.nn.functional.linear(x, W) for x, W in zip(xs, Ws)])
    tb = t(lambda: [g @ W for g, W in zip(gs, Ws)])
    total_f += tf; total_b += tb; flops += sum(2*M*o*i for o, i in shapes)
print(f"{threads} thread(s): layers pure GEMM: fwd {total_f:.3f} s, bwd {total_b:.3f} s, {flops/1e9:.1f} GFLOP each way, "
      f"{flops/total_f/1e9:.0f} / {flops/total_b/1e9:.0f} GFLOP/s")
vocab, hidden, rows, block = 49152, 576, 600, 2048
embedding = torch.randn(vocab, hidden); features = torch.randn(rows, hidden)
weights = torch.rand(block, rows); acc = torch.zeros(rows, hidden)
head_flops = 2 * rows * vocab * hidden
tl = t(lambda: [embedding[s:s + block].mm(features.t()) for s in range(0, vocab, block)])
tw = t(lambda: [acc.addmm_(weights.t(), embedding[s:s + block]) for s in range(0, vocab, block)])
print(f"{threads} thread(s): head pure GEMM ({rows} rows): logits {tl:.3f} s, weighted sum {tw:.3f} s, {head_flops/1e9:.1f} GFLOP each, "
      f"{head_flops/tl/1e9:.0f} / {head_flops/tw/1e9:.0f} GFLOP/s")
