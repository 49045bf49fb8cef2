#!/usr/bin/env bash
# Runs docs/scaling.md's Slurm job array for real, on this machine, on a tiny model:
#
#   1. installs Slurm and MUNGE from the distribution's packages when `sbatch` is missing
#      (Debian: slurm-wlm, munge; needs root or passwordless sudo);
#   2. starts munged (when not running) and a single-node Slurm cluster of its own (slurmctld +
#      slurmd, configuration, state and logs in a temporary directory; the node advertises one
#      stand-in GPU so the scripts' `--gres=gpu:1` is satisfied without a GPU);
#   3. submits examples/scaling/discover.sbatch as a 3-task array (shards 0/3, 1/3, 2/3) with the
#      tiny Llama fixture on the CPU, then examples/scaling/merge.sbatch after it
#      (`--dependency=afterok`), exactly as docs/scaling.md shows;
#   4. runs the same discovery unsharded and checks that the merged run holds the same facts in
#      the same order with the same prompts, probabilities, ranks and neurons (coarse and
#      refined; the tiny random model shares no neuron across 70 % of a fact's prompts, so its
#      refined sets are empty and the coarse ones carry the check);
#   5. stops the daemons it started and removes its directory.
#
# Usage: bash scripts/check-slurm.sh   (KN=/path/to/kn; default $CARGO_TARGET_DIR or target, release/kn,
# built if missing)
# Exit status 0 when the merged run equals the unsharded one, 1 otherwise.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
KN="${KN:-${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/kn}"
log() { echo "check-slurm: $*" >&2; }

if [ ! -x "$KN" ]; then
  log "building $KN"
  cargo build --release --quiet -p kn-cli
fi

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

# --- 1. Slurm and MUNGE ----------------------------------------------------------------------
if ! command -v sbatch >/dev/null 2>&1 || ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  log "installing slurm-wlm and munge from the distribution's packages"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null \
    || { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null; }
fi

WORK=$(mktemp -d /tmp/kn-check-slurm.XXXXXX)
chmod 755 "$WORK"
STARTED_MUNGE=""
CTLD_PID=""
SLURMD_PID=""
cleanup() {
  # The daemons run under this directory's configuration: stop exactly those.
  as_root pkill -f -- "-f $WORK/slurm.conf" 2>/dev/null || true
  [ -n "$SLURMD_PID" ] && wait "$SLURMD_PID" 2>/dev/null || true
  [ -n "$CTLD_PID" ] && wait "$CTLD_PID" 2>/dev/null || true
  if [ -n "$STARTED_MUNGE" ]; then
    as_root pkill -f -- "--pid-file=$WORK/munged.pid" 2>/dev/null || true
  fi
  sleep 1
  [ -n "${KEEP:-}" ] && { log "kept $WORK"; return; }
  as_root rm -rf "$WORK"
}
trap cleanup EXIT

# --- 2. munged and a one-node cluster -------------------------------------------------------
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  if [ ! -s /etc/munge/munge.key ]; then
    as_root mkdir -p /etc/munge
    as_root sh -c 'dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null'
    as_root chown munge:munge /etc/munge/munge.key 2>/dev/null || true
    as_root chmod 400 /etc/munge/munge.key
  fi
  as_root mkdir -p /run/munge /var/log/munge /var/lib/munge
  as_root chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
  if id munge >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    runuser -u munge -- munged --pid-file="$WORK/munged.pid" 2>/dev/null \
      || munged --force --pid-file="$WORK/munged.pid"
  else
    as_root munged --force --pid-file="$WORK/munged.pid"
  fi
  STARTED_MUNGE=1
fi
munge -n | unmunge >/dev/null || { log "munge does not work"; exit 1; }

NODE=$(hostname -s)
CPUS=$(nproc)
MEMORY_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))
SLURM_USER=$(id -un)
mkdir -p "$WORK/state" "$WORK/spool" "$WORK/out"
cat >"$WORK/slurm.conf" <<EOF
ClusterName=kncheck
SlurmctldHost=$NODE
SlurmUser=$SLURM_USER
SlurmdUser=root
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/slurmctld.log
SlurmdLogFile=$WORK/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
GresTypes=gpu
NodeName=$NODE CPUs=$CPUS RealMemory=$MEMORY_MB Gres=gpu:1 State=UNKNOWN
PartitionName=check Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
# One stand-in GPU (Slurm drops GPUs without a device file; /dev/null binds nothing with
# task/none), so the scripts' --gres=gpu:1 is met: the array's tasks run one after another.
echo "NodeName=$NODE Name=gpu File=/dev/null" >"$WORK/gres.conf"
export SLURM_CONF="$WORK/slurm.conf"
as_root env SLURM_CONF="$SLURM_CONF" slurmctld -D -f "$SLURM_CONF" >"$WORK/slurmctld.stdout" 2>&1 &
CTLD_PID=$!
as_root env SLURM_CONF="$SLURM_CONF" slurmd -D -f "$SLURM_CONF" >"$WORK/slurmd.stdout" 2>&1 &
SLURMD_PID=$!
for _ in $(seq 1 20); do
  state=$(sinfo -h -N -o "%t" 2>/dev/null | head -1 || true)
  [ "$state" = "idle" ] && break
  sleep 1
done
if [ "${state:-}" != "idle" ]; then
  log "the node did not come up (state: ${state:-none}); logs:"
  tail -n 20 "$WORK/slurmctld.log" "$WORK/slurmd.log" >&2 || true
  exit 1
fi
log "Slurm $(sinfo -V | awk '{print $2}') up: node $NODE, $CPUS CPUs"

# --- 3. the documented job array and merge job ------------------------------------------------
RUN="$WORK/run"
export RUN KN MODEL="$REPO_ROOT/fixtures/tiny-llama" DEVICE=cpu RELATIONS=P36,P1376 \
  FACTS_PER_RELATION=3 CORRECT_RANK=0
# The tiny job needs 1 CPU and little memory per task; everything else is the scripts' own.
LIMITS=(--cpus-per-task=1 --mem=1G --time=00:10:00)
jid=$(sbatch --parsable --array=0-2 "${LIMITS[@]}" --output="$WORK/out/%x-%A_%a.out" \
  --export=ALL examples/scaling/discover.sbatch)
mid=$(sbatch --parsable --dependency=afterok:"$jid" "${LIMITS[@]}" --output="$WORK/out/%x-%j.out" \
  --export=ALL examples/scaling/merge.sbatch)
log "submitted discover array $jid (3 shards) and merge job $mid"
show_outputs() {
  for out in "$WORK"/out/*.out; do
    [ -e "$out" ] || continue
    echo "--- $(basename "$out")" >&2
    tail -n 3 "$out" >&2
  done
}
for _ in $(seq 1 600); do
  [ -z "$(squeue -h -j "$jid,$mid" 2>/dev/null)" ] && break
  # A failed array task leaves the merge job waiting forever: fail at once, with the outputs.
  if squeue -h -j "$mid" -o "%r" 2>/dev/null | grep -q DependencyNeverSatisfied; then
    log "a discover task failed, so the merge job can never run:"; show_outputs; exit 1
  fi
  sleep 1
done
if [ -n "$(squeue -h -j "$jid,$mid" 2>/dev/null)" ]; then
  log "jobs still queued after 10 minutes:"; squeue >&2; show_outputs; exit 1
fi
show_outputs
if [ ! -s "$RUN/merged/neurons.jsonl" ]; then
  log "no merged run in $RUN/merged"; exit 1
fi

# --- 4. the unsharded run, and the comparison -------------------------------------------------
"$KN" -q discover --model "$MODEL" --device cpu --threads 1 \
  --relations "$RELATIONS" --facts-per-relation "$FACTS_PER_RELATION" --seed 0 \
  --steps 20 --layers all --threshold 0.2 --share 0.7 --min-prompts 3 \
  --correct-rank "$CORRECT_RANK" --correct-prompts 1 --batch-size 600 --out "$WORK/whole"
python3 - "$RUN/merged/neurons.jsonl" "$WORK/whole/neurons.jsonl" <<'PY'
import json, sys
def read(path):
    return [json.loads(line) for line in open(path) if line.strip()]
merged, whole = read(sys.argv[1]), read(sys.argv[2])
# Everything but the time a fact took: fact, prompts with their rank and coarse neurons, refined
# neurons, exactly; probabilities to 1e-9 relative (they differ in the last bits between
# processes that batch prompts differently).
def key(r):
    prompts = [{k: v for k, v in p.items() if k != "prob"} for p in r["prompts"]]
    return {**{k: v for k, v in r.items() if k not in ("seconds", "prompts")}, "prompts": prompts}
def probs(rs):
    return [p["prob"] for r in rs for p in r["prompts"]]
if not whole or not any(p["coarse"] for r in whole for p in r["prompts"]):
    sys.exit("check-slurm: the unsharded run found no facts or no neurons: nothing to compare")
same_probs = len(probs(merged)) == len(probs(whole)) and all(
    abs(a - b) <= 1e-9 * max(abs(a), abs(b)) for a, b in zip(probs(merged), probs(whole)))
if [key(r) for r in merged] != [key(r) for r in whole] or not same_probs:
    sys.exit(f"check-slurm: the merged run differs from the unsharded one ({len(merged)} vs {len(whole)} facts)")
coarse = sum(len(p["coarse"]) for r in whole for p in r["prompts"])
print(f"check-slurm: merged run of 3 Slurm shards equals the unsharded run: {len(whole)} facts, "
      f"same prompts, probabilities, ranks and {coarse} coarse neurons, "
      f"{sum(len(r['neurons']) for r in whole)} refined neurons")
PY
[ -s "$RUN/merged/suppression.json" ] || [ -s "$RUN/merged/suppression.svg" ] \
  || { log "merge.sbatch did not write the suppression results"; exit 1; }
log "ok"
