#!/usr/bin/env bash
# Times the plain Python integrated-gradients reference (scripts/reference/ig_reference.py --time)
# against the Rust implementation (target/release/kn attribute --json) in one run, on the same
# prompts (benches/support/prompts.tsv), the same model and the same thread count:
#   smollm2    SmolLM2-135M-Instruct Q4_1 GGUF (both sides dequantize it to float32), 5 PARAREL prompts
#   gemma-3-270m  Gemma-3-270M Q4_K_M GGUF (scripts/fetch-model.sh --model gemma-3-270m; both sides
#              dequantize it to float32), 5 PARAREL prompts
#   bert-base  a BERT-base-sized model with random weights (examples/make_random_bert.rs; Python loads
#              the directory with transformers' BertForMaskedLM), 5 masked PARAREL prompts
#   llama-3.2-1b-shaped  random weights shaped like Llama-3.2-1B, bfloat16 shards as checkpoints ship
#              (examples/make_llama_shaped.rs; both sides compute in float32), 3 PARAREL prompts
# Prints a table (mean seconds per prompt for each side, the speed ratio, Rust's wall time with the
# model load, Rust's peak RSS for one `kn attribute` run, top-5 agreement) and writes it as JSON to
# docs/bench/compare-<date>.json. Waits for a quiet machine before each timed part.
#
# Usage: scripts/bench/compare_python.sh [--threads N] [--runs R] [--models smollm2,bert-base,gemma-3-270m,llama-3.2-1b-shaped]
#                                        [--out FILE] [--no-build] [--no-wait] [--max-wait S] [--nice N]
#   --threads N   libtorch / torch threads on both sides (default 2)
#   --runs R      rounds; each runs every prompt once on each side, Python then Rust, so that the
#                 machine's drift reaches both sides alike; the best (and the median) is kept (default 2)
#   --no-build    use the existing target/release/kn and make_random_bert
#   --no-wait     do not wait for the load to drop (the load is recorded anyway)
#   --max-wait S  wait at most S seconds for a quiet machine before each timed part (default 600)
#   --nice N      run both sides under nice -n N (e.g. -19, root only) when other jobs keep the CPUs busy
# Environment: KN_PYREF_PY (python of the reference venv; default .deps/pyref or /tmp/pyref),
# KN_SMOLLM2_GGUF (default <cache>/models/SmolLM2-135M-Instruct.Q4_1.gguf), KN_RANDOM_BERT_DIR.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO_ROOT"
KN_CACHE_DIR="${KN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/knowledge-neurons}"

threads=2 runs=2 models="smollm2,bert-base" out="" build=1 wait_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --models) models="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    --no-wait) wait_args+=(--no-wait); shift ;;
    --max-wait) wait_args+=(--max-wait "$2"); shift 2 ;;
    --max-load) wait_args+=(--max-load "$2"); shift 2 ;;
    --nice) wait_args+=(--nice "$2"); shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "compare_python.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
out="${out:-docs/bench/compare-$(date +%F).json}"

log() { printf '[compare] %s\n' "$*" >&2; }

py="${KN_PYREF_PY:-}"
if [ -z "$py" ]; then
  for candidate in "${KN_PYREF_DIR:-$REPO_ROOT/.deps/pyref}/bin/python" /tmp/pyref/bin/python; do
    if [ -x "$candidate" ]; then py="$candidate"; break; fi
  done
fi
[ -n "$py" ] && "$py" -c 'import torch, transformers' 2>/dev/null || {
  log "ERROR: no Python reference env (run scripts/setup-python-ref.sh, or set KN_PYREF_PY)"; exit 1; }

if [ "$build" = 1 ]; then
  log "building target/release/kn and examples/make_random_bert, make_llama_shaped (release)"
  cargo build --release -p kn-cli --bin kn >&2
  cargo build --release -p knowledge-neurons --example make_random_bert --example make_llama_shaped >&2
fi
kn="$REPO_ROOT/target/release/kn"
[ -x "$kn" ] || { log "ERROR: $kn missing (run without --no-build)"; exit 1; }

smollm2="${KN_SMOLLM2_GGUF:-$KN_CACHE_DIR/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
gemma="${KN_GEMMA_GGUF:-$KN_CACHE_DIR/models/gemma-3-270m-q4_k_m.gguf}"
if [[ ",$models," == *",gemma-3-270m,"* ]] && [ ! -f "$gemma" ]; then
  log "ERROR: $gemma missing (run scripts/fetch-model.sh --model gemma-3-270m)"; exit 1
fi
bert=""
if [[ ",$models," == *",smollm2,"* ]] && [ ! -f "$smollm2" ]; then
  log "ERROR: $smollm2 missing (run scripts/fetch-model.sh)"; exit 1
fi
if [[ ",$models," == *",bert-base,"* ]]; then
  bert="$("$REPO_ROOT/target/release/examples/make_random_bert" ${KN_RANDOM_BERT_DIR:+"$KN_RANDOM_BERT_DIR"})"
fi
llama_1b=""
if [[ ",$models," == *",llama-3.2-1b-shaped,"* ]]; then
  llama_1b="$("$REPO_ROOT/target/release/examples/make_llama_shaped" llama-3.2-1b)"
fi

exec "$py" "$REPO_ROOT/scripts/bench/compare_python.py" --python "$py" --kn "$kn" \
  --smollm2 "$smollm2" --bert "$bert" --gemma "$gemma" --llama-1b "$llama_1b" --models "$models" --threads "$threads" --runs "$runs" \
  --out "$out" ${wait_args[@]+"${wait_args[@]}"}
