"""Bad input raises ``BadInputError`` (a ``ValueError``) with the CLI's message; Ctrl-C stops a
long call with ``KeyboardInterrupt`` and keeps the finished work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import knowledge_neurons as kn
from conftest import TINY_LLAMA, kn_error

PROMPT = "The capital of France is"


def message(error: pytest.ExceptionInfo) -> str:
    """The exception's message as the CLI prints it: each line cut to 200 characters (the
    exception keeps the whole message)."""
    lines = []
    for line in str(error.value).split("\n"):
        if len(line) > 200:
            line = f"{line[:200]}... ({len(line) - 200} more characters)"
        lines.append(line)
    return "\n".join(lines)


@pytest.mark.parametrize(
    "call, cli",
    [
        (dict(layers="0-99"), ["--layers", "0-99"]),
        (dict(layers="x"), ["--layers", "x"]),
        (dict(method="saliency"), ["--method", "saliency"]),
        (dict(rule="simpson"), ["--rule", "simpson"]),
        (dict(target="logit"), ["--target", "logit"]),
        (dict(answer_policy="all"), ["--answer-policy", "all"]),
        (dict(method="atp"), ["--method", "atp"]),
        (dict(memory_budget=-1.0), ["--memory-budget=-1"]),
    ],
)
def test_bad_attribution_options_raise_the_cli_s_message(tiny_llama, call, cli):
    with pytest.raises(kn.BadInputError) as error:
        tiny_llama.attribute(PROMPT, "Paris", steps=2, **call)
    expected = kn_error("attribute", "--model", TINY_LLAMA, "--prompt", PROMPT, "--answer", "Paris",
                        "--steps", "2", *cli)
    assert message(error) == expected or expected.endswith(message(error)), (message(error), expected)
    assert isinstance(error.value, ValueError)


def test_bad_models_and_prompts(tiny_llama, tmp_path):
    missing = tmp_path / "nothing.gguf"
    with pytest.raises(kn.BadInputError) as error:
        kn.load_model(missing)
    assert message(error) == kn_error("predict", "--model", str(missing), "--prompt", "x")
    with pytest.raises(kn.BadInputError) as error:
        kn.load_model(TINY_LLAMA, device="tpu")
    assert message(error) == kn_error("predict", "--model", TINY_LLAMA, "--device", "tpu", "--prompt", "x")
    with pytest.raises(kn.BadInputError) as error:
        tiny_llama.predict(PROMPT, top=0)
    assert message(error) == kn_error("predict", "--model", TINY_LLAMA, "--prompt", PROMPT, "--top", "0")
    with pytest.raises(kn.BadInputError, match="no --prompt"):
        tiny_llama.attribute_batch([], "Paris")
    with pytest.raises(kn.BadInputError, match="2 --answer values for 3 --prompt values"):
        tiny_llama.attribute_batch(["a", "b", "c"], ["x", "y"])
    with pytest.raises(ValueError):
        tiny_llama.suppress(PROMPT, "Paris", [(999, 0)])
    with pytest.raises(ValueError):
        kn.parse_hook_name("blocks.3.attn.hook_z[1]")


def test_bad_runs(tiny_llama, tmp_path, cli_run):
    with pytest.raises(kn.BadInputError) as error:
        tiny_llama.suppress_amplify(tmp_path / "missing")
    assert message(error) == kn_error("suppress", "--model", TINY_LLAMA, "--neurons", str(tmp_path / "missing"))
    with pytest.raises(kn.BadInputError) as error:
        tiny_llama.evaluate_edit(cli_run, "P36:999999", "Rome")
    assert message(error) == kn_error("edit", "--model", TINY_LLAMA, "--neurons", str(cli_run),
                                      "--fact", "P36:999999", "--new-answer", "Rome")
    with pytest.raises(kn.BadInputError) as error:
        kn.discover(tiny_llama, "P999999", tmp_path / "out")
    assert message(error) == kn_error("discover", "--model", TINY_LLAMA, "--relations", "P999999",
                                      "--out", str(tmp_path / "out2"))
    with pytest.raises(kn.BadInputError) as error:
        tiny_llama.evaluate_edit(cli_run, "P36:1", "Rome", lambda_add=float("nan"))
    assert "--lambda-add must be a finite number" in message(error)


CTRL_C_SCRIPT = """
import sys, knowledge_neurons as kn
model = kn.load_model(sys.argv[1])
def progress(kind, text):
    print(text, flush=True)
try:
    kn.discover(model, "P36,P1376,P19", sys.argv[2], facts_per_relation=8, correct_rank=0,
                steps=40, single_token=False, progress=progress)
except KeyboardInterrupt as stop:
    print("KeyboardInterrupt:", stop, flush=True)
    sys.exit(130)
"""


def test_ctrl_c_stops_a_discovery_and_keeps_finished_facts(tmp_path):
    out = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-c", CTRL_C_SCRIPT, TINY_LLAMA, str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    # Wait for the first finished fact, then press Ctrl-C.
    for line in process.stdout:
        if line.startswith("[1/"):
            break
    process.send_signal(signal.SIGINT)
    rest, errors = process.communicate(timeout=120)
    assert process.returncode == 130, (rest, errors)
    assert "KeyboardInterrupt: interrupted after" in rest and "resumes" in rest, rest
    finished = [l for l in (out / "neurons.jsonl").read_text().splitlines() if l.strip()]
    assert 1 <= len(finished) < 24
