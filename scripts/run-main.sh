#!/usr/bin/env bash
# Quick start, first command: installs what is missing (libtorch, the model), builds `kn`, and
# runs the main job on the default model (SmolLM2-135M-Instruct): the paper's pipeline over a
# seeded sample of PARAREL (examples/main.toml) -- discover knowledge neurons, suppress and
# amplify them against controls, erase a relation, update two facts (and again under each setting
# of the update rule: success against damage), measure their activations on sentences that
# express the facts (BINGREL excerpt in data/bingrel-main) -- then renders the report
# and prints where it is with its headline figures. Under 15 minutes on a 2-core CPU once built.
#
# KN_MAIN_OUT=DIR puts the run elsewhere (default runs/main); an existing run of the same
# configuration is resumed, not redone. Extra arguments go to every kn command (e.g. -q).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bash "$REPO_ROOT/scripts/setup.sh"
cd "$REPO_ROOT"
cargo build --release -p kn-cli
kn="$REPO_ROOT/target/release/kn"
config="$REPO_ROOT/examples/main.toml"
out="${KN_MAIN_OUT:-runs/main}"
started=$SECONDS
step() { log "main job: $1 ($((SECONDS - started)) s so far)"; }

step "1/7 discover knowledge neurons"
"$kn" --config "$config" "$@" discover --out "$out"
step "2/7 suppress and amplify them"
"$kn" --config "$config" "$@" suppress --neurons "$out" --chart "$out/suppression.svg"
step "3/7 erase a relation"
"$kn" --config "$config" "$@" erase --neurons "$out" --out "$out/erase-P176.json" > "$out/erase-P176.txt"
step "4/7 update two facts"
"$kn" --config "$config" "$@" edit --neurons "$out" --out "$out/edit.json" > "$out/edit.txt"
step "5/7 the same updates under each setting of the update rule"
"$kn" --config "$config" "$@" edit --neurons "$out" --sweep 1,8 --out "$out/edit-sweep.json" > "$out/edit-sweep.txt"
step "6/7 activations on sentences that express the facts"
"$kn" --config "$config" "$@" activations --neurons "$out" --out "$out"
step "7/7 write the report"
"$kn" --config "$config" "$@" report "$out"
log "main job: done in $((SECONDS - started)) s"
