"""Knowledge neurons in pretrained transformers, from Python, with the Rust core of ``kn``.

After *Knowledge Neurons in Pretrained Transformers* (Dai, Dong, Hao, Sui, Chang, Wei; ACL
2022): integrated-gradients attribution of a fact's answer over the FFN neurons, refinement
across paraphrases, suppression and amplification, and editing of the value slots.

>>> import knowledge_neurons as kn
>>> model = kn.load_model("default")                     # SmolLM2-135M-Instruct
>>> model.predict("The capital of France is", top=3)["top"][0]["token"]
' Paris'
>>> a = model.attribute("The capital of France is", "Paris", steps=20)
>>> a.scores.shape                                       # [layers, ffn]
(30, 1536)
>>> a.top(3)                                             # ScoredNeuron(layer, index, score)

Every function is the ``kn`` subcommand of the same name run in-process: the same numbers,
the same checks, the same error messages (``BadInputError`` is a ``ValueError``,
``InternalError`` a ``RuntimeError``). Tutorial: docs/python.md.
"""

from __future__ import annotations

# torch first: its libtorch is the one the extension links (one libtorch in the process).
import torch  # noqa: F401  (imported for its libraries)

from ._native import BadInputError, InternalError, __version__
from ._api import (
    Attribution,
    Edit,
    Model,
    Run,
    discover,
    load_model,
)
from ._neurons import Neuron, ScoredNeuron, hook_name, parse_hook_name

__all__ = [
    "Attribution",
    "BadInputError",
    "Edit",
    "InternalError",
    "Model",
    "Neuron",
    "Run",
    "ScoredNeuron",
    "__version__",
    "discover",
    "hook_name",
    "load_model",
    "parse_hook_name",
]
