"""The one interface every runtime implements: a batch of feature rows in, named output arrays out."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


class InferenceError(Exception):
    """A runtime could not score a batch (after its retries)."""


class ModelMismatchError(Exception):
    """The served model does not match the package manifest (inputs, outputs, shapes, version)."""


@runtime_checkable
class Runtime(Protocol):
    """``infer`` takes (batch, n_features) float rows, in the manifest's feature order, and returns the
    model's
    outputs by name, each with the batch as its first axis. ``describe`` says what is really in use
    (providers actually used, server URL, fallback state) for logs, ``edge models show`` and the TUI."""

    name: str

    def infer(self, inputs: np.ndarray) -> dict[str, np.ndarray]: ...

    def describe(self) -> dict[str, Any]: ...

    def close(self) -> None: ...
