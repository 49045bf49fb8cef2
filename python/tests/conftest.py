"""Shared fixtures of the package's tests: the ``kn`` binary the results are compared with,
the committed tiny models, the default model, and a discovery run made once by each side.

The CLI is the reference here: every function of the package must print what the ``kn``
subcommand of the same name prints with ``--json`` (the Rust tests check the CLI against
transformers). ``KN_BIN`` names the binary (default: target/release/kn under
``CARGO_TARGET_DIR`` when set, which ``scripts/test.sh`` builds).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

import knowledge_neurons as kn

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures"
TINY_LLAMA = str(FIXTURES / "tiny-llama")
TINY_BERT = str(FIXTURES / "tiny-bert")
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
KN_BIN = os.environ.get("KN_BIN", str(TARGET / "release" / "kn"))

# The tiny discovery several tests start from: both relations, 2 facts each, loose thresholds
# so that facts have neurons (the tiny model knows nothing).
DISCOVER_OPTIONS = dict(
    facts_per_relation=2,
    correct_rank=0,
    steps=4,
    share=0.3,
    threshold=0.1,
)
DISCOVER_ARGS = [
    "--facts-per-relation", "2", "--correct-rank", "0", "--steps", "4",
    "--share", "0.3", "--threshold", "0.1",
]


def run_kn(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Runs ``kn`` with ``args``."""
    result = subprocess.run([KN_BIN, *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"kn {' '.join(args)} failed: {result.stderr}")
    return result


def kn_json(*args: str):
    """The JSON ``kn`` prints (one object, or one per line)."""
    lines = [l for l in run_kn(*args).stdout.splitlines() if l.strip()]
    values = [json.loads(l) for l in lines]
    return values[0] if len(values) == 1 else values


def kn_error(*args: str) -> str:
    """The message of a failing ``kn`` command: after ``kn: error: ``, or for a value the
    option parser refused, ``error: invalid value ... for '--option': `` and the message."""
    result = run_kn(*args, check=False)
    assert result.returncode == 2, result.stderr
    for prefix in ("kn: error: ", "error: "):
        lines = [l for l in result.stderr.splitlines() if l.startswith(prefix)]
        if lines:
            return lines[-1][len(prefix):]
    raise AssertionError(f"no error line in {result.stderr!r}")


def without_timing(value):
    """``value`` without its wall-clock fields (``seconds``, ``seconds_per_fact``), which differ
    between runs."""
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if not k.startswith("seconds")}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


def assert_close(python, cli, rel=1e-5, path="$"):
    """Equal JSON values, numbers within ``rel`` (relative, or absolute below 1)."""
    if isinstance(cli, dict):
        assert isinstance(python, dict) and set(python) == set(cli), (path, sorted(python), sorted(cli))
        for key in cli:
            assert_close(python[key], cli[key], rel, f"{path}.{key}")
    elif isinstance(cli, list):
        assert isinstance(python, list) and len(python) == len(cli), (path, python, cli)
        for i, (p, c) in enumerate(zip(python, cli)):
            assert_close(p, c, rel, f"{path}[{i}]")
    elif isinstance(cli, float) or isinstance(python, float):
        assert python == pytest.approx(cli, rel=rel, abs=rel), (path, python, cli)
    else:
        assert python == cli, (path, python, cli)


@pytest.fixture(scope="session")
def tiny_llama() -> kn.Model:
    return kn.load_model(TINY_LLAMA)


@pytest.fixture(scope="session")
def default_model() -> kn.Model:
    return kn.load_model("default")


@pytest.fixture(scope="session")
def cli_run(tmp_path_factory) -> Path:
    """The tiny discovery made by ``kn discover``."""
    out = tmp_path_factory.mktemp("runs") / "cli"
    run_kn("discover", "--model", TINY_LLAMA, "--relations", "P36,P1376", *DISCOVER_ARGS,
           "--out", str(out))
    return out


@pytest.fixture(scope="session")
def python_run(tiny_llama, tmp_path_factory) -> kn.Run:
    """The same discovery made by ``knowledge_neurons.discover``."""
    out = tmp_path_factory.mktemp("runs") / "python"
    return kn.discover(tiny_llama, ["P36", "P1376"], out, **DISCOVER_OPTIONS)


def edited_fact(run: kn.Run) -> tuple[str, str, str]:
    """A P36 fact with knowledge neurons, one of its prompts, and an object of P1376 as its
    new answer (as the CLI's editing tests choose them)."""
    fact = next(r for r in run.records if r["relation"] == "P36" and r["neurons"])
    other = next(r for r in run.records if r["relation"] == "P1376" and r["object"] != fact["object"])
    return fact["fact"], fact["prompts"][0]["text"], other["object"]
