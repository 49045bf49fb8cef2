#!/usr/bin/env python3
"""Integrated-gradients reference for knowledge-neuron attribution (Dai et al., ACL 2022), plainly.

Definition implemented (no shortcuts):
  a       = the layer-l FFN intermediate activation vector at the answer position on the clean pass.
            BERT:  output of encoder.layer[l].intermediate, i.e. gelu(dense(x)), at the [MASK] position.
            Llama: input of mlp.down_proj, i.e. silu(gate_proj(x)) * up_proj(x), at the last prompt position.
  For each integration point alpha_k, that one vector is replaced by alpha_k * a (a hook), the full
  model is run, and the gradient of the target -- softmax(logits)[answer] ("prob", the paper's) or
  log_softmax(logits)[answer] ("logprob") at the answer position -- is taken with respect to the
  replaced vector (and nothing else: every weight has requires_grad False).
  Attribution_i = a_i * mean_k grad_i(alpha_k).
  Rules: "left"      alpha_k = k/m,        k = 0..m-1 (default; m = 20)
         "midpoint"  alpha_k = (k+0.5)/m,  k = 0..m-1
         "right"     alpha_k = (k+1)/m,    k = 0..m-1
  The m points of one layer run as one batch of m copies of the prompt (no padding beyond the
  prompt); that is one forward + one backward per layer.

As a timing baseline:
  python scripts/reference/ig_reference.py --model ~/.cache/knowledge-neurons/models/SmolLM2-135M-Instruct.Q4_1.gguf \
      --prompt "The capital of France is" --answer Paris --layers all --steps 20 --threads 2 --time
"""
import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ref_common as rc  # noqa: E402


def alphas_for(steps, rule):
    if rule == "left":
        return [k / steps for k in range(steps)]
    if rule == "midpoint":
        return [(k + 0.5) / steps for k in range(steps)]
    if rule == "right":
        return [(k + 1) / steps for k in range(steps)]
    raise ValueError(f"unknown rule {rule!r}")


def ffn_site(loaded, layer):
    """(module, kind) where the FFN intermediate activation lives for this layer."""
    if loaded.kind == "bert":
        return loaded.layers()[layer].intermediate, "output"
    return loaded.down_proj(layer), "input"


def _batch_inputs(loaded, ids, n):
    x = torch.tensor([ids] * n, dtype=torch.long, device=loaded.device)
    if loaded.kind == "bert":
        return dict(input_ids=x, attention_mask=torch.ones_like(x), token_type_ids=torch.zeros_like(x))
    return dict(input_ids=x, use_cache=False)


def _replace_hook(loaded, layer, pos, value):
    """Install a hook that puts value[b] (shape [batch, F]) at position pos of the FFN activation."""
    module, where = ffn_site(loaded, layer)
    if where == "output":
        def hook(mod, inputs, output):
            out = output.clone()
            out[:, pos, :] = value
            return out

        return module.register_forward_hook(hook)

    def pre_hook(mod, args):
        h = args[0].clone()
        h[:, pos, :] = value
        return (h,) + tuple(args[1:])

    return module.register_forward_pre_hook(pre_hook)


def clean_pass(loaded, ids, pos, layers):
    """One forward pass: logits at pos and the FFN activation vector at pos for each layer."""
    acts = {}
    handles = []
    for l in layers:
        module, where = ffn_site(loaded, l)
        if where == "output":
            handles.append(module.register_forward_hook(
                lambda mod, i, o, l=l: acts.__setitem__(l, o[0, pos].detach().clone())))
        else:
            handles.append(module.register_forward_pre_hook(
                lambda mod, a, l=l: acts.__setitem__(l, a[0][0, pos].detach().clone())))
    try:
        with torch.no_grad():
            logits = loaded.model(**_batch_inputs(loaded, ids, 1)).logits[0, pos]
    finally:
        for h in handles:
            h.remove()
    return logits, acts


def target_of(logits, answer_id, target):
    if target == "prob":
        return torch.softmax(logits, dim=-1)[..., answer_id]
    if target == "logprob":
        return torch.log_softmax(logits, dim=-1)[..., answer_id]
    raise ValueError(f"unknown target {target!r}")


def ig_layer(loaded, ids, pos, answer_id, layer, act, steps=20, rule="left", target="prob", batch=None):
    """Attribution vector (F,) for one layer, and the mean gradient."""
    alphas = torch.tensor(alphas_for(steps, rule), dtype=act.dtype, device=act.device)
    batch = batch or steps
    grad_sum = torch.zeros_like(act)
    for start in range(0, steps, batch):
        al = alphas[start:start + batch]
        x = (al[:, None] * act[None, :]).detach().requires_grad_(True)
        h = _replace_hook(loaded, layer, pos, x)
        try:
            logits = loaded.model(**_batch_inputs(loaded, ids, len(al))).logits[:, pos, :]
            t = target_of(logits, answer_id, target)
            (g,) = torch.autograd.grad(t.sum(), x)
        finally:
            h.remove()
        grad_sum += g.sum(0)
    grad_mean = grad_sum / steps
    return act * grad_mean, grad_mean


def endpoint_probs(loaded, ids, pos, answer_id, layer, act):
    """p(answer) with the layer's vector scaled by alpha = 0 and alpha = 1 (batch of two)."""
    x = torch.stack([torch.zeros_like(act), act])
    h = _replace_hook(loaded, layer, pos, x)
    try:
        with torch.no_grad():
            logits = loaded.model(**_batch_inputs(loaded, ids, 2)).logits[:, pos, :]
    finally:
        h.remove()
    p = torch.softmax(logits, dim=-1)[:, answer_id]
    return float(p[0]), float(p[1])


def run_ig(loaded, ids, pos, answer_id, layers, steps=20, rule="left", target="prob", batch=None,
           endpoints=True):
    """IG for every layer in `layers`. Returns a dict of torch tensors / floats."""
    logits, acts = clean_pass(loaded, ids, pos, layers)
    out = {
        "clean_logits": logits,
        "clean_prob": float(torch.softmax(logits, -1)[answer_id]),
        "clean_target": float(target_of(logits, answer_id, target)),
        "layers": list(layers),
        "activations": [],
        "attributions": [],
        "grad_means": [],
        "p_alpha0": [],
        "p_alpha1": [],
    }
    for l in layers:
        attr, gm = ig_layer(loaded, ids, pos, answer_id, l, acts[l], steps, rule, target, batch)
        out["activations"].append(acts[l])
        out["attributions"].append(attr)
        out["grad_means"].append(gm)
        if endpoints:
            p0, p1 = endpoint_probs(loaded, ids, pos, answer_id, l, acts[l])
            out["p_alpha0"].append(p0)
            out["p_alpha1"].append(p1)
    return out


def top_neurons(layers, attributions, k=20):
    rows = []
    for l, a in zip(layers, attributions):
        for i, v in enumerate(a.tolist()):
            rows.append((v, l, i))
    rows.sort(key=lambda r: (-r[0], r[1], r[2]))
    return [{"layer": l, "neuron": i, "score": v} for v, l, i in rows[:k]]


def parse_layers(spec, n):
    if spec == "all":
        return list(range(n))
    out = [int(s) for s in spec.split(",") if s.strip()]
    for l in out:
        if not 0 <= l < n:
            raise SystemExit(f"layer {l} out of range 0..{n - 1}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a .gguf file (causal LM) or a tiny-bert / tiny-llama directory")
    ap.add_argument("--prompt", action="append", required=True,
                    help="prompt (BERT: contains [MASK]; causal LM: the text before the answer). Repeatable.")
    ap.add_argument("--answer", action="append", default=[],
                    help="answer word (causal LM: first token of ' '+answer; BERT: first WordPiece). Repeatable.")
    ap.add_argument("--answer-id", action="append", type=int, default=[], help="answer token id instead of --answer")
    ap.add_argument("--layers", default="all", help='"all" or a comma list, e.g. 0,9,20,29')
    ap.add_argument("--steps", type=int, default=20, help="integration points m (default 20)")
    ap.add_argument("--rule", default="left", choices=["left", "midpoint", "right"])
    ap.add_argument("--target", default="prob", choices=["prob", "logprob"])
    ap.add_argument("--batch", type=int, default=None, help="integration points per forward pass (default: all m)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="torch device, e.g. cpu (default) or cuda")
    ap.add_argument("--time", action="store_true", help="print seconds per prompt for all requested layers")
    ap.add_argument("--repeat", type=int, default=1, help="with --time: run each prompt this many times")
    ap.add_argument("--top", type=int, default=20, help="print the top-k neurons")
    ap.add_argument("--json", help="write the full result (activations, attributions) to this file")
    args = ap.parse_args()

    rc.setup_torch(args.threads)
    t0 = time.perf_counter()
    loaded = rc.load_model(args.model, threads=args.threads, device=args.device)
    sync = torch.cuda.synchronize if loaded.device.type == "cuda" else (lambda: None)
    load_s = time.perf_counter() - t0
    layers = parse_layers(args.layers, loaded.n_layers())
    answers = args.answer_id or args.answer
    if len(answers) != len(args.prompt):
        raise SystemExit("give one --answer (or --answer-id) per --prompt")
    print(f"model {args.model}: {loaded.kind}, {loaded.n_layers()} layers, FFN {loaded.ffn_size()}; "
          f"loaded in {load_s:.1f} s; torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)

    results = []
    times = []
    cpu_times = []
    for prompt, answer in zip(args.prompt, answers):
        ids, pos = loaded.encode(prompt)
        aid = answer if isinstance(answer, int) else loaded.answer_id(answer)
        for rep in range(args.repeat):
            t, c = time.perf_counter(), time.process_time()
            res = run_ig(loaded, ids, pos, aid, layers, args.steps, args.rule, args.target, args.batch,
                         endpoints=not args.time)
            sync()
            dt, dc = time.perf_counter() - t, time.process_time() - c
            times.append(dt)
            cpu_times.append(dc)
            if args.time:
                print(f"[time] prompt {prompt!r}: {len(layers)} layers x m={args.steps} ({len(ids)} tokens): "
                      f"{dt:.2f} s wall, {dc:.2f} s CPU (run {rep + 1}/{args.repeat})", flush=True)
        top = top_neurons(layers, res["attributions"], args.top)
        print(f"prompt {prompt!r} ids {ids} answer id {aid} ({loaded.token_str(aid)!r}) "
              f"clean p = {res['clean_prob']:.6g}")
        for r in top:
            print(f"  L{r['layer']:>2} n{r['neuron']:>5}  {r['score']:+.6e}")
        results.append({
            "prompt": prompt,
            "input_ids": ids,
            "answer_position": pos,
            "answer_id": aid,
            "clean_prob": rc.r7(res["clean_prob"]),
            "layers": layers,
            "steps": args.steps,
            "rule": args.rule,
            "target": args.target,
            "activations": rc.r7(torch.stack(res["activations"])),
            "attributions": rc.r7(torch.stack(res["attributions"])),
            "p_alpha0": rc.r7(res["p_alpha0"]),
            "p_alpha1": rc.r7(res["p_alpha1"]),
            "top20": [{**r, "score": rc.r7(r["score"])} for r in top],
        })
    if args.time:
        mean = sum(times) / len(times)
        print(f"[time] seconds per prompt (all {len(layers)} requested layers, m={args.steps}, "
              f"{torch.get_num_threads()} threads): mean {mean:.2f}, min {min(times):.2f}, over {len(times)} runs; "
              f"CPU seconds per prompt: mean {sum(cpu_times) / len(cpu_times):.2f} (wall ~ CPU / threads when "
              f"the machine is otherwise idle)")
    if args.json:
        rc.write_json(args.json, {**rc.header("ig_reference.py", args.model), "results": results})
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
