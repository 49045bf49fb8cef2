#!/usr/bin/env python3
"""Write the golden outputs in fixtures/golden/ that the Rust tests compare against.

  tiny_bert_logits.json      tiny-bert: full logits at [MASK] + top-5, 12 PARAREL prompts
  tiny_llama_logits.json     tiny-llama (safetensors): full next-token logits + top-5, 11 prompts
  tiny_llama_q8_logits.json  tiny-llama-q8.gguf dequantized by gguf-py, same prompts
  smollm2_top5.json          SmolLM2-135M-Instruct Q4_1 GGUF via transformers: top-5 + answer prob, 33 prompts
  ig_tiny_bert.json          integrated gradients (ig_reference.py), all layers, full L x F matrices
  ig_tiny_llama.json         same for tiny-llama
  ig_smollm2.json            SmolLM2, layers 0, 9, 20, 29, 3 prompts, full 1536-vectors

Float32, eager attention, eval mode, 2 torch threads. Numbers are rounded to 7 significant digits.
The SmolLM2 files need the model at $KN_CACHE_DIR/models/SmolLM2-135M-Instruct.Q4_1.gguf
(scripts/fetch-model.sh; or set KN_SMOLLM2_GGUF); without it they are skipped with a warning.

Run:  .deps/pyref/bin/python scripts/reference/make_golden_outputs.py [--only NAME ...]
"""
import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ig_reference as ig  # noqa: E402
import ref_common as rc  # noqa: E402
import ref_pararel as pr  # noqa: E402

IG_DEFINITION = (
    "a = layer-l FFN intermediate activation at the answer position on the clean pass (BERT: output of "
    "encoder.layer[l].intermediate = gelu(dense(x)) at [MASK]; Llama: input of mlp.down_proj = "
    "silu(gate_proj(x)) * up_proj(x) at the last prompt position). For each alpha_k that vector alone "
    "is replaced by alpha_k * a, the full model is run, and the gradient of the target (prob: "
    "softmax(logits)[answer]; logprob: log_softmax(logits)[answer]) at the answer position is taken "
    "w.r.t. the replaced vector. attribution_i = a_i * mean_k grad_i(alpha_k). left rule: alpha_k = k/m, "
    "midpoint: (k+0.5)/m, k = 0..m-1. p_alpha0 / p_alpha1: softmax probability of the answer with the "
    "vector scaled by 0 / 1 (always probabilities, whatever the target). attr_sum = sum_i attribution_i "
    "(~ p_alpha1 - p_alpha0 for target prob, by completeness, up to the Riemann error)."
)

TOLERANCES = {
    "probabilities": "absolute 1e-4; top-5 ids in the same order (top5_margin = smallest gap between "
                     "consecutive probabilities of ranks 1..6, >= 2e-4 for every prompt)",
    "logits": "absolute 1e-3 (tiny models)",
    "ig": "every attribution within 1e-4 * max|attribution| of the case; same top-20 (layer, neuron) set "
          "(top20_margin = (20th - 21st score) / max|attribution|, >= 2e-4 in every case, so the set is "
          "stable under that tolerance; the order inside the top-20 may differ where scores are closer)",
}


def fact_fields(rel, pat, subj, obj):
    return {"relation": rel, "template": pat, "subject": subj, "object": obj}


def top5_margin(probs, prompt):
    """Smallest gap between consecutive probabilities of ranks 1..6: the top-5 order (and set) is
    stable under a 1e-4 tolerance when this is >= 2e-4."""
    v = torch.topk(probs, 6).values.tolist()
    m = min(v[i] - v[i + 1] for i in range(5))
    if m < 2e-4:
        print(f"  WARNING: {prompt!r}: top-6 probabilities only {m:.1e} apart: top-5 order is fragile")
    return m


def tokens_of(loaded, ids):
    return [loaded.raw_token(i) for i in ids]


# ---------------------------------------------------------------------------------------------
# Logits goldens
# ---------------------------------------------------------------------------------------------


def logits_entries(loaded, facts, masked):
    out = []
    for rel, pat, subj, obj in facts:
        prompt = pr.fill_masked(pat, subj, loaded.tok.mask_token) if masked else pr.causal_prefix(pat, subj)
        ids, pos = loaded.encode(prompt)
        with torch.no_grad():
            logits = loaded.forward_logits(ids)[pos]
        probs = torch.softmax(logits, -1)
        aid = loaded.answer_id(obj)
        margin = top5_margin(probs, prompt)
        e = {**fact_fields(rel, pat, subj, obj), "prompt": prompt, "input_ids": ids,
             "tokens": tokens_of(loaded, ids), "answer_position": pos,
             "answer_id": aid, "answer_token": loaded.token_str(aid), "answer_prob": rc.r7(probs[aid]),
             "answer_rank": int((probs > probs[aid]).sum()),
             "top5": rc.top_k(loaded, logits, 5), "top5_margin": rc.r7(margin), "logits": rc.r7(logits)}
        out.append(e)
    return out


def golden_tiny_bert():
    loaded = rc.load_model(rc.TINY_BERT)
    doc = rc.header("make_golden_outputs.py", rc.TINY_BERT)
    doc.update({
        "description": "tiny-bert (BertForMaskedLM): logits at the [MASK] position. input_ids include [CLS] "
                       "and [SEP]; attention_mask all ones; token_type_ids all zeros. answer = first WordPiece "
                       "of the PARAREL object.",
        "tolerances": TOLERANCES,
        "vocab_size": loaded.model.config.vocab_size,
        "prompts": logits_entries(loaded, rc.TINY_BERT_FACTS, masked=True),
    })
    return doc


def golden_tiny_llama():
    loaded = rc.load_model(rc.TINY_LLAMA)
    doc = rc.header("make_golden_outputs.py", rc.TINY_LLAMA)
    entries = logits_entries(loaded, rc.TINY_LLAMA_FACTS, masked=False)
    # The F32 GGUF loaded by transformers (which undoes llama.cpp's Q/K permutation) must agree.
    g = rc.load_model(rc.TINY_LLAMA_GGUF)
    worst = 0.0
    for e in entries:
        with torch.no_grad():
            a = loaded.forward_logits(e["input_ids"])[-1]
            b = g.forward_logits(e["input_ids"])[-1]
        worst = max(worst, (a - b).abs().max().item())
    assert worst < 1e-5, worst
    doc.update({
        "description": "tiny-llama (LlamaForCausalLM, safetensors): next-token logits at the last prompt "
                       "position. Tokenized without special tokens (no BOS). answer = first token of "
                       "' ' + PARAREL object. fixtures/tiny-llama.gguf gives the same logits.",
        "tolerances": TOLERANCES,
        "vocab_size": loaded.model.config.vocab_size,
        "gguf_f32_max_abs_logit_diff": worst,
        "prompts": entries,
    })
    return doc


def golden_tiny_llama_q8():
    import make_tiny_models as mt

    base = rc.load_model(rc.TINY_LLAMA)
    model = mt.model_from_gguf_manual(rc.TINY_LLAMA_Q8_GGUF, rc.TINY_LLAMA)
    loaded = rc.Loaded("llama", model, base.tok, rc.TINY_LLAMA_Q8_GGUF)
    entries = logits_entries(loaded, rc.TINY_LLAMA_FACTS, masked=False)
    # transformers' own GGUF loader agrees with the manual dequantization.
    g = rc.load_model(rc.TINY_LLAMA_Q8_GGUF)
    worst = 0.0
    for e in entries:
        with torch.no_grad():
            worst = max(worst, (loaded.forward_logits(e["input_ids"])[-1]
                                - g.forward_logits(e["input_ids"])[-1]).abs().max().item())
    assert worst < 1e-5, worst
    doc = rc.header("make_golden_outputs.py", rc.TINY_LLAMA_Q8_GGUF)
    doc.update({
        "description": "tiny-llama-q8.gguf: every 2-D weight Q8_0 (token_embd included), norms F32. Weights "
                       "dequantized with gguf.quants.dequantize, attn_q/attn_k un-permuted, loaded into "
                       "LlamaForCausalLM with fixtures/tiny-llama/config.json; tokenizer fixtures/tiny-llama. "
                       "Next-token logits at the last prompt position, no BOS.",
        "tolerances": TOLERANCES,
        "vocab_size": model.config.vocab_size,
        "transformers_gguf_loader_max_abs_logit_diff": worst,
        "prompts": entries,
    })
    return doc


def golden_smollm2():
    loaded = rc.load_model(rc.SMOLLM2_GGUF)
    doc = rc.header("make_golden_outputs.py", rc.SMOLLM2_GGUF)
    entries = []
    for rel, pat, subj, obj in rc.SMOLLM2_FACTS:
        prompt = pr.causal_prefix(pat, subj)
        ids, pos = loaded.encode(prompt)
        with torch.no_grad():
            logits = loaded.forward_logits(ids)[pos]
        probs = torch.softmax(logits, -1)
        aid = loaded.answer_id(obj)
        entries.append({
            **fact_fields(rel, pat, subj, obj), "prompt": prompt, "input_ids": ids,
            "tokens": [loaded.token_str(i) for i in ids], "pieces": tokens_of(loaded, ids),
            "answer_position": pos, "answer_id": aid, "answer_token": loaded.token_str(aid),
            "answer_prob": rc.r7(probs[aid]), "answer_rank": int((probs > probs[aid]).sum()),
            "top5": rc.top_k(loaded, logits, 5), "top5_margin": rc.r7(top5_margin(probs, prompt)),
        })
    france = entries[0]
    assert france["prompt"] == "The capital of France is"
    assert france["top5"][0]["token"] == " Paris" and france["answer_prob"] > 0.5, france["top5"]
    doc.update({
        "description": "SmolLM2-135M-Instruct Q4_1 GGUF loaded by transformers (AutoModelForCausalLM."
                       "from_pretrained(dir, gguf_file=..., dtype=float32): gguf-py dequantizes, transformers "
                       "reverses llama.cpp's Q/K permutation). Tokenized without special tokens (no BOS). "
                       "Prompts: PARAREL templates whose [Y] comes last, cut before [Y], trailing space "
                       "stripped. answer = first token of ' ' + object. tokens = each id decoded; pieces = "
                       "byte-level vocabulary entries.",
        "tolerances": TOLERANCES,
        "vocab_size": loaded.model.config.vocab_size,
        "sanity": {"prompt": france["prompt"], "top1": france["top5"][0]["token"], "prob": france["answer_prob"]},
        "prompts": entries,
    })
    return doc


# ---------------------------------------------------------------------------------------------
# IG goldens
# ---------------------------------------------------------------------------------------------


def ig_case(loaded, name, fact, masked, layers, steps=20, rule="left", target="prob"):
    rel, pat, subj, obj = fact
    prompt = pr.fill_masked(pat, subj, loaded.tok.mask_token) if masked else pr.causal_prefix(pat, subj)
    ids, pos = loaded.encode(prompt)
    aid = loaded.answer_id(obj)
    t = time.perf_counter()
    res = ig.run_ig(loaded, ids, pos, aid, layers, steps, rule, target)
    dt = time.perf_counter() - t
    attr = torch.stack(res["attributions"])
    top = ig.top_neurons(layers, res["attributions"], 20)
    ranked = attr.flatten().sort(descending=True).values
    margin = ((ranked[19] - ranked[20]) / attr.abs().max()).item()
    print(f"  {name}: {prompt!r} -> {loaded.token_str(aid)!r} p={res['clean_prob']:.4g} "
          f"max|attr|={attr.abs().max().item():.3e} top20 margin {margin:.1e} ({dt:.1f} s)", flush=True)
    if margin < 2e-4:
        print(f"  WARNING: {name}: 20th and 21st scores are within 2e-4 of max|attr|: top-20 set is fragile")
    return {
        "name": name, **fact_fields(rel, pat, subj, obj), "prompt": prompt, "input_ids": ids,
        "tokens": tokens_of(loaded, ids), "answer_position": pos, "answer_id": aid,
        "answer_token": loaded.token_str(aid), "target": target, "steps": steps, "rule": rule,
        "alphas": rc.r7(ig.alphas_for(steps, rule)), "layers": list(layers),
        "intermediate_size": loaded.ffn_size(),
        "clean_prob": rc.r7(res["clean_prob"]), "clean_target": rc.r7(res["clean_target"]),
        "p_alpha0": rc.r7(res["p_alpha0"]), "p_alpha1": rc.r7(res["p_alpha1"]),
        "attr_sum": rc.r7(attr.sum(1)), "max_abs_attribution": rc.r7(attr.abs().max()),
        "top20_margin": rc.r7(margin),
        "top20": [{**r, "score": rc.r7(r["score"])} for r in top],
        "activations": rc.r7(torch.stack(res["activations"])),
        "attributions": rc.r7(attr),
    }


def self_check_batching(loaded, fact, masked):
    """The batched m points equal m separate passes (batch of one)."""
    rel, pat, subj, obj = fact
    prompt = pr.fill_masked(pat, subj, loaded.tok.mask_token) if masked else pr.causal_prefix(pat, subj)
    ids, pos = loaded.encode(prompt)
    aid = loaded.answer_id(obj)
    layers = list(range(loaded.n_layers()))
    a = ig.run_ig(loaded, ids, pos, aid, layers, 20, "left", "prob", batch=None, endpoints=True)
    b = ig.run_ig(loaded, ids, pos, aid, layers, 20, "left", "prob", batch=1, endpoints=False)
    x, y = torch.stack(a["attributions"]), torch.stack(b["attributions"])
    rel_err = ((x - y).abs().max() / x.abs().max()).item()
    assert rel_err < 1e-5, rel_err
    assert all(abs(p - a["clean_prob"]) < 1e-6 for p in a["p_alpha1"]), (a["p_alpha1"], a["clean_prob"])
    print(f"  self-check: batched vs one point per pass, max rel diff {rel_err:.1e}; p(alpha=1) == clean p")


def ig_doc(path, loaded, cases, extra=None):
    doc = rc.header("make_golden_outputs.py", path)
    doc.update({"definition": IG_DEFINITION, "tolerances": TOLERANCES,
                "reference_implementation": "scripts/reference/ig_reference.py (run_ig)"})
    doc.update(extra or {})
    doc["cases"] = cases
    return doc


def golden_ig_tiny_bert():
    loaded = rc.load_model(rc.TINY_BERT)
    F = {f[2] + "/" + f[3]: f for f in rc.TINY_BERT_FACTS}
    L = list(range(loaded.n_layers()))
    self_check_batching(loaded, F["France/Paris"], True)
    cases = [
        ig_case(loaded, "france_paris", F["France/Paris"], True, L),
        ig_case(loaded, "germany_berlin_mask_first", F["Germany/Berlin"], True, L),
        ig_case(loaded, "seinfeld_nbc_wordpieces", F["Seinfeld/NBC"], True, L),
        ig_case(loaded, "miles_davis_jazz_logprob", F["Miles Davis/jazz"], True, L, target="logprob"),
        ig_case(loaded, "japan_japanese_m7_midpoint", F["Japan/Japanese"], True, L, steps=7, rule="midpoint"),
    ]
    return ig_doc(rc.TINY_BERT, loaded, cases)


def golden_ig_tiny_llama():
    loaded = rc.load_model(rc.TINY_LLAMA)
    F = {f[2] + "/" + f[3]: f for f in rc.TINY_LLAMA_FACTS}
    L = list(range(loaded.n_layers()))
    self_check_batching(loaded, F["France/Paris"], False)
    cases = [
        ig_case(loaded, "france_paris", F["France/Paris"], False, L),
        ig_case(loaded, "youtube_google_long", F["YouTube/Google"], False, L),
        ig_case(loaded, "gates_microsoft", F["Bill Gates/Microsoft"], False, L),
        ig_case(loaded, "nigeria_africa_logprob", F["Nigeria/Africa"], False, L, target="logprob"),
        ig_case(loaded, "rome_italy_m7_midpoint", F["Rome/Italy"], False, L, steps=7, rule="midpoint"),
    ]
    return ig_doc(rc.TINY_LLAMA, loaded, cases)


def golden_ig_smollm2():
    loaded = rc.load_model(rc.SMOLLM2_GGUF)
    F = {f[2] + "/" + f[3]: f for f in rc.SMOLLM2_FACTS}
    L = [0, 9, 20, 29]
    cases = [
        ig_case(loaded, "france_paris", F["France/Paris"], False, L),
        ig_case(loaded, "germany_german", F["Germany/German"], False, L),
        ig_case(loaded, "iphone_apple", F["iPhone/Apple"], False, L),
    ]
    return ig_doc(rc.SMOLLM2_GGUF, loaded, cases)


GOLDENS = {
    "tiny_bert_logits": golden_tiny_bert,
    "tiny_llama_logits": golden_tiny_llama,
    "tiny_llama_q8_logits": golden_tiny_llama_q8,
    "smollm2_top5": golden_smollm2,
    "ig_tiny_bert": golden_ig_tiny_bert,
    "ig_tiny_llama": golden_ig_tiny_llama,
    "ig_smollm2": golden_ig_smollm2,
}
NEEDS_SMOLLM2 = {"smollm2_top5", "ig_smollm2"}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", choices=sorted(GOLDENS), help="write only these files")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    rc.setup_torch(args.threads)
    rc.check_fact_sets()
    for name in args.only or list(GOLDENS):
        if name in NEEDS_SMOLLM2 and not rc.SMOLLM2_GGUF.is_file():
            print(f"SKIP {name}: {rc.SMOLLM2_GGUF} not found (scripts/fetch-model.sh)", file=sys.stderr)
            continue
        print(f"{name} ...", flush=True)
        t = time.perf_counter()
        doc = GOLDENS[name]()
        path = rc.write_json(rc.GOLDEN / f"{name}.json", doc)
        print(f"wrote {rc.rel(path)} ({path.stat().st_size} bytes, {time.perf_counter() - t:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
