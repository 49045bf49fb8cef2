#!/usr/bin/env bash
# Creates the Python reference environment (a venv) for scripts/reference/*.py and prints its
# python path on stdout. Idempotent: does nothing when the venv already holds exactly the pinned
# scripts/reference/requirements.txt (a stamp file records the requirements' sha256 and the
# Python version) and imports cleanly.
#   KN_PYREF_DIR=/some/dir   put the venv there instead of <repo>/.deps/pyref
#   KN_PYREF_DRY_RUN=1       only say what would be done (or that nothing needs doing)
#   PYTHON=python3.11        the interpreter the venv is made from (default: python3, 3.10+)
# torch==2.11.0 comes from PyPI as the full install (its CUDA wheels come along, several GB);
# a torch wheel already in $KN_CACHE_DIR/wheels (scripts/setup-libtorch.sh) is used if it fits.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

REQ="$REPO_ROOT/scripts/reference/requirements.txt"
VENV="${KN_PYREF_DIR:-$REPO_ROOT/.deps/pyref}"
DRY="${KN_PYREF_DRY_RUN:-0}"
STAMP="$VENV/.kn-requirements.sha256"
VPY="$VENV/bin/python"

[ -f "$REQ" ] || { log "ERROR: $REQ missing"; exit 1; }
req_sha=$(sha256sum "$REQ" | cut -d' ' -f1)

venv_ok() {
  [ -x "$VPY" ] && [ -f "$STAMP" ] || return 1
  local pyver
  pyver=$("$VPY" -c 'import platform; print(platform.python_version())' 2>/dev/null) || return 1
  [ "$(cat "$STAMP")" = "$req_sha python=$pyver" ] || return 1
  "$VPY" -c 'import torch, transformers, tokenizers, safetensors, gguf, numpy, accelerate' 2>/dev/null
}

if venv_ok; then
  log "python reference env up to date in $VENV"
  printf '%s\n' "$VPY"
  exit 0
fi

if [ "$DRY" = 1 ]; then
  if [ -x "$VPY" ]; then log "dry run: would pip install -r $REQ into the existing venv $VENV"
  else log "dry run: would create a venv at $VENV with $PYTHON and pip install -r $REQ"; fi
  printf '%s\n' "$VPY"
  exit 0
fi

if [ ! -x "$VPY" ]; then
  "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 10), sys.version' || {
    log "ERROR: $PYTHON is older than Python 3.10"; exit 1; }
  log "creating venv $VENV with $("$PYTHON" --version 2>&1)"
  mkdir -p "$(dirname "$VENV")"
  "$PYTHON" -m venv "$VENV"
fi
rm -f "$STAMP"
find_links=()
[ -d "$KN_WHEEL_CACHE" ] && find_links=(--find-links "$KN_WHEEL_CACHE")
log "installing $REQ into $VENV (torch with its CUDA wheels: several GB the first time)"
"$VPY" -m pip install --quiet --disable-pip-version-check "${find_links[@]}" -r "$REQ" >&2
pyver=$("$VPY" -c 'import platform; print(platform.python_version())')
"$VPY" -c 'import torch, transformers, tokenizers, safetensors, gguf, numpy, accelerate' || {
  log "ERROR: the reference env does not import"; exit 1; }
echo "$req_sha python=$pyver" > "$STAMP"
log "python reference env ready: $VPY (torch $("$VPY" -c 'import torch; print(torch.__version__)'))"
printf '%s\n' "$VPY"
