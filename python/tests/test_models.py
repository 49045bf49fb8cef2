"""Loading, prediction and attribution against ``kn predict`` / ``kn attribute --json``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import knowledge_neurons as kn
from conftest import TINY_BERT, TINY_LLAMA, assert_close, kn_json, without_timing

PROMPT = "The capital of France is"


@pytest.mark.parametrize(
    "spec, prompt",
    [
        (TINY_LLAMA, PROMPT),
        (TINY_BERT, "The capital of France is [MASK]."),
        ("default", PROMPT),
        ("gemma-3-270m", "Paris is the capital of"),
    ],
)
def test_predict_is_the_cli_s(spec, prompt):
    model = kn.load_model(spec)
    python = model.predict(prompt, top=7)
    cli = kn_json("predict", "--model", spec, "--prompt", prompt, "--top", "7", "--json")
    assert_close(python, cli)


def test_model_info_and_repr(tiny_llama):
    assert tiny_llama.num_layers == tiny_llama.info["num_layers"] > 0
    assert tiny_llama.ffn_width == tiny_llama.info["ffn_width"] > 0
    assert tiny_llama.info["dtype"] == "f32"
    assert "layers" in repr(tiny_llama)


@pytest.mark.parametrize("method", ["ig", "activation", "grad-x-act", "logprob-increase", "atp"])
def test_attribute_is_the_cli_s_for_every_method(tiny_llama, method, tmp_path):
    extra = ["--counterfactual", "The capital of Italy is"] if method == "atp" else []
    npy = tmp_path / "scores.npy"
    cli = kn_json(
        "attribute", "--model", TINY_LLAMA, "--prompt", PROMPT, "--answer", "Paris",
        "--method", method, "--steps", "6", "--top", "10", "--json", "--out", str(npy), *extra,
    )
    python = tiny_llama.attribute(
        PROMPT, "Paris", steps=6, method=method, top=10,
        counterfactual="The capital of Italy is" if method == "atp" else None,
    )
    expected = without_timing(cli)
    expected.pop("out")
    assert_close(without_timing(python.to_dict()), expected)
    cli_scores = np.load(npy)
    assert python.scores.dtype == np.float32 and python.scores.shape == cli_scores.shape
    scale = float(np.abs(cli_scores).max())
    assert np.abs(python.scores - cli_scores).max() <= 1e-5 * scale
    # top(k) orders as the CLI does (score, then layer, then index).
    assert [(n.layer, n.index) for n in python.top(10)] == [(t["layer"], t["neuron"]) for t in cli["top"]]


def test_attribute_on_the_default_model_is_the_cli_s(default_model, tmp_path):
    npy = tmp_path / "scores.npy"
    cli = kn_json(
        "attribute", "--model", "default", "--prompt", PROMPT, "--answer", "Paris",
        "--steps", "20", "--json", "--out", str(npy),
    )
    python = default_model.attribute(PROMPT, "Paris", steps=20)
    assert python.layers == list(range(default_model.num_layers))
    assert python.prob == pytest.approx(cli["prob"], rel=1e-6)
    cli_scores = np.load(npy)
    scale = float(np.abs(cli_scores).max())
    assert np.abs(python.scores - cli_scores).max() <= 1e-5 * scale
    assert python.convergence_delta == pytest.approx([c["gap"] for c in cli["completeness"]], abs=1e-5)


def test_attribute_batch_is_the_cli_batch(tiny_llama):
    prompts = [PROMPT, "Paris is the capital of", "France's capital city is"]
    answers = ["Paris", "France", "Paris"]
    args = ["attribute", "--model", TINY_LLAMA, "--steps", "5", "--layers", "0,2", "--json"]
    for prompt, answer in zip(prompts, answers):
        args += ["--prompt", prompt, "--answer", answer]
    cli = kn_json(*args)
    batch = tiny_llama.attribute_batch(prompts, answers, steps=5, layers=[0, 2])
    assert len(batch) == 3
    for python, line in zip(batch, cli):
        assert_close(without_timing(python.to_dict()), without_timing(line))
        assert python.output["batch"]["prompts"] == 3
    # One after another: the same scores (results do not depend on batching).
    alone = tiny_llama.attribute_batch(prompts, answers, steps=5, layers="0,2", separately=True)
    for a, b in zip(batch, alone):
        assert np.abs(a.scores - b.scores).max() <= 1e-5 * max(1e-12, float(np.abs(a.scores).max()))


def test_activations_and_progress_of_a_batch(tiny_llama):
    prompts = [PROMPT, "Paris is the capital of"]
    messages = []
    batch = tiny_llama.attribute_batch(prompts, ["Paris", "France"], steps=3, separately=True,
                                       progress=lambda kind, text: messages.append(text))
    assert [m.split(" ", 1)[0] for m in messages] == ["[1/2]", "[2/2]"]
    for a in batch:
        activation = tiny_llama.attribute(a.prompt, a.answer, method="activation")
        assert a.activations.shape == a.scores.shape
        # The clean pass of integrated gradients and the activation method's forward pass run
        # different kernels: equal within float32 rounding.
        scale = float(np.abs(activation.scores).max())
        assert np.abs(a.activations - activation.scores).max() <= 1e-5 * scale


def test_captum_names_and_torch_view(tiny_llama):
    a = tiny_llama.attribute(PROMPT, "Paris", n_steps=4, internal_batch_size=7, layers=1)
    b = tiny_llama.attribute(PROMPT, "Paris", steps=4, batch_size=3, layers=[1])
    assert a.output["steps"] == 4 and a.layers == [1]
    assert np.abs(a.scores - b.scores).max() <= 1e-5 * float(np.abs(a.scores).max())
    with pytest.raises(TypeError):
        tiny_llama.attribute(PROMPT, "Paris", steps=4, n_steps=4)
    tensor = a.tensor()
    assert isinstance(tensor, torch.Tensor) and tensor.data_ptr() == a.scores.ctypes.data
    top = a.top(3)
    assert top[0].hook_name == "blocks.1.mlp.hook_post"
    assert kn.parse_hook_name(top[0].name) == top[0].neuron


def test_one_libtorch_in_the_process(tiny_llama):
    libraries = {
        line.split()[-1]
        for line in open("/proc/self/maps").read().splitlines()
        if line.rstrip().endswith(("libtorch_cpu.so", "libc10.so"))
    }
    torch_lib = torch.__file__.rsplit("/", 1)[0] + "/lib/"
    assert len(libraries) == 2 and all(path.startswith(torch_lib) for path in libraries), libraries


def test_intervention_is_the_suppression_and_amplification_of_the_paper(tiny_llama):
    neurons = [(1, 3), kn.Neuron(2, 5), "blocks.0.mlp.hook_post[7]"]
    suppressed = tiny_llama.suppress([PROMPT, "Paris is the capital of"], ["Paris", "France"], neurons)
    amplified = tiny_llama.amplify(PROMPT, "Paris", neurons)
    unchanged = tiny_llama.intervene(PROMPT, "Paris", neurons, factor=1.0)
    assert len(suppressed) == 2 and len(amplified) == 1
    assert unchanged[0]["prob_after"] == unchanged[0]["prob_before"]
    # Before: the clean pass, as kn predict gives it (the answer's probability and the top token).
    clean = tiny_llama.predict(PROMPT, top=tiny_llama.info["vocab_size"])
    paris = next(p for p in clean["top"] if p["id"] == suppressed[0]["answer_token"])
    assert suppressed[0]["prob_before"] == pytest.approx(paris["prob"], rel=1e-5)
    assert amplified[0]["prob_before"] == pytest.approx(paris["prob"], rel=1e-5)
    assert clean["top"][0]["id"] == suppressed[0]["top_token_before"]
    assert suppressed[0]["prob_after"] != suppressed[0]["prob_before"]
    assert amplified[0]["prob_after"] != amplified[0]["prob_before"]


def test_dtype_names(tiny_llama):
    half = kn.load_model(TINY_LLAMA, dtype=torch.bfloat16)
    assert half.info["dtype"] == "bf16"
    assert kn.load_model(TINY_LLAMA, dtype="f32").info["dtype"] == "f32"
