#!/usr/bin/env bash
# One short check on a CUDA machine that has PyTorch 2.11 (CUDA build) in `python3` but no Rust
# toolchain: the `kn` binary built elsewhere runs on the GPU against that PyTorch's libtorch.
#   1. CPU vs CUDA parity of `kn attribute` on the tiny fixtures (same binary, same machine);
#   2. attribution speed on the GPU for a SmolLM2-sized model with random weights
#      (scripts/bench/make_random_smollm2.py; speed does not depend on the values): 5 prompts
#      one at a time (default pass size) and as one batch at several pass sizes;
#   3. the Python reference (scripts/reference/ig_reference.py --device cuda) on the same prompts;
#   4. on this machine's CPU cores: the same 5-prompt batch with 1, 2 and 4 concurrent passes
#      (`--concurrent-passes`), each pass on its share of all the cores' threads;
#   5. PARAREL-style throughput on the GPU: 40 prompts as one batch (prompts per second, against
#      the goal of all 27,738 facts in an hour, about 40 per second; docs/performance.md);
#   6. with SHAPED=path/to/make_llama_shaped (the example built here): the Llama-3-8B-shaped
#      checkpoint written on that machine (15 GiB) and one prompt attributed (32 layers, m = 20)
#      on the GPU in bf16 and in f32, with the peak GPU memory sampled by nvidia-smi.
# Usage: KN=path/to/kn OUT=dir [SHAPED=path/to/make_llama_shaped] bash scripts/bench/gpu_check.sh
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

echo "== 5. throughput: 40 prompts as one batch on the GPU"
MANY=()
for i in 1 2 3 4 5 6 7 8; do MANY+=("${PROMPTS[@]}"); done
for batch in 3000 12000 3000 12000; do
  "$KN" attribute --model /tmp/smollm2-random --device cuda "${MANY[@]}" --batch-size $batch --json --top 5 \
    >"$OUT/rust-cuda-many$batch.jsonl" || echo "FAILED: 40 prompts, --batch-size $batch"
  python3 -c "import json,sys; l=[json.loads(x) for x in open(sys.argv[1])]; s=l[0]['batch']['seconds']; print('rust cuda, 40 prompts, --batch-size', sys.argv[2], ':', round(40/s, 1), 'prompts per second')" \
    "$OUT/rust-cuda-many$batch.jsonl" $batch
done

if [ -n "${SHAPED:-}" ]; then
  echo "== 6. Llama-3-8B shape on the GPU, bf16 and f32"
  SHAPED_DIR=/tmp/llama-3-8b-shaped
  "$SHAPED" llama-3-8b "$SHAPED_DIR" || echo "FAILED: writing the 8B shape"
  for dtype in bf16 f32 bf16; do
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"$OUT/gpu-memory-$dtype.txt" &
    SAMPLER=$!
    "$KN" attribute --model "$SHAPED_DIR" --device cuda --dtype $dtype --prompt "The capital of France is" --answer " Paris" \
      --json --top 5 >"$OUT/shaped-8b-$dtype.json" || echo "FAILED: 8B shape in $dtype"
    kill $SAMPLER
    python3 -c "import json,sys; j=json.load(open(sys.argv[1])); m=max(int(x) for x in open(sys.argv[2]) if x.strip()); print('8B shape, cuda,', sys.argv[3], ':', round(j['seconds'], 2), 's per prompt, peak GPU memory', m, 'MiB (whole GPU, sampled every 100 ms)')" \
      "$OUT/shaped-8b-$dtype.json" "$OUT/gpu-memory-$dtype.txt" $dtype
  done
fi
