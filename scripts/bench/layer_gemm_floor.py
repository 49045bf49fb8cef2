#!/usr/bin/env python3
"""The floor of SmolLM2's layer work in one attribution pass: only the matrix products of the
recomputed layers, at the row counts they really have (20 j rows at layer j for m = 20, forward
x Wᵀ and input-gradient g W), timed with torch's float32 GEMM on 2 threads, best of 3.
Everything else the pass does (norms, RoPE, attention, activations, autograd) comes on top.

    python scripts/bench/layer_gemm_floor.py     # with the reference venv's python
"""
import torch, time
torch.set_num_threads(2)
shapes = [(960, 576), (576, 576), (3072, 576), (576, 1536)]  # (out, in)
Ws = [torch.randn(o, i) for o, i in shapes]
def t(f, reps=3):
    f(); best=1e9
    for _ in range(reps):
        s=time.perf_counter(); f(); best=min(best, time.perf_counter()-s)
    return best
total_f = total_b = 0; flops = 0
for j in range(1, 30):
    M = 20 * j
    xs = [torch.randn(M, i) for o, i in shapes]; gs = [torch.randn(M, o) for o, i in shapes]
    tf = t(lambda: [torch.nn.functional.linear(x, W) for x, W in zip(xs, Ws)])
    tb = t(lambda: [g @ W for g, W in zip(gs, Ws)])
    total_f += tf; total_b += tb; flops += sum(2*M*o*i for o, i in shapes)
print(f"layers pure GEMM: fwd {total_f:.3f} s, bwd {total_b:.3f} s, {flops/1e9:.1f} GFLOP each way, {flops/total_f/1e9:.0f} / {flops/total_b/1e9:.0f} GFLOP/s")
