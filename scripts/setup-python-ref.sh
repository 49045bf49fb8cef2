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

pinned_venv "${KN_PYREF_DIR:-$REPO_ROOT/.deps/pyref}" "$REPO_ROOT/scripts/reference/requirements.txt" \
  "torch transformers tokenizers safetensors gguf numpy accelerate" "python reference env" \
  "${KN_PYREF_DRY_RUN:-0}"
