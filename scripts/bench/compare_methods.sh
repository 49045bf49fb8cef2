#!/usr/bin/env bash
# The attribution methods side by side on one model, with the same selection and the same
# suppression experiment (docs/results.md, "Attribution methods compared"):
#   for each method: kn discover --method M (same facts, prompts, threshold and refinement), then
#   kn suppress on its run (random-neuron and other-relation controls);
# then the table: seconds per prompt of the coarse step, refined neurons per fact, overlap of
# each fact's refined neurons with integrated gradients' (Jaccard), and the suppression effect
# on the facts' own prompts against the random control.
#
# Usage: bash scripts/bench/compare_methods.sh [--model default] [--relations P36,P176,P178]
#        [--facts-per-relation 4] [--max-prompts 4]
#        [--methods ig,activation,grad-x-act,atp,logprob-increase]
#        [--out docs/bench/methods-<model>.json]
# Needs target/release/kn (cargo build --release -p kn-cli).
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KN="${KN:-${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/kn}"
MODEL=default
RELATIONS=P36,P176,P178
FACTS=4
MAX_PROMPTS=4
METHODS=ig,activation,grad-x-act,atp,logprob-increase
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL=$2; shift 2 ;;
    --relations) RELATIONS=$2; shift 2 ;;
    --facts-per-relation) FACTS=$2; shift 2 ;;
    --max-prompts) MAX_PROMPTS=$2; shift 2 ;;
    --methods) METHODS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "compare_methods: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -n "$OUT" ] || OUT="$REPO_ROOT/docs/bench/methods-$(basename "$MODEL" | sed 's/\.gguf$//').json"
WORK=$(mktemp -d /tmp/kn-compare-methods.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
IFS=, read -r -a methods <<<"$METHODS"
for method in "${methods[@]}"; do
  echo "compare_methods: $method" >&2
  start=$(date +%s.%N)
  "$KN" -q discover --model "$MODEL" --method "$method" --relations "$RELATIONS" \
    --facts-per-relation "$FACTS" --max-prompts "$MAX_PROMPTS" --seed 0 --out "$WORK/$method"
  end=$(date +%s.%N)
  echo "$start $end" >"$WORK/$method.time"
  "$KN" -q suppress --model "$MODEL" --neurons "$WORK/$method" --activation-baseline false \
    --out "$WORK/$method/suppression.json" --json >/dev/null
done
python3 - "$WORK" "$OUT" "$MODEL" "$METHODS" "$RELATIONS" "$FACTS" "$MAX_PROMPTS" <<'PY'
import datetime, json, os, platform, sys
work, out, model, methods = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(",")
relations, facts_per_relation, max_prompts = sys.argv[5].split(","), int(sys.argv[6]), int(sys.argv[7])

def records(method):
    with open(os.path.join(work, method, "neurons.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]

def neurons(record):
    return {(n["layer"], n["neuron"]) for n in record["neurons"]}

reference = {r["fact"]: neurons(r) for r in records("ig")} if "ig" in methods else None
rows = []
for method in methods:
    recs = records(method)
    prompts = sum(len(r["prompts"]) for r in recs)
    seconds = sum(r["seconds"] for r in recs)
    overlaps = []
    if reference is not None:
        for r in recs:
            a, b = neurons(r), reference.get(r["fact"], set())
            if a or b:
                overlaps.append(len(a & b) / len(a | b))
    with open(os.path.join(work, method, "suppression.json")) as f:
        conditions = json.load(f)["overall"]["conditions"]
    pick = lambda cond, op: conditions[cond][op]["change_pct"]
    rows.append({
        "method": method,
        "facts": len(recs),
        "prompts": prompts,
        "seconds_per_prompt": seconds / max(prompts, 1),
        "refined_neurons_per_fact": sum(len(r["neurons"]) for r in recs) / max(len(recs), 1),
        "facts_with_neurons": sum(1 for r in recs if r["neurons"]),
        "jaccard_with_ig_mean": (sum(overlaps) / len(overlaps)) if overlaps else None,
        "suppress_own_change_pct": pick("own", "suppress"),
        "suppress_random_change_pct": pick("random", "suppress"),
        "amplify_own_change_pct": pick("own", "amplify"),
        "amplify_random_change_pct": pick("random", "amplify"),
    })
report = {
    "generator": "scripts/bench/compare_methods.sh",
    "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
    "model": model,
    "relations": relations,
    "facts_per_relation": facts_per_relation,
    "max_prompts": max_prompts,
    "rows": rows,
}
os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "w") as f:
    json.dump(report, f, indent=1)
fmt = lambda v, spec: "-" if v is None else format(v, spec)
print(f"{'method':<18} {'s/prompt':>9} {'neurons/fact':>13} {'Jaccard vs ig':>14} {'suppress own':>13} {'random':>8} {'amplify own':>12} {'random':>8}")
for r in rows:
    print(f"{r['method']:<18} {fmt(r['seconds_per_prompt'], '.3f'):>9} {fmt(r['refined_neurons_per_fact'], '.2f'):>13} "
          f"{fmt(r['jaccard_with_ig_mean'], '.2f'):>14} {fmt(r['suppress_own_change_pct'], '+.1f'):>13} "
          f"{fmt(r['suppress_random_change_pct'], '+.1f'):>8} {fmt(r['amplify_own_change_pct'], '+.1f'):>12} "
          f"{fmt(r['amplify_random_change_pct'], '+.1f'):>8}")
print(f"wrote {out}", file=sys.stderr)
PY
