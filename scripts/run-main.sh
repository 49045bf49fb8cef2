#!/usr/bin/env bash
# Quick start, first command: installs what is missing, builds `kn`, and runs the main job on
# the default model (SmolLM2-135M-Instruct).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bash "$REPO_ROOT/scripts/setup.sh"
cd "$REPO_ROOT"
cargo build --release -p kn-cli
kn="$REPO_ROOT/target/release/kn"
for prompt in "The capital of France is" "The official language of Brazil is" "Albert Einstein was born in" "The Eiffel Tower is located in"; do
  "$kn" predict --model default --prompt "$prompt" --top-k 5
  echo
done
