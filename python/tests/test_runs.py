"""Discovery, suppression and editing on a run directory against ``kn discover``, ``kn
suppress``, ``kn edit`` and ``kn erase``; edits as context managers that restore the weights."""

from __future__ import annotations

import json

import pytest

import knowledge_neurons as kn
from conftest import TINY_LLAMA, assert_close, edited_fact, kn_json, without_timing


def read_lines(path):
    return [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]


def test_discover_is_the_cli_s(python_run, cli_run):
    python = [without_timing(r) for r in read_lines(f"{python_run.dir}/neurons.jsonl")]
    cli = [without_timing(r) for r in read_lines(cli_run / "neurons.jsonl")]
    assert_close(python, cli)
    assert any(r["neurons"] for r in python)
    stats = json.load(open(cli_run / "stats.json"))
    assert_close(without_timing(python_run.stats), without_timing(stats))
    config = json.load(open(cli_run / "config.json"))
    assert python_run.config == config
    fact = python_run.facts[0]
    assert python_run.neurons(fact) == [kn.Neuron(n["layer"], n["neuron"]) for n in python[0]["neurons"]]
    assert python_run.mean_scores(fact).shape[1] == kn.load_model(TINY_LLAMA).ffn_width
    relations = json.load(open(cli_run / "relations.json"))
    assert python_run.relations == relations
    shared = python_run.relation_neurons("P36")
    assert [(n.layer, n.index) for n, _ in shared] == [tuple(e["neuron"]) for e in relations["P36"]["neurons"]]
    assert all(0 < share <= 1 for _, share in shared)


def test_discover_resumes_and_reports_progress(tiny_llama, python_run, tmp_path):
    messages = []
    run = kn.discover(
        tiny_llama, "P36,P1376", python_run.dir, facts_per_relation=2, correct_rank=0, steps=4,
        share=0.3, threshold=0.1, progress=lambda kind, text: messages.append((kind, text)),
    )
    assert run.facts == python_run.facts
    assert any("4 already done, 0 to attribute" in text for _, text in messages), messages
    fresh = []
    kn.discover(tiny_llama, "P36", tmp_path / "one", facts_per_relation=1, correct_rank=0,
                steps=2, progress=lambda kind, text: fresh.append(text))
    assert any(text.startswith("[1/1] ") for text in fresh), fresh


def test_suppress_amplify_is_the_cli_s(tiny_llama, cli_run, tmp_path):
    python = tiny_llama.suppress_amplify(kn.Run(cli_run), out=tmp_path / "python.json")
    cli = kn_json("suppress", "--model", TINY_LLAMA, "--neurons", str(cli_run),
                  "--out", str(tmp_path / "cli.json"), "--json")
    assert_close(without_timing(python), without_timing(cli))
    assert_close(without_timing(json.load(open(tmp_path / "python.json"))), without_timing(cli))


def test_evaluate_edit_is_the_cli_s(tiny_llama, cli_run):
    run = kn.Run(cli_run)
    fact, _, new_answer = edited_fact(run)
    python = tiny_llama.evaluate_edit(run, fact, new_answer)
    cli = kn_json("edit", "--model", TINY_LLAMA, "--neurons", str(cli_run), "--fact", fact,
                  "--new-answer", new_answer, "--json")
    assert_close(without_timing(python), without_timing(cli))
    assert python["weights_restored"] is True
    sample = tiny_llama.evaluate_edit(run, facts=2, seed=3)
    cli_sample = kn_json("edit", "--model", TINY_LLAMA, "--neurons", str(cli_run), "--facts", "2",
                         "--seed", "3", "--json")
    assert_close(without_timing(sample), without_timing(cli_sample))
    sweep = tiny_llama.evaluate_edit(run, facts=2, seed=3, sweep=[1, 8])
    cli_sweep = kn_json("edit", "--model", TINY_LLAMA, "--neurons", str(cli_run), "--facts", "2",
                        "--seed", "3", "--sweep", "1,8", "--json")
    assert_close(without_timing(sweep), without_timing(cli_sweep))
    with pytest.raises(kn.BadInputError, match="--sweep needs --facts"):
        tiny_llama.evaluate_edit(run, fact, new_answer, sweep=[1])


def test_evaluate_erasure_is_the_cli_s(tiny_llama, cli_run):
    python = tiny_llama.evaluate_erasure(cli_run, "P36", top=5, max_held_out=7)
    cli = kn_json("erase", "--model", TINY_LLAMA, "--neurons", str(cli_run), "--relation", "P36",
                  "--top", "5", "--max-held-out", "7", "--json")
    assert_close(without_timing(python), without_timing(cli))


def test_edit_context_manager_restores_the_weights(tiny_llama, cli_run, tmp_path):
    run = kn.Run(cli_run)
    fact, prompt, new_answer = edited_fact(run)
    before = tiny_llama.predict(prompt, top=20)
    with tiny_llama.edit(run, fact, new_answer, lambda_add=50.0) as edit:
        inside = tiny_llama.predict(prompt, top=20)
        assert inside != before
        assert not edit.restored and edit.neurons
        assert set(edit.neurons) <= set(run.neurons(fact))
        edit.save(tmp_path / "edit.safetensors")
    assert edit.restored
    assert tiny_llama.predict(prompt, top=20) == before  # bit for bit: the same probabilities

    # An exception inside the block restores too, and propagates.
    with pytest.raises(ZeroDivisionError):
        with tiny_llama.edit(run, fact, new_answer, lambda_add=50.0):
            1 / 0
    assert tiny_llama.predict(prompt, top=20) == before

    # The saved patch re-applies the same edit; nested edits unwind in order.
    with tiny_llama.apply_patch(tmp_path / "edit.safetensors"):
        assert tiny_llama.predict(prompt, top=20) == inside
        with tiny_llama.erase(run, "P36", top=3, value="zero") as erased:
            assert len(erased.neurons) == 3
        assert tiny_llama.predict(prompt, top=20) == inside
    assert tiny_llama.predict(prompt, top=20) == before


def test_a_patch_for_another_model_is_refused(cli_run, tmp_path, tiny_llama):
    run = kn.Run(cli_run)
    fact, _, new_answer = edited_fact(run)
    edit = tiny_llama.edit(run, fact, new_answer)
    edit.save(tmp_path / "edit.safetensors")
    edit.restore()
    edit.restore()  # a second restore does nothing
    default = kn.load_model("default")
    with pytest.raises(kn.BadInputError):
        default.apply_patch(tmp_path / "edit.safetensors")
    with pytest.raises(kn.BadInputError, match="not the model of the run|model"):
        default.edit(run, fact, new_answer)
