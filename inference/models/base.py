"""The one interface every model kind implements: fit on the training windows, export one ONNX graph.

Every graph has input ``features`` float32 (batch, n) and outputs ``score`` (batch,) and ``contributions``
(batch, n); more outputs are allowed. ``inference.train.fit`` splits the windows, cross-calibrates the
threshold (the kind fitted on blocks of the training part, each held-out block scored through its graph by
onnxruntime, the severity hysteresis in the loop), then calls the kind's ``fit`` on the whole training part.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np
from pydantic import Field

from edge.core.settings import Section

Progress = Callable[[str], None]


class KindSettings(Section):
    """Training options every kind has; a kind's settings model adds its own."""

    target_far: float = Field(
        0.01, gt=0, lt=1,
        description="target false-alarm rate: the threshold is the smallest whose share of held-out windows "
        "in alarm after the severity hysteresis is at most this",
    )
    quantile: float = Field(
        0.99, gt=0, lt=1, description="quantile of the training scores a kind scales its score by (PCA: the "
        "T² and SPE limits); the alarm threshold is calibrated to target_far",
    )
    seed: int = Field(0, description="random state of the fit")


S = TypeVar("S", bound=KindSettings)
S_contra = TypeVar("S_contra", bound=KindSettings, contravariant=True)


@dataclass
class FittedModel:
    """What a kind's fit gives: the exported graph, its alarm threshold and what the manifest records.

    ``inference.train`` replaces ``threshold`` (None or the kind's own guess) by the one cross-calibrated
    on held-out scores of the exported graph (scored by onnxruntime, so the float32 graph and its threshold
    agree) and sets ``thresholds["score"]`` to it; other ``thresholds`` entries are kept. ``score`` is the
    fitted model scored in Python (float64), the reference the exported graph is checked against."""

    onnx: bytes
    threshold: float | None
    thresholds: dict[str, float]
    extra: dict[str, Any]
    score: Callable[[np.ndarray], np.ndarray]


class ModelKind(Protocol[S_contra]):
    """A model kind: what config and the CLI call it, its training options, and its fit."""

    @property
    def name(self) -> str: ...

    @property
    def settings(self) -> type[KindSettings]: ...

    def fit(self, x_train: np.ndarray, options: S_contra, progress: Progress) -> FittedModel: ...


def standardizer(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std per feature of the training windows; a constant feature gets std 1."""
    mu = x.mean(axis=0)
    sd = x.std(axis=0)
    sd = np.where(sd > 1e-12 * np.maximum(1.0, np.abs(mu)), sd, 1.0)
    return mu, sd


def tensor(name: str, arr: np.ndarray) -> Any:
    """A float32 ONNX initializer."""
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name)


def model_bytes(graph: Any, *, ml_opset: bool = False) -> bytes:
    """A checked ONNX model of ``graph`` (opset 17, IR 8; the ``ai.onnx.ml`` domain where trees need it)."""
    import onnx
    from onnx import helper

    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid("ai.onnx.ml", 3)] if ml_opset else [])
    model = helper.make_model(graph, opset_imports=opsets, producer_name="factory-edge")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())
