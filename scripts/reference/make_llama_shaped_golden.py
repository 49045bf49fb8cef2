"""transformers' reference on the random-weight checkpoint shaped like Llama-3.2-1B.

The checkpoint (bfloat16 shards + index, transformers 4.x config keys, SmolLM2's tokenizer) is
written by the Rust generator, the same files on every machine with the project's libtorch:
    cargo run --release --example make_llama_shaped -- llama-3.2-1b      # <cache>/bench/llama-3.2-1b-shaped
Its shards' sha256 are recorded, so a test can tell a different checkpoint from a wrong answer.

Writes fixtures/golden/llama32_1b_shaped.json: transformers (LlamaForCausalLM, its 4.x
`rope_scaling` of type llama3 read by transformers itself) in float32: top-5 of two PARAREL
prompts; and integrated gradients (ig_reference.run_ig, m = 20) of the first, layers 0, 8 and
15, with the model cast to float64. The tests compare kn's float32 attributions within 1e-4 of
the largest, with the same top-10; the float32 reference's own distance to float64 is recorded
(`float32_max_abs_diff_of_largest`).

Run:  .deps/pyref/bin/python scripts/reference/make_llama_shaped_golden.py [DIR]
"""
import hashlib
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ig_reference as ig  # noqa: E402
import make_golden_outputs as mg  # noqa: E402
import ref_common as rc  # noqa: E402

DEFAULT_DIR = rc.KN_CACHE_DIR / "bench" / "llama-3.2-1b-shaped"
IG_LAYERS = [0, 8, 15]
OUT = rc.GOLDEN / "llama32_1b_shaped.json"


def shard_digests(directory):
    index = json.loads((directory / "model.safetensors.index.json").read_text())
    digests = {}
    for shard in sorted(set(index["weight_map"].values())):
        h = hashlib.sha256()
        with open(directory / shard, "rb") as f:
            for block in iter(lambda: f.read(1 << 24), b""):
                h.update(block)
        digests[shard] = h.hexdigest()
    return digests


def main():
    directory = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR
    if not (directory / "model.safetensors.index.json").is_file():
        sys.exit(f"{directory} has no checkpoint: run cargo run --release --example make_llama_shaped -- llama-3.2-1b")
    rc.setup_torch(2)
    loaded = rc.load_model(directory)
    cfg = loaded.model.config
    assert cfg.rope_parameters["rope_type"] == "llama3", cfg.rope_parameters
    by_key = {f[2] + "/" + f[3]: f for f in rc.SMOLLM2_FACTS}
    facts = [by_key["France/Paris"], by_key["iPhone/Apple"]]
    entries = mg.logits_entries(loaded, facts, masked=False)
    for e in entries:
        del e["logits"]  # 128,256 per prompt: the top-5 and the answer suffice
    float32_case = mg.ig_case(loaded, "france_paris", facts[0], False, IG_LAYERS)
    loaded.model.to(torch.float64)
    case = mg.ig_case(loaded, "france_paris", facts[0], False, IG_LAYERS)
    largest = case["max_abs_attribution"]
    drift = max(abs(a - b) for la, lb in zip(float32_case["attributions"], case["attributions"])
                for a, b in zip(la, lb)) / largest
    print(f"float32 against float64: {drift:.2e} of the largest attribution")
    doc = mg.ig_doc(directory, loaded, [case], extra={
        "generator": "scripts/reference/make_llama_shaped_golden.py",
        "checkpoint": {"shape": "llama-3.2-1b", "written_by": "benches/support/llama_shaped.rs",
                       "stamp": (directory / "kn-llama-shaped.json").read_text(),
                       "shards_sha256": shard_digests(directory)},
        "precision": "top-5: float32; integrated gradients: float64 (the bfloat16 weights cast to double)",
        "float32_max_abs_diff_of_largest": rc.r7(drift),
        "tolerances": {"top5": "probabilities within 1e-4, same order",
                       "ig": "every attribution within 1e-4 * max|attribution| of the case; the same top-10"},
        "prompts": entries,
    })
    path = rc.write_json(OUT, doc)
    print(f"wrote {rc.rel(path)} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
