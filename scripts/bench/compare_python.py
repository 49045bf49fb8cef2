#!/usr/bin/env python3
"""Times the plain Python IG reference against the Rust `kn attribute` on the same prompts, model
and thread count; run by scripts/bench/compare_python.sh (which builds and finds everything).

The two sides run in --runs interleaved rounds, so that a change in the machine's speed over the
minutes of a comparison (this VM's varies by 10-15 %) reaches both sides alike. Each round:
Python side: scripts/reference/ig_reference.py --time (all layers, m = 20, one full forward +
backward of the model per layer, integration points batched), one process holding all prompts;
its "[time]" lines give the seconds per prompt (model load excluded), its --json file the top-5
neurons.
Rust side: one `kn attribute --json` process per prompt, under /usr/bin/time: "seconds" (the
attribution itself, model load excluded), the wall time of the process (load included) and its
peak RSS; then all prompts in one process attributed one after another, each alone
(`--separately`: the Python side's protocol, so that both sides pay a process's first-call
costs, such as first-touch page faults, once per round rather than once per prompt); then all
prompts in one process as one batch.

Per prompt the best of the rounds is kept (and the median reported too); the table gives the mean
over the prompts. Before each round's Python and Rust parts the script waits (polling every 30 s,
up to --max-wait s) until the machine is quiet: 1-minute load average below --max-load and the
CPUs less than 15 % busy over 5 s. The load seen is recorded. On a machine that other jobs keep busy, --nice -19 (root) runs both
sides at a high priority so that they get the CPUs anyway (recorded in the JSON).
"""
import argparse
import datetime
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import flops  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PROMPTS_TSV = REPO / "benches" / "support" / "prompts.tsv"
IG_REFERENCE = REPO / "scripts" / "reference" / "ig_reference.py"


def log(msg):
    print(f"[compare] {msg}", file=sys.stderr, flush=True)


def prompts_for(model):
    rows = []
    for line in PROMPTS_TSV.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m, prompt, answer = line.split("\t")
        if m == model:
            rows.append((prompt, answer))
    if not rows:
        raise SystemExit(f"no prompts for {model} in {PROMPTS_TSV}")
    return rows


def loadavg():
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def cpu_busy(seconds=5.0):
    def snap():
        f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = f[3] + f[4]
        return sum(f), idle
    t0, i0 = snap()
    time.sleep(seconds)
    t1, i1 = snap()
    return 1.0 - (i1 - i0) / max(1, t1 - t0)


def wait_quiet(args, what):
    """Waits until the machine is quiet; returns what was seen."""
    started = time.time()
    while True:
        load = loadavg()
        busy = cpu_busy()
        quiet = load[0] < args.max_load and busy < 0.15
        waited = time.time() - started
        if quiet or args.no_wait or waited >= args.max_wait:
            seen = {"loadavg": load, "cpu_busy_5s": round(busy, 3), "waited_s": round(waited), "quiet": quiet}
            log(f"{what}: load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, CPU busy {100 * busy:.0f} %"
                + ("" if quiet else f" -- NOT quiet (gave up after {waited:.0f} s)"))
            return seen
        log(f"{what}: waiting for a quiet machine (load {load[0]:.2f}, CPU busy {100 * busy:.0f} %)")
        time.sleep(30)


NICE = 0


def timed(cmd, **kw):
    """Runs cmd under /usr/bin/time (and nice -n NICE when set); returns (stdout, stderr, wall
    seconds, peak RSS in KiB)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        full = (["nice", "-n", str(NICE)] if NICE else []) + ["/usr/bin/time", "-f", "%M %e", "-o", tf.name] + cmd
        started = time.perf_counter()
        proc = subprocess.run(full, capture_output=True, text=True, **kw)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(f"command failed ({proc.returncode}): {shlex.join(cmd)}\n{proc.stderr[-3000:]}")
        rss_kib, _ = tf.read().strip().splitlines()[-1].split()
    return proc.stdout, proc.stderr, wall, int(rss_kib)


def run_python(args, model_path, prompts, runs):
    with tempfile.TemporaryDirectory() as tmp:
        out_json = Path(tmp) / "ig.json"
        cmd = [args.python, str(IG_REFERENCE), "--model", str(model_path), "--layers", "all", "--steps", str(args.steps),
               "--threads", str(args.threads), "--time", "--repeat", str(runs), "--top", "5", "--json", str(out_json)]
        for prompt, answer in prompts:
            cmd += ["--prompt", prompt, "--answer", answer]
        log("python: " + shlex.join(cmd))
        stdout, stderr, wall, rss = timed(cmd, cwd=REPO)
        # "[time] prompt '...': 30 layers x m=20 (5 tokens): 12.3 s (run 1/2)", or "... 12.3 s wall,
        # 24.1 s CPU (run 1/2)" in newer versions of ig_reference.py.
        lines = list(re.finditer(r"^\[time\] prompt .*?\((\d+) tokens\): ([0-9.]+) s(?: wall)?(?:, ([0-9.]+) s CPU)? \(run \d+/\d+\)$",
                                 stdout, re.M))
        times = [float(m.group(2)) for m in lines]
        cpu = [float(m.group(3)) if m.group(3) else None for m in lines]
        tokens = [int(m.group(1)) for m in lines][::runs]
        if len(times) != len(prompts) * runs:
            raise SystemExit(f"expected {len(prompts) * runs} [time] lines from ig_reference.py, got {len(times)}:\n{stdout}")
        results = json.loads(out_json.read_text())["results"]
    per_prompt = [times[i * runs:(i + 1) * runs] for i in range(len(prompts))]
    cpu_per_prompt = [cpu[i * runs:(i + 1) * runs] for i in range(len(prompts))]
    tops = [[(r["layer"], r["neuron"]) for r in res["top20"][:5]] for res in results]
    probs = [res["clean_prob"] for res in results]
    return {"seconds_runs": per_prompt, "cpu_seconds_runs": cpu_per_prompt, "tokens": tokens, "top5": tops, "clean_prob": probs, "process_wall_s": round(wall, 2),
            "process_peak_rss_mib": round(rss / 1024, 1)}


def run_rust(args, model_spec, prompts, runs):
    per_prompt, walls, rss_all, tops, probs = [], [], [], [], []
    for prompt, answer in prompts:
        secs, wall_runs, rss_runs = [], [], []
        for _ in range(runs):
            cmd = [str(args.kn), "attribute", "--model", str(model_spec), "--prompt", prompt, "--answer", answer,
                   "--steps", str(args.steps), "--layers", "all", "--threads", str(args.threads), "--top", "5", "--json"]
            stdout, _, wall, rss = timed(cmd, cwd=REPO)
            out = json.loads(stdout)
            secs.append(out["seconds"])
            wall_runs.append(wall)
            rss_runs.append(rss)
        log(f"rust: {prompt!r}: attribution {min(secs):.3f} s, process {min(wall_runs):.2f} s, peak RSS {max(rss_runs) / 1024:.0f} MiB")
        per_prompt.append(secs)
        walls.append(wall_runs)
        rss_all.append(rss_runs)
        tops.append([(r["layer"], r["neuron"]) for r in out["top"][:5]])
        probs.append(out["prob"])
    # All prompts in one process, one after another, each alone (`--separately`): the Python
    # side's protocol, each prompt timed on its own.
    sequential = [[] for _ in prompts]
    for _ in range(runs):
        cmd = [str(args.kn), "attribute", "--model", str(model_spec), "--steps", str(args.steps), "--layers", "all",
               "--threads", str(args.threads), "--top", "5", "--json", "--separately"]
        for prompt, answer in prompts:
            cmd += ["--prompt", prompt, "--answer", answer]
        stdout, _, _, _ = timed(cmd, cwd=REPO)
        lines = [json.loads(line) for line in stdout.splitlines() if line.strip()]
        if [[(r["layer"], r["neuron"]) for r in line["top"][:5]] for line in lines] != tops:
            raise SystemExit("the one-after-another run's top-5 neurons differ from the single-prompt runs'")
        for i, line in enumerate(lines):
            sequential[i].append(line["seconds"])
    log(f"rust: all {len(prompts)} prompts one after another in one process: "
        f"{statistics.mean(min(r) for r in sequential):.3f} s per prompt")
    # All prompts in one process, as one batch (`kn attribute` with repeated --prompt): the
    # throughput of a run over many prompts, first-pass costs spread over the batch.
    batch_runs, batch_rss = [], []
    for _ in range(runs):
        cmd = [str(args.kn), "attribute", "--model", str(model_spec), "--steps", str(args.steps), "--layers", "all",
               "--threads", str(args.threads), "--top", "5", "--json"]
        for prompt, answer in prompts:
            cmd += ["--prompt", prompt, "--answer", answer]
        stdout, _, _, rss = timed(cmd, cwd=REPO)
        lines = [json.loads(line) for line in stdout.splitlines() if line.strip()]
        batch_runs.append(lines[0]["batch"]["seconds"] / len(prompts) if len(prompts) > 1 else lines[0]["seconds"])
        batch_rss.append(rss)
        if [[(r["layer"], r["neuron"]) for r in line["top"][:5]] for line in lines] != tops:
            raise SystemExit("the batched run's top-5 neurons differ from the single-prompt runs'")
    log(f"rust: all {len(prompts)} prompts as one batch: {min(batch_runs):.3f} s per prompt, peak RSS {max(batch_rss) / 1024:.0f} MiB")
    return {"seconds_runs": per_prompt, "sequential_seconds_runs": sequential, "process_wall_runs": walls,
            "peak_rss_kib_runs": rss_all, "top5": tops,
            "clean_prob": probs, "batch_seconds_per_prompt_runs": batch_runs, "batch_peak_rss_kib_runs": batch_rss}


def merge_rounds(rounds):
    """One side's results of several rounds as one: per-prompt lists of runs concatenated, lists
    of runs concatenated, everything else (top-5, probabilities, token counts) from the first
    round, and the peak memory of the Python processes the highest seen."""
    merged = dict(rounds[0])
    for later in rounds[1:]:
        for key, value in later.items():
            if key.endswith("_runs") and isinstance(value, list):
                if value and isinstance(value[0], list):
                    merged[key] = [a + b for a, b in zip(merged[key], value)]
                else:
                    merged[key] = merged[key] + value
            elif key == "process_peak_rss_mib":
                merged[key] = max(merged[key], value)
            elif key == "process_wall_s":
                merged[key] = min(merged[key], value)
            elif key == "top5" and value != merged[key]:
                raise SystemExit(f"the top-5 neurons differ between rounds: {merged[key]} vs {value}")
    return merged


def summarize(runs):
    best = [min(r) for r in runs]
    med = [statistics.median(r) for r in runs]
    return statistics.mean(best), statistics.mean(med)


def machine():
    info = {"platform": platform.platform(), "python": platform.python_version()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for key in ("Model name", "CPU(s)", "Thread(s) per core", "Core(s) per socket", "L2 cache", "L3 cache", "Flags"):
            m = re.search(rf"^{re.escape(key)}:\s*(.*)$", lscpu, re.M)
            if m:
                value = m.group(1).strip()
                if key == "Flags":
                    value = " ".join(f for f in value.split() if f.startswith(("avx", "fma", "amx")))
                info[key] = value
    except OSError:
        pass
    try:
        info["memory_gib"] = round(int(Path("/proc/meminfo").read_text().split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        out = subprocess.run([args_global.python, "-c", "import torch, transformers; print(torch.__version__, transformers.__version__)"],
                             capture_output=True, text=True).stdout.split()
        info["python_torch"], info["python_transformers"] = out[0], out[1]
    except (OSError, IndexError):
        pass
    try:
        info["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout.strip()
    except OSError:
        pass
    return info


def main():
    global args_global, NICE
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", required=True, help="python of the reference venv")
    ap.add_argument("--kn", required=True, help="target/release/kn")
    ap.add_argument("--smollm2", help="SmolLM2 GGUF path (Python loads it; Rust gets the same path)")
    ap.add_argument("--bert", help="random BERT-base directory")
    ap.add_argument("--gemma", help="Gemma-3-270M GGUF path (Python loads it; Rust gets the same path)")
    ap.add_argument("--llama-1b", help="directory of the checkpoint shaped like Llama-3.2-1B")
    ap.add_argument("--models", default="smollm2,bert-base")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=2, help="runs of each prompt on each side (best and median kept)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--max-load", type=float, default=1.0)
    ap.add_argument("--max-wait", type=float, default=600)
    ap.add_argument("--no-wait", action="store_true")
    ap.add_argument("--nice", type=int, default=0,
                    help="run both sides under `nice -n NICE` (e.g. -19 on a machine other jobs keep busy; needs root)")
    ap.add_argument("--out", required=True, help="JSON file to write")
    args = ap.parse_args()
    args_global = args
    NICE = args.nice
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    paths = {"smollm2": args.smollm2, "bert-base": args.bert, "gemma-3-270m": args.gemma,
             "llama-3.2-1b-shaped": args.llama_1b,
             # the test fixtures, to try the script quickly (not part of the report)
             "tiny-bert": str(REPO / "fixtures" / "tiny-bert"), "tiny-llama": str(REPO / "fixtures" / "tiny-llama")}
    report = {
        "generator": "scripts/bench/compare_python.sh",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": {"threads": args.threads, "steps": args.steps, "layers": "all", "rule": "left", "target": "probability",
                     "runs_per_prompt": args.runs, "runs_interleaved": True, "nice": args.nice, "python_reference": "scripts/reference/ig_reference.py --time",
                     "rust": "target/release/kn attribute --json"},
        "models": {},
    }
    for model in models:
        path = paths.get(model)
        if not path:
            raise SystemExit(f"no path for model {model}")
        prompts = prompts_for(model)
        entry = {"path": path, "prompts": [{"prompt": p, "answer": a} for p, a in prompts]}
        python_rounds, rust_rounds, loads = [], [], []
        for round_index in range(args.runs):
            label = f"{model} round {round_index + 1}/{args.runs}"
            load_python = wait_quiet(args, f"{label} / python")
            python_rounds.append(run_python(args, path, prompts, 1))
            load_rust = wait_quiet(args, f"{label} / rust")
            rust_rounds.append(run_rust(args, path, prompts, 1))
            loads.append({"python": load_python, "rust": load_rust})
        entry["load_before_python"] = loads[0]["python"]
        entry["load_before_rust"] = loads[0]["rust"]
        entry["load_per_round"] = loads
        entry["python"] = merge_rounds(python_rounds)
        entry["rust"] = merge_rounds(rust_rounds)
        entry["load_after"] = {"loadavg": loadavg()}
        py_best, py_med = summarize(entry["python"]["seconds_runs"])
        rs_best, rs_med = summarize(entry["rust"]["seconds_runs"])
        seq_best, seq_med = summarize(entry["rust"]["sequential_seconds_runs"])
        wall_best, _ = summarize(entry["rust"]["process_wall_runs"])
        tokens = entry["python"]["tokens"]
        if model in flops.MODELS:
            py_work = [flops.python_flops(model, t, args.steps) for t in tokens]
            rs_work = [flops.rust_flops(model, t, args.steps) for t in tokens]
            best_py = [min(r) for r in entry["python"]["seconds_runs"]]
            best_rs = [min(r) for r in entry["rust"]["seconds_runs"]]
            entry["flops"] = {
                "counted_by": "scripts/bench/flops.py",
                "python_gflop_per_prompt": [round(w / 1e9, 1) for w in py_work],
                "rust_gflop_per_prompt": [round(w / 1e9, 1) for w in rs_work],
                "python_gflops_achieved": round(sum(py_work) / sum(best_py) / 1e9, 1),
                "rust_gflops_achieved": round(sum(rs_work) / sum(best_rs) / 1e9, 1),
                "work_ratio": round(sum(py_work) / sum(rs_work), 2),
            }
        agree = [a == b for a, b in zip(entry["python"]["top5"], entry["rust"]["top5"])]
        same_set = [set(a) == set(b) for a, b in zip(entry["python"]["top5"], entry["rust"]["top5"])]
        entry["summary"] = {
            "python_s_per_prompt": round(py_best, 3),
            "python_s_per_prompt_median_runs": round(py_med, 3),
            "rust_s_per_prompt": round(rs_best, 4),
            "rust_s_per_prompt_median_runs": round(rs_med, 4),
            "rust_process_wall_s_per_prompt": round(wall_best, 3),
            "speedup": round(py_best / rs_best, 2),
            "speedup_median_runs": round(py_med / rs_med, 2),
            "speedup_vs_rust_process_wall": round(py_best / wall_best, 2),
            "rust_same_protocol_s_per_prompt": round(seq_best, 4),
            "rust_same_protocol_s_per_prompt_median_runs": round(seq_med, 4),
            "speedup_same_protocol": round(py_best / seq_best, 2),
            "speedup_same_protocol_median_runs": round(py_med / seq_med, 2),
            "rust_batch_s_per_prompt": round(min(entry["rust"]["batch_seconds_per_prompt_runs"]), 4),
            "speedup_batch": round(py_best / min(entry["rust"]["batch_seconds_per_prompt_runs"]), 2),
            "rust_batch_peak_rss_mib": round(max(entry["rust"]["batch_peak_rss_kib_runs"]) / 1024, 1),
            "rust_peak_rss_mib": round(max(max(r) for r in entry["rust"]["peak_rss_kib_runs"]) / 1024, 1),
            "top5_identical_prompts": sum(agree),
            "top5_same_set_prompts": sum(same_set),
            "prompts": len(prompts),
        }
        report["models"][model] = entry
        log(f"{model}: {json.dumps(entry['summary'])}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")

    print()
    print(f"IG attribution, all layers, m = {args.steps}, {args.threads} threads, best of {args.runs} runs per prompt, "
          f"mean over prompts ({report['machine'].get('Model name', '?')}, {report['machine'].get('CPU(s)', '?')} CPUs)")
    header = f"{'model':<10} {'prompts':>7} {'python s/prompt':>16} {'rust s/prompt':>14} {'speedup':>8} " \
             f"{'same-protocol s':>16} {'speedup':>8} {'batch s/prompt':>15} {'batch':>7} " \
             f"{'rust wall s':>12} {'vs wall':>8} {'rust peak RSS':>14} {'top-5 agree':>12} {'load':>10}"
    print(header)
    print("-" * len(header))
    for model, entry in report["models"].items():
        s = entry["summary"]
        loads = f"{entry['load_before_python']['loadavg'][0]:.2f}/{entry['load_before_rust']['loadavg'][0]:.2f}"
        print(f"{model:<10} {s['prompts']:>7} {s['python_s_per_prompt']:>16.2f} {s['rust_s_per_prompt']:>14.3f} "
              f"{s['speedup']:>7.1f}x {s['rust_same_protocol_s_per_prompt']:>16.3f} {s['speedup_same_protocol']:>7.1f}x "
              f"{s['rust_batch_s_per_prompt']:>15.3f} {s['speedup_batch']:>6.1f}x "
              f"{s['rust_process_wall_s_per_prompt']:>12.2f} {s['speedup_vs_rust_process_wall']:>7.1f}x "
              f"{s['rust_peak_rss_mib']:>10.0f} MiB {s['top5_identical_prompts']:>5}/{s['prompts']:<6} {loads:>10}")
    print("(rust s/prompt: one `kn attribute` process per prompt, attribution time; same-protocol: all prompts in one"
          " process one after another, each alone, as the python side runs them (`--separately`); batch: all prompts in"
          " one process, one batch, its attribution time per prompt;")
    print(" rust wall s: the whole `kn attribute` process, model load included; vs wall: python s/prompt over it;"
          " load: 1-min load average before the python / rust part)")
    for model, entry in report["models"].items():
        s = entry["summary"]
        status = "OK" if s["top5_identical_prompts"] == s["prompts"] else "MISMATCH"
        print(f"sanity {model}: top-5 neurons identical (same order) on {s['top5_identical_prompts']}/{s['prompts']} prompts, "
              f"same set on {s['top5_same_set_prompts']}/{s['prompts']}: {status}")
    for model, entry in report["models"].items():
        if "flops" in entry:
            f = entry["flops"]
            print(f"work {model}: {sum(f['python_gflop_per_prompt']) / len(f['python_gflop_per_prompt']):.0f} GFLOP per prompt (python) vs "
                  f"{sum(f['rust_gflop_per_prompt']) / len(f['rust_gflop_per_prompt']):.0f} (rust), ratio {f['work_ratio']:.2f}; achieved "
                  f"{f['python_gflops_achieved']:.0f} vs {f['rust_gflops_achieved']:.0f} GFLOP/s (scripts/bench/flops.py)")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
