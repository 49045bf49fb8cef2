#!/usr/bin/env python3
"""Gradient-based neuron scores of the clean run, plainly: gradient x activation and attribution
patching (AtP), the golden numbers of `kn attribute --method grad-x-act|atp`.

Definitions implemented (transformers, hooks, no shortcuts):
  a_l      = layer l's FFN intermediate activation at the answer position of the clean prompt
             (Llama: the input of mlp.down_proj; GPT-2: the input of mlp.c_proj; BERT: the output
             of the intermediate dense + GELU), captured by a hook on the clean pass.
  a_l^cf   = the same on the counterfactual prompt, at its own answer position (its last token).
  g_l      = d log softmax(logits at the answer position)[answer] / d a_l at the clean run: a_l
             is put back by a hook as a leaf that requires grad, one forward and backward per
             layer.
  grad-x-act (log-probability target) = a_l * g_l
  atp                                 = (a_l^cf - a_l) * g_l

Writes fixtures/golden/atp_tiny.json for the committed tiny models:
  .deps/pyref/bin/python scripts/reference/atp_reference.py
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ig_reference as ig  # noqa: E402
import ref_common as rc  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

CASES = [
    # (model directory, clean prompt, counterfactual prompt, answer)
    ("fixtures/tiny-llama", "The capital of France is", "The capital of Japan is", "Paris"),
    ("fixtures/tiny-llama", "Bill Gates works for", "Steve Jobs works for", "Microsoft"),
    ("fixtures/family/tiny-gpt2", "The capital of France is", "The capital of Japan is", "Paris"),
    ("fixtures/family/tiny-gemma3", "Bill Gates works for", "Steve Jobs works for", "Microsoft"),
]


def clean_gradients(loaded, ids, pos, answer_id, layers):
    """The clean activations and the log-probability gradient with respect to each layer's."""
    _, acts = ig.clean_pass(loaded, ids, pos, layers)
    grads = {}
    for layer in layers:
        x = acts[layer][None, :].clone().requires_grad_(True)
        handle = ig._replace_hook(loaded, layer, pos, x)
        try:
            logits = loaded.model(**ig._batch_inputs(loaded, ids, 1)).logits[:, pos, :]
            value = torch.log_softmax(logits, dim=-1)[:, answer_id].sum()
            (grad,) = torch.autograd.grad(value, x)
        finally:
            handle.remove()
        grads[layer] = grad[0]
    return acts, grads


def main():
    rc.setup_torch(threads=2)
    cases = []
    for model_dir, prompt, counterfactual, answer in CASES:
        loaded = rc.load_model(ROOT / model_dir)
        layers = list(range(loaded.n_layers()))
        ids, pos = loaded.encode(prompt)
        cf_ids, cf_pos = loaded.encode(counterfactual)
        answer_id = loaded.answer_id(answer)
        acts, grads = clean_gradients(loaded, ids, pos, answer_id, layers)
        _, cf_acts = ig.clean_pass(loaded, cf_ids, cf_pos, layers)
        gxa = [(acts[l] * grads[l]).tolist() for l in layers]
        atp = [((cf_acts[l] - acts[l]) * grads[l]).tolist() for l in layers]
        cases.append({
            "model": model_dir,
            "prompt": prompt,
            "counterfactual": counterfactual,
            "answer": answer,
            "input_ids": ids,
            "counterfactual_ids": cf_ids,
            "answer_id": answer_id,
            "layers": layers,
            "max_abs_grad_x_act": max(abs(v) for row in gxa for v in row),
            "max_abs_atp": max(abs(v) for row in atp for v in row),
            "grad_x_act": [[rc.r7(v) for v in row] for row in gxa],
            "atp": [[rc.r7(v) for v in row] for row in atp],
        })
        print(f"{model_dir}: {prompt!r} vs {counterfactual!r}", file=sys.stderr)
    out = ROOT / "fixtures/golden/atp_tiny.json"
    models = sorted({model_dir for model_dir, *_ in CASES})
    header = rc.header("atp_reference.py", ROOT / CASES[0][0], models=models)
    rc.write_json(out, {**header, "cases": cases})
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
