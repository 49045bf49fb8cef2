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
