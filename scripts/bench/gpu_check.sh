#!/usr/bin/env bash
# One short check on a CUDA machine that has PyTorch 2.11 (CUDA build) in `python3` but no Rust
# toolchain: the `kn` binary built elsewhere runs on the GPU against that PyTorch's libtorch.
#   1. CPU vs CUDA parity of `kn attribute` on the tiny fixtures (same binary, same machine);
#   2. attribution speed on the GPU for a SmolLM2-sized model with random weights
#      (scripts/bench/make_random_smollm2.py; speed does not depend on the values): 5 prompts
#      one at a time (default pass size) and as one batch at several pass sizes;
#   3. the Python reference (scripts/reference/ig_reference.py --device cuda) on the same prompts;
#   4. on this machine's CPU cores: the same 5-prompt batch with 1, 2 and 4 concurrent passes
#      (`--concurrent-passes`), each pass on its share of all the cores' threads.
# Usage: KN=path/to/kn OUT=dir bash scripts/bench/gpu_check.sh
# The binary was linked against the CPU libtorch: LD_PRELOAD loads libtorch_cuda, whose static
# initialisers register the CUDA backend (docs/scaling.md, "CUDA").
set -uo pipefail
KN=${KN:-.gpu/kn}
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
TORCH_DIR=$(python3 -c "import torch, os; print(os.path.dirname(torch.__file__))")
export LD_LIBRARY_PATH="$TORCH_DIR/lib:${LD_LIBRARY_PATH:-}"
export LD_PRELOAD="$TORCH_DIR/lib/libtorch_cuda.so"
nvidia-smi -L
python3 -c "import torch; print('python torch', torch.__version__, torch.cuda.get_device_name())"

echo "== 1. parity, tiny fixtures"
"$KN" attribute --model fixtures/tiny-llama --prompt "The capital of France is" --answer Paris --device cuda --json --top 20 >"$OUT/tiny-llama-cuda.json" || echo "FAILED: tiny-llama on cuda"
"$KN" attribute --model fixtures/tiny-llama --prompt "The capital of France is" --answer Paris --device cpu --json --top 20 >"$OUT/tiny-llama-cpu.json"
"$KN" attribute --model fixtures/tiny-bert --prompt "The capital of France is [MASK] ." --answer Paris --device cuda --json --top 20 >"$OUT/tiny-bert-cuda.json" || echo "FAILED: tiny-bert on cuda"
"$KN" attribute --model fixtures/tiny-bert --prompt "The capital of France is [MASK] ." --answer Paris --device cpu --json --top 20 >"$OUT/tiny-bert-cpu.json"
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
for m in ("tiny-llama", "tiny-bert"):
    try:
        cpu, gpu = (json.load(open(f"{out}/{m}-{d}.json")) for d in ("cpu", "cuda"))
    except Exception as e:
        print(m, "no result:", e); continue
    scale = max(abs(t["score"]) for t in cpu["top"])
    same = [(a["layer"], a["neuron"]) for a in cpu["top"]] == [(b["layer"], b["neuron"]) for b in gpu["top"]]
    diff = max(abs(a["score"] - b["score"]) for a, b in zip(cpu["top"], gpu["top"]))
    gaps = max(abs(a["gap"] - b["gap"]) for a, b in zip(cpu["completeness"], gpu["completeness"]))
    print(f"{m}: top-20 identical {same}; max |score diff| / max score = {diff / scale:.2e}; "
          f"prob {cpu['prob']:.7f} vs {gpu['prob']:.7f}; max completeness-gap diff {gaps:.2e}")
PY

echo "== 2. SmolLM2-sized random model on the GPU"
python3 scripts/bench/make_random_smollm2.py /tmp/smollm2-random >/dev/null 2>&1 || echo "FAILED: random model"
PROMPTS=(--prompt "The capital of France is" --answer Paris --prompt "The official language of Japan is" --answer Japanese
         --prompt "The native language of Vladimir Putin is" --answer Russian --prompt "iPhone is produced by" --answer Apple
         --prompt "Bill Gates works for" --answer Microsoft)
for batch in 640 3000 640 3000 1200; do
  /usr/bin/time -f "%e s wall, %M KiB peak host RSS" "$KN" attribute --model /tmp/smollm2-random --device cuda "${PROMPTS[@]}" \
    --batch-size $batch --json --top 5 >"$OUT/rust-cuda-batch$batch.jsonl" 2>"$OUT/time.txt"
  python3 -c "import json,sys; l=[json.loads(x) for x in open(sys.argv[1])]; print('rust cuda, 5 prompts as one batch, --batch-size', sys.argv[2], ':', round(l[0]['batch']['seconds']/5, 4), 's per prompt;', open(sys.argv[3]).read().strip())" \
    "$OUT/rust-cuda-batch$batch.jsonl" $batch "$OUT/time.txt"
done
for p in "The capital of France is:Paris" "Bill Gates works for:Microsoft"; do
  for rep in 1 2; do
    "$KN" attribute --model /tmp/smollm2-random --device cuda --prompt "${p%%:*}" --answer "${p##*:}" --json --top 5 \
      | python3 -c "import json,sys; j=json.load(sys.stdin); print('rust cuda, one prompt per process:', j['prompt'], round(j['seconds'], 4), 's')"
  done
done

echo "== 3. Python reference on the GPU (same prompts, whole model per layer, m = 20)"
python3 scripts/reference/ig_reference.py --model /tmp/smollm2-random --device cuda --time --repeat 2 --top 5 \
  "${PROMPTS[@]}" 2>&1 | grep -E "^\[time\]|^  L" | head -40

echo "== 4. CPU: concurrent passes on all $(nproc) cores (same model and 5 prompts as one batch)"
for setting in "1 0" "2 0" "4 2400" "1 0" "2 0" "4 2400"; do
  set -- $setting
  "$KN" attribute --model /tmp/smollm2-random --device cpu --threads "$(nproc)" --concurrent-passes "$1" --batch-size "$2" \
    "${PROMPTS[@]}" --json --top 5 >"$OUT/rust-cpu-concurrent$1.jsonl" || echo "FAILED: cpu, $1 concurrent passes"
  python3 -c "import json,sys; l=[json.loads(x) for x in open(sys.argv[1])]; print('rust cpu, $(nproc) threads, --concurrent-passes', sys.argv[2], '--batch-size', sys.argv[3], ':', round(l[0]['batch']['seconds']/5, 4), 's per prompt')" \
    "$OUT/rust-cpu-concurrent$1.jsonl" "$1" "$2"
done
