"""The package's classes over the extension module: models, attributions, weight edits, runs.

Each method calls the Rust function of the matching ``kn`` subcommand (``crates/kn-python``)
and returns what that subcommand prints with ``--json``, as Python objects: dictionaries with
the CLI's keys, or the classes below where there is more to offer (score matrices, neuron
names, a context manager).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Union

import numpy as np

from . import _native
from ._native import InternalError
from ._neurons import Neuron, ScoredNeuron, as_pairs

PathLike = Union[str, "os.PathLike[str]"]
Progress = Union[bool, Callable[[str, str], Any], None]

_STEP = re.compile(r"^\[(\d+)/(\d+)\]\s*(.*)$")


class _ProgressBar:
    """Shows a long call's progress: ``[k/n] ...`` messages move a tqdm bar (when tqdm is
    installed; otherwise each message is a line on stderr), other messages are printed."""

    def __init__(self, what: str):
        self.what = what
        self.bar = None
        try:
            from tqdm.auto import tqdm
        except ImportError:
            tqdm = None
        self.tqdm = tqdm

    def __call__(self, kind: str, text: str) -> None:
        step = _STEP.match(text)
        if step is not None and self.tqdm is not None:
            done, total = int(step.group(1)), int(step.group(2))
            if self.bar is None or self.bar.total != total:
                self.close()
                # Started at the step before this one, so that the rate counts its time.
                self.bar = self.tqdm(total=total, desc=self.what, initial=done - 1)
            self.bar.n = done
            self.bar.set_postfix_str(step.group(3)[:60], refresh=False)
            self.bar.refresh()
            if done == total:
                self.close()
            return
        line = f"kn {self.what}: {'warning: ' if kind == 'warning' else ''}{text}"
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _callback(progress: Progress, what: str):
    """The extension's message callback for ``progress``: None (warnings only, as Python
    warnings), True (a progress bar) or a callable ``f(kind, text)``."""
    if progress is None or progress is False:
        return None
    if progress is True:
        return _ProgressBar(what)
    if callable(progress):
        return progress
    raise TypeError("progress must be True, False or a callable f(kind, text)")


def _with_progress(progress: Progress, what: str, call: Callable, *args):
    """``call(*args, callback)`` with ``progress``'s callback, its bar closed afterwards."""
    callback = _callback(progress, what)
    try:
        return call(*args, callback)
    finally:
        if isinstance(callback, _ProgressBar):
            callback.close()


def _layers(layers: Union[None, str, int, Iterable[int]]) -> str:
    """``layers`` as ``--layers`` takes it: None is every layer."""
    if layers is None:
        return "all"
    if isinstance(layers, str):
        return layers
    if isinstance(layers, (int, np.integer)):
        return str(int(layers))
    return ",".join(str(int(layer)) for layer in layers)


def _alias(value, alias, name: str, alias_name: str):
    """One of an option and its Captum alias (``steps`` / ``n_steps``)."""
    if alias is None:
        return value
    if value is not None:
        raise TypeError(f"give {name} or {alias_name}, not both")
    return alias


def _path(path: PathLike) -> str:
    return os.fspath(path)


class Attribution:
    """One prompt's attribution (``kn attribute --json`` plus the score matrix).

    ``scores`` is the ``[len(layers), ffn]`` float32 numpy array (row ``r`` is layer
    ``layers[r]``) whose buffer the Rust core allocated; ``tensor()`` is the same memory as a
    torch tensor. ``activations`` holds the neurons' clean activations at the answer position,
    in the same shape. ``prob`` is the answer's probability on the clean pass; ``completeness``
    holds, per layer, the sum of the scores against the change of the target from zeroed to
    clean activations, and ``convergence_delta`` (Captum's name) the gaps between them.
    """

    def __init__(self, output: dict, scores: np.ndarray, activations: np.ndarray):
        self.output = output
        self.scores = scores
        self.activations = activations

    @property
    def prompt(self) -> str:
        return self.output["prompt"]

    @property
    def answer(self) -> str:
        return self.output["answer"]

    @property
    def method(self) -> str:
        return self.output["method"]

    @property
    def layers(self) -> list[int]:
        return list(self.output["layers"])

    @property
    def prob(self) -> float:
        """The answer's (first token's) probability on the clean pass."""
        return float(self.output["prob"])

    @property
    def completeness(self) -> list[dict]:
        """Per layer: ``layer``, ``attribution_sum``, ``target_at_one``, ``target_at_zero``, ``gap``."""
        return list(self.output["completeness"])

    @property
    def convergence_delta(self) -> np.ndarray:
        """The completeness gap of each attributed layer (Captum's convergence delta)."""
        return np.array([c["gap"] for c in self.output["completeness"]], dtype=np.float64)

    @property
    def seconds(self) -> float:
        return float(self.output["seconds"])

    def top(self, k: int = 20) -> list[ScoredNeuron]:
        """The ``k`` highest scores, highest first (ties: lower layer, then lower index, as the CLI orders them)."""
        if k < 0:
            raise ValueError("k must be at least 0")
        rows, width = self.scores.shape
        flat = self.scores.reshape(-1)
        layer_of = np.repeat(np.asarray(self.layers, dtype=np.int64), width)
        index_of = np.tile(np.arange(width, dtype=np.int64), rows)
        order = np.lexsort((index_of, layer_of, -flat.astype(np.float64)))[:k]
        return [ScoredNeuron(int(layer_of[i]), int(index_of[i]), float(flat[i])) for i in order]

    def tensor(self):
        """The scores as a torch tensor sharing this array's memory (no copy)."""
        import torch

        return torch.from_numpy(self.scores)

    def to_dict(self) -> dict:
        """What ``kn attribute --json`` prints for this prompt."""
        return dict(self.output)

    def __repr__(self) -> str:
        return (
            f"Attribution({self.prompt!r} -> {self.answer!r}, method={self.method}, "
            f"prob={self.prob:.4g}, scores={self.scores.shape})"
        )


class Edit:
    """A weight edit in force (a fact update, a relation's erasure or a patch).

    It is applied when made; ``restore()`` writes the old value slots back and checks them bit
    for bit. As a context manager it restores on exit, also when the block raises::

        with model.edit(run, "P36:12", "Rome") as edit:
            model.predict("The capital of France is")   # edited
        # restored here
    """

    def __init__(self, model: "Model", native: "_native.NativeEdit"):
        self._model = model
        self._native = native

    @property
    def neurons(self) -> list[Neuron]:
        """The neurons whose value slots the edit changed."""
        return [Neuron(*pair) for pair in self._native.neurons]

    @property
    def excluded(self) -> list[Neuron]:
        """Neurons of the fact left out as shared by too many facts of its relation."""
        return [Neuron(*pair) for pair in self._native.excluded]

    @property
    def description(self) -> str:
        return self._native.description

    @property
    def restored(self) -> bool:
        return self._native.restored

    def save(self, path: PathLike) -> None:
        """Saves the edit as a kn-edit patch file (``Model.apply_patch`` re-applies it)."""
        self._native.save(_path(path))

    def restore(self) -> None:
        """Restores the weights (once; later calls do nothing) and checks them bit for bit."""
        if not self._model._native.restore(self._native):
            raise InternalError("the edited value slots were not restored exactly")

    def __enter__(self) -> "Edit":
        return self

    def __exit__(self, *exc) -> bool:
        self.restore()
        return False

    def __repr__(self) -> str:
        state = "restored" if self.restored else "in force"
        return f"Edit({self.description!r}, {len(self._native.neurons)} neurons, {state})"



class Model:
    """A loaded model (``load_model``). Its methods are the ``kn`` subcommands."""

    def __init__(self, native: "_native.NativeModel", spec: str):
        self._native = native
        self.spec = spec
        self.info: dict = json.loads(native.info())

    @property
    def num_layers(self) -> int:
        return int(self.info["num_layers"])

    @property
    def ffn_width(self) -> int:
        return int(self.info["ffn_width"])

    def __repr__(self) -> str:
        return (
            f"Model({self.spec!r}: {self.info['architecture']}, {self.num_layers} layers, "
            f"FFN {self.ffn_width}, {self.info['dtype']})"
        )

    def predict(self, prompt: str, top: int = 5) -> dict:
        """The ``top`` most probable next tokens (mask fillers for masked LMs): ``kn predict
        --json``, ``{"prompt", "tokens", "top": [{"token", "id", "prob"}, ...]}``."""
        return json.loads(self._native.predict(prompt, top))

    def attribute(
        self,
        prompt: str,
        answer: str,
        steps: int | None = None,
        method: str = "ig",
        layers: Union[None, str, int, Iterable[int]] = None,
        batch_size: int | None = None,
        *,
        n_steps: int | None = None,
        internal_batch_size: int | None = None,
        counterfactual: str | None = None,
        rule: str = "left",
        target: str = "probability",
        top: int = 20,
        answer_policy: str = "first-token",
        concurrent_passes: int = 0,
        memory_budget: float = 0.0,
    ) -> Attribution:
        """Attribution of ``answer`` after ``prompt`` over the FFN neurons (``kn attribute``).

        ``method``: ``ig`` (integrated gradients with ``steps`` points, the paper's),
        ``activation``, ``grad-x-act``, ``atp`` (needs ``counterfactual``) or
        ``logprob-increase``. ``layers``: None (all), a layer, a list, or ``"0-5"``.
        ``batch_size``: rows in flight (None: the model's suggestion); results do not depend
        on it. ``n_steps`` and ``internal_batch_size`` are Captum's names for ``steps`` and
        ``batch_size``.
        """
        return self.attribute_batch(
            [prompt],
            answer,
            steps=steps,
            method=method,
            layers=layers,
            batch_size=batch_size,
            n_steps=n_steps,
            internal_batch_size=internal_batch_size,
            counterfactuals=None if counterfactual is None else [counterfactual],
            rule=rule,
            target=target,
            top=top,
            answer_policy=answer_policy,
            concurrent_passes=concurrent_passes,
            memory_budget=memory_budget,
        )[0]

    def attribute_batch(
        self,
        prompts: Sequence[str],
        answers: Union[str, Sequence[str]],
        steps: int | None = None,
        method: str = "ig",
        layers: Union[None, str, int, Iterable[int]] = None,
        batch_size: int | None = None,
        *,
        n_steps: int | None = None,
        internal_batch_size: int | None = None,
        counterfactuals: Union[None, str, Sequence[str]] = None,
        rule: str = "left",
        target: str = "probability",
        top: int = 20,
        answer_policy: str = "first-token",
        concurrent_passes: int = 0,
        memory_budget: float = 0.0,
        separately: bool = False,
        progress: Progress = None,
    ) -> list[Attribution]:
        """``attribute`` for several prompts (e.g. a fact's paraphrases) in one call: one
        answer for all or one per prompt. Integrated gradients attributes them as one batch
        (``separately=True``: one after another, each result reported to ``progress`` as it is
        ready, and Ctrl-C stops between prompts); the scores are the same either way."""
        if isinstance(prompts, str):
            raise TypeError("prompts must be a list of strings (use attribute for one prompt)")
        steps = _alias(steps, n_steps, "steps", "n_steps")
        batch_size = _alias(batch_size, internal_batch_size, "batch_size", "internal_batch_size")
        answers = [answers] if isinstance(answers, str) else list(answers)
        if isinstance(counterfactuals, str):
            counterfactuals = [counterfactuals]
        results = _with_progress(
            progress,
            "attribute",
            self._native.attribute,
            list(prompts),
            answers,
            list(counterfactuals or []),
            method,
            20 if steps is None else int(steps),
            rule,
            target,
            _layers(layers),
            int(top),
            0 if batch_size is None else int(batch_size),
            int(concurrent_passes),
            float(memory_budget),
            answer_policy,
            bool(separately),
        )
        return [Attribution(json.loads(text), scores, acts) for text, scores, acts in results]

    def intervene(
        self,
        prompts: Union[str, Sequence[str]],
        answers: Union[str, Sequence[str]],
        neurons,
        *,
        factor: float | None = None,
        value: float | None = None,
        batch_size: int = 16,
        answer_policy: str = "first-token",
    ) -> list[dict]:
        """Scales (``factor``) or sets (``value``) the activations of ``neurons`` at the answer
        position and reports, per prompt, the answer's probability and rank before and after
        (``prob_before``, ``prob_after``, ``rank_before``, ``rank_after``, ...). ``neurons``:
        ``(layer, index)`` pairs, ``Neuron``s or names ``blocks.L.mlp.hook_post[I]``."""
        if (factor is None) == (value is None):
            raise TypeError("give factor or value")
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        answers = [answers] if isinstance(answers, str) else list(answers)
        op, number = ("scale", factor) if factor is not None else ("set", value)
        return json.loads(
            self._native.intervene(
                prompts, answers, as_pairs(neurons), op, float(number), batch_size, answer_policy
            )
        )

    def suppress(self, prompts, answers, neurons, **options) -> list[dict]:
        """The paper's suppression: ``intervene`` with the activations x 0."""
        return self.intervene(prompts, answers, neurons, factor=0.0, **options)

    def amplify(self, prompts, answers, neurons, **options) -> list[dict]:
        """The paper's amplification: ``intervene`` with the activations x 2."""
        return self.intervene(prompts, answers, neurons, factor=2.0, **options)

    def discover(self, relations: Union[str, Sequence[str]], out: PathLike, **options) -> "Run":
        """``discover(self, relations, out, ...)``."""
        return discover(self, relations, out, **options)

    def suppress_amplify(
        self,
        run: Union["Run", PathLike],
        relations: Union[None, str, Sequence[str]] = None,
        *,
        seed: int = 0,
        batch_size: int = 16,
        other_relation_facts: int = 1,
        random_control: bool = True,
        activation_baseline: bool = True,
        out: PathLike | None = None,
        progress: Progress = None,
    ) -> dict:
        """The paper's suppression/amplification experiment on a run's facts with its controls
        (``kn suppress --json``); also written to ``out`` (default: the run's
        suppression.json)."""
        return json.loads(
            _with_progress(
                progress,
                "suppress",
                self._native.suppress,
                _run_path(run),
                _relations(relations),
                seed,
                batch_size,
                other_relation_facts,
                random_control,
                activation_baseline,
                None if out is None else _path(out),
            )
        )

    def edit(
        self,
        run: Union["Run", PathLike],
        fact: str,
        new_answer: str,
        *,
        lambda_remove: float = 1.0,
        lambda_add: float = 8.0,
        scale_by_norm: bool = False,
        shared_threshold: float = 0.1,
        progress: Progress = None,
    ) -> Edit:
        """Updates ``fact`` of ``run`` (e.g. ``"P36:12"``) to ``new_answer`` through its
        knowledge neurons' value slots (the paper's rule, ``kn edit``'s options) and returns
        the edit in force; use it as a context manager to restore the weights on exit."""
        native = _with_progress(
            progress,
            "edit",
            self._native.apply_update,
            _run_path(run),
            fact,
            new_answer,
            lambda_remove,
            lambda_add,
            scale_by_norm,
            shared_threshold,
        )
        return Edit(self, native)

    def erase(
        self,
        run: Union["Run", PathLike],
        relation: str,
        *,
        top: int = 20,
        value: str = "unk",
    ) -> Edit:
        """Erases ``relation`` of ``run`` through its ``top`` most frequent knowledge neurons
        (value slots set to ``value``: ``unk``, ``zero``, ``id:N`` or a token, as ``kn
        erase --value``) and returns the edit in force (a context manager)."""
        return Edit(self, self._native.apply_erasure(_run_path(run), relation, top, value))

    def apply_patch(self, path: PathLike) -> Edit:
        """Applies a kn-edit patch file made for this model (``Edit.save``, ``kn edit
        --patch-out``) and returns the edit in force (a context manager)."""
        return Edit(self, self._native.apply_patch(_path(path)))

    def evaluate_edit(
        self,
        run: Union["Run", PathLike],
        fact: str | None = None,
        new_answer: str | None = None,
        *,
        facts: int | None = None,
        relations: Union[None, str, Sequence[str]] = None,
        seed: int = 0,
        lambda_remove: float = 1.0,
        lambda_add: float = 8.0,
        scale_by_norm: bool = False,
        shared_threshold: float = 0.1,
        random_control: bool = True,
        batch_size: int = 16,
        max_control_prompts: int = 200,
        holdout: float = 0.0,
        sweep: Sequence[float] | None = None,
        progress: Progress = None,
    ) -> dict:
        """``kn edit --json``: one fact (``fact``, ``new_answer``) or a seeded sample of
        ``facts`` facts updated, measured with the paper's metrics and the editing checks, and
        restored (checked bit for bit) before it returns. With ``facts`` and ``sweep`` (λ2
        values): the sample under each setting of the update rule, success against damage
        (``kn edit --sweep``)."""
        return json.loads(
            _with_progress(
                progress,
                "edit",
                self._native.evaluate_edit,
                _run_path(run),
                fact,
                new_answer,
                facts,
                _relations(relations),
                seed,
                lambda_remove,
                lambda_add,
                scale_by_norm,
                shared_threshold,
                random_control,
                batch_size,
                max_control_prompts,
                holdout,
                [float(x) for x in sweep or []],
            )
        )

    def evaluate_erasure(
        self,
        run: Union["Run", PathLike],
        relation: str,
        *,
        top: int = 20,
        value: str = "unk",
        max_held_out: int = 200,
        random_control: bool = True,
        seed: int = 0,
        batch_size: int = 16,
        progress: Progress = None,
    ) -> dict:
        """``kn erase --json``: ``relation`` erased, measured (accuracy, perplexity, the
        checks) and restored (checked bit for bit) before it returns."""
        return json.loads(
            _with_progress(
                progress,
                "erase",
                self._native.evaluate_erasure,
                _run_path(run),
                relation,
                top,
                value,
                max_held_out,
                random_control,
                seed,
                batch_size,
            )
        )


def _read_json_if_present(path: str):
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _relations(relations: Union[None, str, Sequence[str]]) -> str | None:
    if relations is None or isinstance(relations, str):
        return relations
    return ",".join(relations)


def _run_path(run: Union["Run", PathLike]) -> str:
    return _path(run.dir if isinstance(run, Run) else run)


def load_model(
    spec: str = "default",
    device: str = "cpu",
    dtype: str | None = None,
    *,
    threads: int = 0,
    progress: Progress = None,
) -> Model:
    """Loads a model: ``"default"`` (SmolLM2-135M-Instruct), ``"gemma-3-270m"``, a GGUF file
    or a Hugging Face directory (Llama, Mistral, Qwen2/3, Gemma-3, Phi-3, GPT-2, GPT-Neo,
    GPT-NeoX, BERT). ``device``: ``cpu``, ``cuda`` or ``cuda:N``; ``dtype``: None or ``f32``
    (the paper-exact default), ``bf16``, ``f16`` (also ``torch.bfloat16``...);
    ``threads``: libtorch threads (0: its default)."""
    spec = _path(spec)
    dtype_name = _dtype_name(dtype)
    native = _with_progress(
        progress, "load", _native.NativeModel.load, spec, str(device), dtype_name, threads
    )
    return Model(native, spec)


def _dtype_name(dtype) -> str:
    if dtype is None:
        return "f32"
    import torch

    names = {torch.float32: "f32", torch.bfloat16: "bf16", torch.float16: "f16"}
    if isinstance(dtype, torch.dtype):
        if dtype not in names:
            raise ValueError(f"dtype {dtype} is not one the toolkit computes in: use f32, bf16 or f16")
        return names[dtype]
    return str(dtype)


def discover(
    model: Model,
    relations: Union[str, Sequence[str]],
    out: PathLike,
    *,
    facts_per_relation: int = 20,
    seed: int = 0,
    data: PathLike | None = None,
    method: str = "ig",
    steps: int = 20,
    layers: Union[None, str, int, Iterable[int]] = None,
    threshold: float = 0.2,
    share: float = 0.7,
    adaptive: bool = False,
    min_prompts: int = 3,
    max_prompts: int = 0,
    correct_rank: int = 1,
    correct_prompts: int = 1,
    single_token: bool = True,
    shard: str | None = None,
    batch_size: int = 0,
    concurrent_passes: int = 0,
    memory_budget: float = 0.0,
    save_scores: int = 1,
    progress: Progress = None,
) -> "Run":
    """The paper's discovery (``kn discover``, the same options) of PARAREL facts' knowledge
    neurons into the run directory ``out``: per fact, attribute every prompt, keep the
    neurons above ``threshold`` x the prompt's maximum, then those kept by more than ``share``
    of its prompts. Resumable: the same call on the same directory continues (Ctrl-C keeps
    every finished fact). Returns the run."""
    _with_progress(
        progress,
        "discover",
        _native.discover,
        model._native,
        _relations(relations),
        _path(out),
        facts_per_relation,
        seed,
        None if data is None else _path(data),
        method,
        steps,
        _layers(layers),
        threshold,
        share,
        adaptive,
        min_prompts,
        max_prompts,
        correct_rank,
        correct_prompts,
        single_token,
        shard,
        batch_size,
        concurrent_passes,
        memory_budget,
        save_scores,
    )
    return Run(out)


class Run:
    """A discovery's run directory read back: ``config`` (config.json), ``stats``
    (stats.json), ``relations`` (relations.json: per relation, its neurons with the share of
    its facts holding each), ``records`` (neurons.jsonl, one dictionary per fact) and the
    neurons of each fact and relation."""

    def __init__(self, dir: PathLike):
        self.dir = _path(dir)
        with open(os.path.join(self.dir, "config.json"), encoding="utf-8") as f:
            self.config: dict = json.load(f)
        with open(os.path.join(self.dir, "neurons.jsonl"), encoding="utf-8") as f:
            self.records: list[dict] = [json.loads(line) for line in f if line.strip()]
        self.stats: dict | None = _read_json_if_present(os.path.join(self.dir, "stats.json"))
        self.relations: dict | None = _read_json_if_present(
            os.path.join(self.dir, "relations.json")
        )

    @property
    def facts(self) -> list[str]:
        """The run's fact ids, in file order."""
        return [r["fact"] for r in self.records]

    def record(self, fact: str) -> dict:
        """The neurons.jsonl line of ``fact``."""
        for record in self.records:
            if record["fact"] == fact:
                return record
        raise KeyError(f"fact {fact} is not in the run {self.dir}")

    def neurons(self, fact: str) -> list[Neuron]:
        """The knowledge neurons of ``fact``."""
        return [Neuron(n["layer"], n["neuron"]) for n in self.record(fact)["neurons"]]

    def prompts(self, fact: str) -> list[str]:
        """The prompts of ``fact`` that located its neurons."""
        return [p["text"] for p in self.record(fact)["prompts"]]

    def relation_neurons(self, relation: str) -> list[tuple[Neuron, float]]:
        """The neurons of ``relation``'s facts with the share of its facts that hold each, most
        shared first (relations.json)."""
        if self.relations is None or relation not in self.relations:
            raise KeyError(f"relation {relation} is not in {self.dir}/relations.json")
        return [
            (Neuron(*entry["neuron"]), float(entry["frequency"]))
            for entry in self.relations[relation]["neurons"]
        ]

    def mean_scores(self, fact: str) -> np.ndarray | None:
        """The fact's mean attribution matrix ``[layers, ffn]`` when the run saved it
        (``save_scores``), else None."""
        path = os.path.join(self.dir, "scores", fact.replace(":", "_") + ".npy")
        return np.load(path) if os.path.exists(path) else None

    def __repr__(self) -> str:
        return f"Run({self.dir!r}: {len(self.records)} facts)"
