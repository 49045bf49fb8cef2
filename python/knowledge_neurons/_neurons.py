"""Neuron names: ``(layer, index)`` pairs and TransformerLens hook names.

A knowledge neuron is unit ``index`` of layer ``layer``'s FFN intermediate activation (after
the nonlinearity, the input of the down projection). In TransformerLens that activation is the
hook ``blocks.{layer}.mlp.hook_post`` for every architecture this toolkit reads (docs/
architecture.md), so ``cache["blocks.3.mlp.hook_post"][0, -1, 1234]`` is neuron (3, 1234) at
the last position.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_HOOK = re.compile(r"^blocks\.(\d+)\.mlp\.hook_post(?:\[(\d+)\])?$")


def hook_name(layer: int) -> str:
    """The TransformerLens hook of layer ``layer``'s FFN neurons: ``blocks.{layer}.mlp.hook_post``."""
    if layer < 0:
        raise ValueError(f"layer {layer} is negative")
    return f"blocks.{layer}.mlp.hook_post"


def parse_hook_name(name: str, index: int | None = None) -> "Neuron":
    """The neuron a TransformerLens name denotes: ``blocks.L.mlp.hook_post[I]``, or the hook
    ``blocks.L.mlp.hook_post`` with ``index``."""
    match = _HOOK.match(name.strip())
    if match is None:
        raise ValueError(
            f"{name!r} is not an FFN neuron hook: use blocks.LAYER.mlp.hook_post[INDEX]"
        )
    layer, in_name = int(match.group(1)), match.group(2)
    if (in_name is None) == (index is None):
        raise ValueError(f"{name!r}: give the neuron index once, as [INDEX] or index=")
    return Neuron(layer, int(in_name) if in_name is not None else int(index))  # type: ignore[arg-type]


class Neuron(NamedTuple):
    """A neuron as ``(layer, index)``; ``hook_name`` and ``name`` give its TransformerLens names."""

    layer: int
    index: int

    @property
    def hook_name(self) -> str:
        """The TransformerLens hook of the neuron's layer (``blocks.L.mlp.hook_post``)."""
        return hook_name(self.layer)

    @property
    def name(self) -> str:
        """The neuron as ``blocks.L.mlp.hook_post[I]`` (``parse_hook_name`` reads it back)."""
        return f"{self.hook_name}[{self.index}]"


class ScoredNeuron(NamedTuple):
    """A neuron with its attribution score."""

    layer: int
    index: int
    score: float

    @property
    def neuron(self) -> Neuron:
        """The neuron without its score."""
        return Neuron(self.layer, self.index)

    @property
    def hook_name(self) -> str:
        """The TransformerLens hook of the neuron's layer."""
        return hook_name(self.layer)

    @property
    def name(self) -> str:
        """The neuron as ``blocks.L.mlp.hook_post[I]``."""
        return self.neuron.name


def as_pairs(neurons) -> list[tuple[int, int]]:
    """``(layer, index)`` pairs from neurons given as pairs, ``Neuron``s, ``ScoredNeuron``s or
    TransformerLens names ``blocks.L.mlp.hook_post[I]``."""
    pairs = []
    for neuron in neurons:
        if isinstance(neuron, str):
            neuron = parse_hook_name(neuron)
        layer, index = neuron[0], neuron[1]
        if int(layer) != layer or int(index) != index or layer < 0 or index < 0:
            raise ValueError(f"{neuron!r} is not a (layer, index) pair of non-negative integers")
        pairs.append((int(layer), int(index)))
    return pairs
