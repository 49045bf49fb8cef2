"""A tiny Qwen2 GGUF and what transformers' own GGUF loader computes from it.

Writes fixtures/family/tiny-qwen2.gguf: the weights of fixtures/family/tiny-qwen2 (biased
q/k/v projections) as llama.cpp's converter writes a `qwen2` file (F32, query/key rows not
permuted, `qwen2.*` keys), with the tiny byte-level vocabulary and `tokenizer.ggml.pre = qwen2`.
A GGUF carries no sliding window, and transformers loads it without one, as Qwen2 / Qwen2.5
checkpoints ship (`use_sliding_window` false).

Writes fixtures/golden/gguf_qwen2.json: for the tiny-llama PARAREL prompts, the ids of
transformers' GGUF tokenizer (its qwen2 split), next-token logits and top-5 of the model
transformers builds from the file. Checked here: those logits equal the safetensors model's
with the sliding window switched off (within 1e-5).

Run:  .deps/pyref/bin/python scripts/reference/make_gguf_qwen2.py
"""
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_golden_outputs as mg  # noqa: E402
import make_tiny_models as mt  # noqa: E402
import ref_common as rc  # noqa: E402

SOURCE = rc.FIXTURES / "family" / "tiny-qwen2"
GGUF = rc.FIXTURES / "family" / "tiny-qwen2.gguf"
GOLDEN = rc.FIXTURES / "golden" / "gguf_qwen2.json"


def main():
    rc.setup_torch(2)
    mt.write_gguf(SOURCE, GGUF, arch="qwen2", pre="qwen2", name="tiny-qwen2")
    loaded = rc.load_model(GGUF)
    assert loaded.model.config.model_type == "qwen2", loaded.model.config.model_type
    entries = mg.logits_entries(loaded, rc.TINY_LLAMA_FACTS, masked=False)

    from transformers import AutoModelForCausalLM

    unwindowed = AutoModelForCausalLM.from_pretrained(
        str(SOURCE), dtype=torch.float32, attn_implementation="eager", use_sliding_window=False,
        layer_types=["full_attention"] * 3,
    ).eval()
    worst = 0.0
    for e in entries:
        with torch.no_grad():
            a = loaded.forward_logits(e["input_ids"])[-1]
            b = unwindowed(torch.tensor([e["input_ids"]])).logits[0, -1]
        worst = max(worst, (a - b).abs().max().item())
    assert worst < 1e-5, worst
    print(f"[check] GGUF in transformers == safetensors without the window: {worst:.2e}")

    doc = rc.header("make_gguf_qwen2.py", GGUF)
    doc.update({
        "description": "tiny-qwen2.gguf (qwen2 architecture, F32, q/k/v biases, byte-level BPE with "
                       "tokenizer.ggml.pre qwen2) loaded by transformers' GGUF loader (model and "
                       "tokenizer): next-token logits at the last prompt position, no BOS. answer = "
                       "first token of ' ' + PARAREL object.",
        "tolerances": mg.TOLERANCES,
        "vocab_size": loaded.model.config.vocab_size,
        "max_abs_logit_diff_to_safetensors_without_window": worst,
        "prompts": entries,
    })
    GOLDEN.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {GOLDEN.relative_to(rc.REPO_ROOT)} and {GGUF.relative_to(rc.REPO_ROOT)} ({GGUF.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
