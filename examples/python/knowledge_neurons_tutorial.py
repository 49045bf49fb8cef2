"""The tutorial of docs/python.md as one script: find the knowledge neurons of a fact, plot its
attribution heatmap, suppress them, and edit the fact. Each block pastes into a notebook cell.

    python examples/python/knowledge_neurons_tutorial.py [OUT_DIR]

Needs the package (`pip install .` at the repository root, into an environment with
torch==2.11.0), matplotlib, and the default model (scripts/fetch-model.sh). Writes the run
and the heatmap (heatmap.png) into OUT_DIR (default: runs/tutorial). About two minutes on a
2-core CPU.
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # in a notebook, leave the backend as it is
import matplotlib.pyplot as plt
import numpy as np

import knowledge_neurons as kn

out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/tutorial")
out.mkdir(parents=True, exist_ok=True)

# --- 1. A model and a fact -------------------------------------------------------------------
model = kn.load_model("default")  # SmolLM2-135M-Instruct; or a GGUF file, a HF directory
print(model)
prompts = [
    "The capital of France is",
    "France's capital is",
    "The capital city of France is",
    "France, whose capital is",
]
print(model.predict(prompts[0], top=3)["top"])

# --- 2. Attribution: integrated gradients of P(Paris) over every FFN neuron --------------------
attributions = model.attribute_batch(prompts, "Paris", steps=20)  # one batch, [layers, ffn] each
for a in attributions:
    print(f"{a.prompt!r}: p(Paris) = {a.prob:.3f}, top neuron {a.top(1)[0].name}")

# The paper's selection: per prompt, neurons above 0.2 x the prompt's largest score; then the
# neurons more than 70 % of the prompts keep.
kept = [set(zip(*np.nonzero(a.scores > 0.2 * a.scores.max()))) for a in attributions]
counts = {}
for selection in kept:
    for neuron in selection:
        counts[neuron] = counts.get(neuron, 0) + 1
layers = attributions[0].layers
neurons = sorted(
    kn.Neuron(layers[row], int(index))
    for (row, index), n in counts.items()
    if n > 0.7 * len(prompts)
)
print("knowledge neurons of (France, capital, Paris):", [n.name for n in neurons])

# --- 3. The heatmap of the mean attribution -------------------------------------------------
mean = np.mean([a.scores for a in attributions], axis=0)  # [layers, ffn]
fig, ax = plt.subplots(figsize=(10, 4))
image = ax.imshow(mean, aspect="auto", cmap="viridis", interpolation="nearest")
ax.set_xlabel("FFN neuron")
ax.set_ylabel("layer")
ax.set_title("Integrated gradients of P(Paris), mean over 4 prompts")
fig.colorbar(image, ax=ax)
fig.savefig(out / "heatmap.png", dpi=100, bbox_inches="tight")
print("heatmap written to", out / "heatmap.png")

# --- 4. Suppress them (activations x 0), against as many random neurons ------------------------
effects = model.suppress(prompts, "Paris", neurons)
rng = np.random.default_rng(0)
random_neurons = [kn.Neuron(n.layer, int(rng.integers(model.ffn_width))) for n in neurons]
control = model.suppress(prompts, "Paris", random_neurons)
change = lambda rows: np.mean([r["prob_after"] / r["prob_before"] - 1 for r in rows])  # noqa: E731
print(f"suppressing the knowledge neurons: {100 * change(effects):+.1f} % p(Paris); "
      f"random neurons: {100 * change(control):+.1f} %")

# --- 5. PARAREL facts, their neurons, and an edit -------------------------------------------
run = kn.discover(model, "P36", out / "run", facts_per_relation=2, steps=20, progress=True)
fact = next(f for f in run.facts if run.neurons(f))
record = run.record(fact)
prompt = run.prompts(fact)[0]
new_answer = next(r["object"] for r in run.records if r["object"] != record["object"])
print(f"{fact}: {record['subject']} -> {record['object']}; neurons {run.neurons(fact)}")
print("before:", model.predict(prompt, top=1)["top"][0])
with model.edit(run, fact, new_answer) as edit:  # the paper's update of the value slots
    print("edited:", model.predict(prompt, top=1)["top"][0], "via", len(edit.neurons), "neurons")
print("restored:", model.predict(prompt, top=1)["top"][0])  # the weights, bit for bit

# The same update measured as `kn edit` measures it (success, locality, perplexity, checks):
report = model.evaluate_edit(run, fact, new_answer)
after = report["after"]
print(f"after the edit: success rate {after['success_rate']:.2f}, change rate {after['change_rate']:.2f}, "
      f"perplexity change {report['perplexity_change_pct']}")
