#!/usr/bin/env bash
# Creates the Python package's test environment (a venv with torch==2.11.0, numpy, pytest,
# tqdm, matplotlib: python/requirements-test.txt) and prints its python path on stdout.
# Idempotent: does nothing when the venv already holds exactly the pinned requirements (a stamp
# records their sha256 and the Python version). The package itself is installed by the caller
# with `pip install .` (scripts/test.sh).
#   KN_PYENV_DIR=/some/dir   put the venv there instead of <repo>/.deps/pyenv
#   PYTHON=python3.11        the interpreter the venv is made from (default: python3, 3.10+)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

REQ="$REPO_ROOT/python/requirements-test.txt"
VENV="${KN_PYENV_DIR:-$REPO_ROOT/.deps/pyenv}"
STAMP="$VENV/.kn-requirements.sha256"
VPY="$VENV/bin/python"
req_sha=$(sha256sum "$REQ" | cut -d' ' -f1)

venv_ok() {
  [ -x "$VPY" ] && [ -f "$STAMP" ] || return 1
  local pyver
  pyver=$("$VPY" -c 'import platform; print(platform.python_version())' 2>/dev/null) || return 1
  [ "$(cat "$STAMP")" = "$req_sha python=$pyver" ] || return 1
  "$VPY" -c 'import torch, numpy, pytest, tqdm, matplotlib' 2>/dev/null
}

if venv_ok; then
  log "python package test env up to date in $VENV"
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
"$VPY" -c 'import torch, numpy, pytest, tqdm, matplotlib' || { log "ERROR: the test env does not import"; exit 1; }
pyver=$("$VPY" -c 'import platform; print(platform.python_version())')
echo "$req_sha python=$pyver" > "$STAMP"
log "python package test env ready: $VPY (torch $("$VPY" -c 'import torch; print(torch.__version__)'))"
printf '%s\n' "$VPY"
