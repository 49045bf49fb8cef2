"""The tutorial script (examples/python/knowledge_neurons_tutorial.py, the code of
docs/python.md) runs as written on the default model."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_the_tutorial_runs(tmp_path):
    script = REPO / "examples" / "python" / "knowledge_neurons_tutorial.py"
    result = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert (tmp_path / "heatmap.png").stat().st_size > 10_000
    assert any(l.startswith("knowledge neurons of (France, capital, Paris): ['blocks.") for l in lines)
    before = next(l for l in lines if l.startswith("before: "))
    restored = next(l for l in lines if l.startswith("restored: "))
    assert before[len("before: "):] == restored[len("restored: "):]
    assert (tmp_path / "run" / "neurons.jsonl").exists()
