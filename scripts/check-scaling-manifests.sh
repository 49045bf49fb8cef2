#!/usr/bin/env bash
# Keeps the scaling manifests in examples/scaling/ (docs/scaling.md) honest:
#
#   1. every `kn SUBCOMMAND ... --option` they run names a subcommand of the built binary and an
#      option that `kn SUBCOMMAND --help` lists. Needs target/release/kn (or KN=/path/to/kn);
#      when that binary does not exist this part is skipped with a message (nothing is built).
#   2. the YAML files parse and look like what docs/scaling.md describes (PyYAML when python3 has
#      it; otherwise only a minimal structural check: no tabs, apiVersion and kind per document);
#      an Indexed Job's SHARDS variable equals its completions.
#   3. the *.sbatch scripts and the bash programs inside the YAML pass `bash -n`.
#
# Commands are found on lines that are not comments (text after " #" is ignored too), with
# backslash continuations joined; `kn`, `"$KN"`, `${KN}` and paths ending in /kn count as the
# binary. Exit status: 0 when everything checked passed, 1 otherwise.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$REPO_ROOT/examples/scaling"
KN="${KN:-$REPO_ROOT/target/release/kn}"
PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null 2>&1 || { echo "check-scaling-manifests: $PYTHON is required" >&2; exit 1; }
[ -d "$DIR" ] || { echo "check-scaling-manifests: $DIR is missing" >&2; exit 1; }

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# --- 1. kn subcommands and options -----------------------------------------------------------
# One line per use: FILE:LINE<TAB>SUBCOMMAND<TAB>--opt --opt ...
uses=$("$PYTHON" - "$DIR" <<'PY'
import pathlib, re, sys

directory = pathlib.Path(sys.argv[1])
kn = r'(?:"?\$\{?KN\}?"?|(?:[\w.${}/-]*/)?kn)'
command = re.compile(r'(?:^|[\s;&|(`])' + kn + r'\s+([a-z][a-z0-9-]*)(?=\s|$|;)')
option = re.compile(r'(?<![\w-])(--[a-z0-9][a-z0-9-]*)')
for path in sorted(p for p in directory.iterdir() if p.is_file()):
    logical, start, buffer = [], None, ""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = line.strip()
        if not buffer and text.startswith("#"):
            continue
        text = re.sub(r"\s#.*$", "", text)
        if start is None:
            start = number
        if text.endswith("\\"):
            buffer += text[:-1] + " "
            continue
        logical.append((start, buffer + text))
        start, buffer = None, ""
    if buffer:
        logical.append((start, buffer))
    for number, text in logical:
        for match in command.finditer(text):
            rest = re.split(r"[;|&<>]", text[match.end():], maxsplit=1)[0]
            options = sorted(set(option.findall(rest)))
            print(f"{path.name}:{number}\t{match.group(1)}\t{' '.join(options)}")
PY
)
if [ -z "$uses" ]; then
  fail "no kn commands found in $DIR (the extraction is broken)"
elif [ ! -x "$KN" ]; then
  echo "SKIP: $KN does not exist (build it with cargo build --release -p kn-cli); kn options not checked" >&2
  echo "$uses" | sed 's/^/  would check: /' >&2
else
  declare -A helps=()
  while IFS=$'\t' read -r where sub opts; do
    if [ -z "${helps[$sub]+set}" ]; then
      if help=$("$KN" "$sub" --help 2>&1); then helps[$sub]=$help; else helps[$sub]="__unknown__"; fi
    fi
    if [ "${helps[$sub]}" = "__unknown__" ]; then
      fail "$where: \`kn $sub\` is not a subcommand of $KN"
      continue
    fi
    for opt in $opts; do
      if grep -qE -- "(^|[[:space:],])$opt([[:space:]=,<]|\$)" <<<"${helps[$sub]}"; then
        echo "ok   $where: kn $sub $opt"
      else
        fail "$where: kn $sub has no option $opt (see $KN $sub --help)"
      fi
    done
  done <<<"$uses"
fi

# --- 2 and 3. YAML structure, bash syntax ----------------------------------------------------
for script in "$DIR"/*.sbatch; do
  [ -e "$script" ] || continue
  if bash -n "$script"; then echo "ok   $(basename "$script"): bash -n"; else fail "$(basename "$script"): bash -n"; fi
done

yaml_files=("$DIR"/*.yaml "$DIR"/*.yml)
if "$PYTHON" -c 'import yaml' 2>/dev/null; then
  "$PYTHON" - "${yaml_files[@]}" <<'PY' || failures=$((failures + 1))
import os, subprocess, sys, yaml

bad = 0
def fail(message):
    global bad
    bad += 1
    print(f"FAIL: {message}", file=sys.stderr)

for path in sys.argv[1:]:
    if not os.path.exists(path):
        continue
    name = os.path.basename(path)
    try:
        documents = [d for d in yaml.safe_load_all(open(path)) if d is not None]
    except yaml.YAMLError as error:
        fail(f"{name}: does not parse: {error}")
        continue
    for document in documents:
        if not isinstance(document, dict) or not all(k in document for k in ("apiVersion", "kind", "metadata")):
            fail(f"{name}: a document without apiVersion, kind and metadata")
            continue
        kind = document["kind"]
        print(f"ok   {name}: parses ({kind} {document['metadata'].get('name')})")
        if kind != "Job":
            continue
        spec = document.get("spec", {})
        pod = spec.get("template", {}).get("spec", {})
        if pod.get("restartPolicy") not in ("Never", "OnFailure"):
            fail(f"{name}: a Job's restartPolicy must be Never or OnFailure")
        if ("backoffLimitPerIndex" in spec or "podFailurePolicy" in spec) and pod.get("restartPolicy") != "Never":
            fail(f"{name}: backoffLimitPerIndex and podFailurePolicy need restartPolicy: Never")
        containers = pod.get("initContainers", []) + pod.get("containers", [])
        if spec.get("completionMode") == "Indexed":
            completions = spec.get("completions")
            if not isinstance(completions, int) or completions < 1:
                fail(f"{name}: an Indexed Job needs completions >= 1")
            for container in containers:
                for env in container.get("env", []):
                    if env.get("name") == "SHARDS" and str(env.get("value")) != str(completions):
                        fail(f"{name}: SHARDS={env.get('value')} but completions={completions}")
        for container in containers:
            program = container.get("command", []) + container.get("args", [])
            if program[:2] in (["bash", "-c"], ["sh", "-c"]) and len(program) >= 3:
                result = subprocess.run(["bash", "-n"], input=program[2], text=True, capture_output=True)
                if result.returncode == 0:
                    print(f"ok   {name}: {container.get('name')}: bash -n")
                else:
                    fail(f"{name}: {container.get('name')}: bash -n: {result.stderr.strip()}")
sys.exit(1 if bad else 0)
PY
else
  echo "note: python3 has no yaml module (PyYAML); doing a minimal structural check of the YAML only" >&2
  for file in "${yaml_files[@]}"; do
    [ -e "$file" ] || continue
    name=$(basename "$file")
    if grep -qP '^\t| \t' "$file"; then fail "$name: tab in indentation"; fi
    # Every document (split at lines that are exactly ---) needs top-level apiVersion and kind.
    if awk 'BEGIN { doc = 1 } /^---[[:space:]]*$/ { if (seen[doc] != 3) bad = 1; doc++; next }
            /^apiVersion:/ { seen[doc] += 1 } /^kind:/ { seen[doc] += 2 }
            END { if (seen[doc] != 3) bad = 1; exit bad }' "$file"; then
      echo "ok   $name: apiVersion and kind (structural check only)"
    else
      fail "$name: a document without a top-level apiVersion and kind"
    fi
  done
fi

if [ "$failures" -gt 0 ]; then
  echo "check-scaling-manifests: $failures failure(s)" >&2
  exit 1
fi
echo "check-scaling-manifests: all checks passed"
