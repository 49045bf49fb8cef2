#!/usr/bin/env bash
# Quick start, second command: installs what is missing, then runs every test of the
# workspace (unit, integration, parity against the committed golden fixtures, doc tests).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bash "$REPO_ROOT/scripts/setup.sh"
cd "$REPO_ROOT"
# The checkpoint shaped like Llama-3.2-1B (random bfloat16 shards + index, 2.5 GB in the model
# cache, written once), which the scale tests load; see benches/support/llama_shaped.rs.
cargo run --release --quiet --example make_llama_shaped -- llama-3.2-1b >/dev/null
# Formatting: rustfmt's defaults.
cargo fmt --all --check
cargo test --workspace --release "$@"
# Every public item documented, and the docs build without warnings (release profile: reuses the
# build scripts' outputs of the test build).
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --release
# The Python package: `pip install .` into its test environment (torch==2.11.0, whose libtorch
# it links), then its pytest suite, which checks every function against the `kn` binary the
# tests above built (target/release/kn, or under CARGO_TARGET_DIR) on the tiny models and the default model.
pyenv_python=$(bash "$REPO_ROOT/scripts/setup-python-package.sh")
"$pyenv_python" -m pip install --quiet --disable-pip-version-check "$REPO_ROOT"
(cd "$REPO_ROOT/python/tests" &&
  KN_BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/kn" "$pyenv_python" -m pytest -q -p no:cacheprovider)
# The Slurm / Kubernetes manifests only use options `kn` has.
bash "$REPO_ROOT/scripts/check-scaling-manifests.sh"
# The documented Slurm job array run for real: a one-node Slurm on this machine (installed from
# the distribution's packages when missing), 3 shards of a tiny discovery, merged and compared
# with the unsharded run (about 15 s once Slurm is installed).
bash "$REPO_ROOT/scripts/check-slurm.sh"
