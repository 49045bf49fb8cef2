"""Type stubs of the extension module (crates/kn-python): the Rust core the package wraps.

Results are the JSON texts the ``kn`` subcommands print with ``--json``; the package's
classes (``knowledge_neurons.Model`` ...) parse them. ``callback(kind, text)`` hears a long
call's messages (``kind``: ``"progress"`` or ``"warning"``).
"""

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

__version__: str

class BadInputError(ValueError):
    """Bad input: arguments, files, prompts (the CLI's exit code 2)."""

class InternalError(RuntimeError):
    """An internal failure: libtorch, memory, output files (the CLI's exit code 3)."""

Callback = Callable[[str, str], Any] | None

class NativeEdit:
    @property
    def neurons(self) -> list[tuple[int, int]]: ...
    @property
    def excluded(self) -> list[tuple[int, int]]: ...
    @property
    def description(self) -> str: ...
    @property
    def restored(self) -> bool: ...
    def save(self, path: str) -> None: ...

class NativeModel:
    @staticmethod
    def load(
        spec: str,
        device: str = "cpu",
        dtype: str = "f32",
        threads: int = 0,
        callback: Callback = None,
    ) -> NativeModel: ...
    def info(self) -> str: ...
    def predict(self, prompt: str, top: int) -> str: ...
    def attribute(
        self,
        prompts: list[str],
        answers: list[str],
        counterfactuals: list[str],
        method: str,
        steps: int,
        rule: str,
        target: str,
        layers: str,
        top: int,
        batch_size: int,
        concurrent_passes: int,
        memory_budget: float,
        answer_policy: str,
        separately: bool,
        callback: Callback,
    ) -> list[tuple[str, npt.NDArray[np.float32], npt.NDArray[np.float32]]]: ...
    def intervene(
        self,
        prompts: list[str],
        answers: list[str],
        neurons: list[tuple[int, int]],
        op: str,
        value: float,
        batch_size: int,
        answer_policy: str,
    ) -> str: ...
    def suppress(
        self,
        run: str,
        relations: str | None,
        seed: int,
        batch_size: int,
        other_relation_facts: int,
        random_control: bool,
        activation_baseline: bool,
        out: str | None,
        callback: Callback,
    ) -> str: ...
    def evaluate_edit(
        self,
        run: str,
        fact: str | None,
        new_answer: str | None,
        facts: int | None,
        relations: str | None,
        seed: int,
        lambda_remove: float,
        lambda_add: float,
        scale_by_norm: bool,
        shared_threshold: float,
        random_control: bool,
        batch_size: int,
        max_control_prompts: int,
        holdout: float,
        sweep: list[float],
        callback: Callback,
    ) -> str: ...
    def evaluate_erasure(
        self,
        run: str,
        relation: str,
        top: int,
        value: str,
        max_held_out: int,
        random_control: bool,
        seed: int,
        batch_size: int,
        callback: Callback,
    ) -> str: ...
    def apply_update(
        self,
        run: str,
        fact: str,
        new_answer: str,
        lambda_remove: float,
        lambda_add: float,
        scale_by_norm: bool,
        shared_threshold: float,
        callback: Callback,
    ) -> NativeEdit: ...
    def apply_erasure(self, run: str, relation: str, top: int, value: str) -> NativeEdit: ...
    def apply_patch(self, path: str) -> NativeEdit: ...
    def restore(self, edit: NativeEdit) -> bool: ...

def discover(
    model: NativeModel,
    relations: str,
    out: str,
    facts_per_relation: int,
    seed: int,
    data: str | None,
    method: str,
    steps: int,
    layers: str,
    threshold: float,
    share: float,
    adaptive: bool,
    min_prompts: int,
    max_prompts: int,
    correct_rank: int,
    correct_prompts: int,
    single_token: bool,
    shard: str | None,
    batch_size: int,
    concurrent_passes: int,
    memory_budget: float,
    save_scores: int,
    callback: Callback,
) -> str: ...
