#!/usr/bin/env bash
# Installs everything the project needs on a fresh machine (idempotent): libtorch for tch, the
# default model and Gemma-3-270M. Rust (cargo) and Python 3 with pip are expected on the machine.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
for tool in cargo unzip sha256sum "$PYTHON"; do
  command -v "$tool" >/dev/null 2>&1 || { log "ERROR: $tool is required but not installed"; exit 1; }
done
bash "$REPO_ROOT/scripts/setup-libtorch.sh"
bash "$REPO_ROOT/scripts/fetch-model.sh" >/dev/null
# The second real model (Gemma terms: fetched, never committed), checked by the tests.
bash "$REPO_ROOT/scripts/fetch-model.sh" --model gemma-3-270m >/dev/null
