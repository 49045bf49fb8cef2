#!/usr/bin/env bash
# Creates the Python package's test environment (a venv with torch==2.11.0, numpy, pytest,
# tqdm, matplotlib: python/requirements-test.txt) and prints its python path on stdout.
# Idempotent: does nothing when the venv already holds exactly the pinned requirements (a stamp
# records their sha256 and the Python version). The package itself is installed by the caller
# with `pip install .` (scripts/test.sh).
#   KN_PYENV_DIR=/some/dir   put the venv there instead of <repo>/.deps/pyenv
#   PYTHON=python3.11        the interpreter the venv is made from (default: python3, 3.10+)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

pinned_venv "${KN_PYENV_DIR:-$REPO_ROOT/.deps/pyenv}" "$REPO_ROOT/python/requirements-test.txt" \
  "torch numpy pytest tqdm matplotlib" "python package test env"
