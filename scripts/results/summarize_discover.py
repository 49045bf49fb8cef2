#!/usr/bin/env python3
"""Prints the Markdown tables of docs/results.md from a `kn discover` run directory.

Usage: python3 scripts/results/summarize_discover.py RUN_DIR
Reads RUN_DIR/stats.json, relations.json and neurons.jsonl (standard library only).
"""
import json
import sys
from collections import Counter
from pathlib import Path


def main(run: Path) -> None:
    stats = json.loads((run / "stats.json").read_text())
    relations = json.loads((run / "relations.json").read_text())
    records = [json.loads(line) for line in (run / "neurons.jsonl").read_text().splitlines() if line.strip()]
    summary = stats["summary"]
    config = stats["config"]
    counts = summary["neurons_per_fact"]
    print(f"Model: {config['model']['source']} (fingerprint {config['model']['fingerprint']})")
    print(f"Relations: {', '.join(config['relations'])}; {summary['facts']} facts; seed {config['seed']}; "
          f"m = {config['steps']}; t = {config['threshold']:.2g}; p = {config['share']}\n")
    print("| figure | SmolLM2-135M-Instruct (this run) | BERT-base-cased (paper) |")
    print("| --- | --- | --- |")
    print(f"| knowledge neurons per fact | {counts['mean']:.2f} (std {counts['std']:.2f}, min {counts['min']}, max {counts['max']}) | 4.13 |")
    intra, inter = summary["sharing"]["intra"], summary["sharing"]["inter"]
    fmt = lambda m: "n/a" if m["mean"] is None else f"{m['mean']:.2f} ({m['pairs']} pairs)"
    print(f"| shared by two facts of the same relation | {fmt(intra)} | 1.23 |")
    print(f"| shared by two facts of different relations | {fmt(inter)} | 0.09 |")
    print(f"| prompts per fact | {stats['prompts_per_fact']:.2f} | 9.14 (masked templates) |")
    print(f"| attribution wall time per fact | {stats['seconds_per_fact']:.1f} s | 13.3 s (V100, paper's code) |")
    correct = sum(1 for r in records for p in r["prompts"] if p["rank"] == 1)
    total = sum(len(r["prompts"]) for r in records)
    print(f"| prompts answered top-1 | {correct}/{total} | |\n")

    layers = Counter()
    for r in records:
        for n in r["neurons"]:
            layers[n["layer"]] += 1
    total_neurons = sum(layers.values()) or 1
    num_layers = max(config["layers"]) + 1
    print("Layer distribution of the knowledge neurons (share of all neurons, per layer):\n")
    print("| layers | " + " | ".join(f"{a}-{a + 4}" for a in range(0, num_layers, 5)) + " |")
    print("| --- | " + " | ".join("---" for _ in range(0, num_layers, 5)) + " |")
    shares = [sum(layers[l] for l in range(a, min(a + 5, num_layers))) / total_neurons for a in range(0, num_layers, 5)]
    print("| share | " + " | ".join(f"{100 * s:.0f}%" for s in shares) + " |\n")

    print("Per relation:\n")
    print("| relation | facts | mean neurons per fact | relation-level neurons (>= 10% of facts) | most frequent |")
    print("| --- | --- | --- | --- | --- |")
    for relation, info in relations.items():
        neurons = info["neurons"]
        top = ", ".join(f"L{n['neuron'][0]}.{n['neuron'][1]} ({n['frequency']:.0%})" for n in neurons[:3])
        print(f"| {relation} | {info['facts']} | {info['mean_neurons_per_fact']:.2f} | {len(neurons)} | {top} |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
