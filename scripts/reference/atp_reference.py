#!/usr/bin/env python3
"""Neuron scores of the clean run, plainly: gradient x activation, attribution patching (AtP) and
Yu & Ananiadou's log-probability increase, the golden numbers of
`kn attribute --method grad-x-act|atp|logprob-increase`.

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
  logprob-increase (RMSNorm decoders without sandwich norms; as their code's
  find_ffn_value_neurons):
      h       = the residual after layer l's attention at the answer position (the input of
                post_attention_layernorm), h_final = the input of the final norm there,
      bs(x)   = lm_head(norm.weight * x / sqrt(mean(h_final^2) + rms_norm_eps)),
      score_i = log softmax(bs(h + a_l[i] * down_proj.weight[:, i]))[answer]
                - log softmax(bs(h))[answer]

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
    ("fixtures/family/tiny-qwen2", "The capital of France is", "The capital of Japan is", "Paris"),
]


def logprob_increase(loaded, ids, pos, answer_id, layers):
    """The log-probability increase of every FFN neuron (None where it is not defined)."""
    cfg = loaded.model.config
    if cfg.model_type not in ("llama", "mistral", "qwen2", "qwen3", "phi3"):
        return None
    inner = loaded.model.model
    residuals, coefficients, final = {}, {}, {}
    handles = [inner.norm.register_forward_pre_hook(
        lambda mod, a: final.__setitem__("h", a[0][0, pos].detach().clone()))]
    for layer in layers:
        block = inner.layers[layer]
        handles.append(block.post_attention_layernorm.register_forward_pre_hook(
            lambda mod, a, layer=layer: residuals.__setitem__(layer, a[0][0, pos].detach().clone())))
        handles.append(block.mlp.down_proj.register_forward_pre_hook(
            lambda mod, a, layer=layer: coefficients.__setitem__(layer, a[0][0, pos].detach().clone())))
    try:
        with torch.no_grad():
            loaded.model(**ig._batch_inputs(loaded, ids, 1))
    finally:
        for handle in handles:
            handle.remove()
    scale = torch.sqrt(final["h"].pow(2).mean() + cfg.rms_norm_eps)

    def read_out(x):
        return loaded.model.lm_head(inner.norm.weight * x / scale)

    rows = []
    with torch.no_grad():
        for layer in layers:
            h = residuals[layer]
            base = torch.log_softmax(read_out(h), dim=-1)[answer_id]
            values = (coefficients[layer][:, None] * inner.layers[layer].mlp.down_proj.weight.T)  # [F, d]
            scores = torch.log_softmax(read_out(values + h[None, :]), dim=-1)[:, answer_id] - base
            rows.append(scores.tolist())
    return rows


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
        lpi = logprob_increase(loaded, ids, pos, answer_id, layers)
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
            "max_abs_logprob_increase": None if lpi is None else max(abs(v) for row in lpi for v in row),
            "logprob_increase": None if lpi is None else [[rc.r7(v) for v in row] for row in lpi],
        })
        print(f"{model_dir}: {prompt!r} vs {counterfactual!r}", file=sys.stderr)
    out = ROOT / "fixtures/golden/atp_tiny.json"
    models = sorted({model_dir for model_dir, *_ in CASES})
    header = rc.header("atp_reference.py", ROOT / CASES[0][0], models=models)
    rc.write_json(out, {**header, "cases": cases})
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
