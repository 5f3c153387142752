"""The one place evaluation calls the product's training and featurizing code (``inference.training_set``,
``inference.train``, ``inference.manifest``, ``inference.windows``, ``inference.features``).

Those modules are being changed by others: when a signature changes, this module is the fix, nothing else
in ``inference.evaluation`` imports them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from inference.packages import ModelPackage, sha256_bytes


@dataclass
class Featurized:
    """Closed windows of one replay and their features (one row per window, in window order)."""

    start_us: np.ndarray
    end_us: np.ndarray
    flags: np.ndarray  # window flags, MISSING_FEATURE set where a window had no valid value
    names: list[str]
    values: np.ndarray


def spec_of(settings: Any) -> Any:
    from inference.windows import WindowSpec

    return WindowSpec.from_settings(settings)


def samples(ts_us: np.ndarray, signals: dict[str, np.ndarray], asset: str) -> pa.RecordBatch:
    """The contextualized samples batch of a wide table (what the pipeline's windower receives)."""
    from inference.training_set import samples_batch

    return samples_batch(ts_us, signals, asset)


def featurize(batches: Sequence[pa.RecordBatch], spec: Any, settings: Any) -> Featurized:
    """Window (event time, every window closed at the end) and featurize as the inference stage does."""
    from edge.core.datamodel import WINDOW_MISSING_FEATURE
    from inference.features import FeatureExtractor
    from inference.windows import Windower

    win = Windower(spec)
    for b in batches:
        win.add(b)
    windows = win.ready(now_us=2**62)
    fx = FeatureExtractor(spec.grid_hz, settings.spectral_signals, settings.n_bands)
    names, values, n_valid = fx.matrix(windows)
    flags = np.fromiter((w.flags for w in windows), dtype=np.int64, count=len(windows))
    if len(windows):
        flags = np.where(n_valid == 0, flags | WINDOW_MISSING_FEATURE, flags)
    return Featurized(
        np.fromiter((w.start_us for w in windows), dtype=np.int64, count=len(windows)),
        np.fromiter((w.end_us for w in windows), dtype=np.int64, count=len(windows)),
        flags,
        list(names),
        values if len(windows) else np.zeros((0, 0)),
    )


def model_inputs(f: Featurized, wanted: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    from inference.features import model_inputs_from_matrix

    if not len(f.start_us):
        return np.zeros((0, len(wanted)), dtype=np.float32), np.zeros(0, dtype=bool)
    return model_inputs_from_matrix(f.names, f.values, wanted)


def gating_mask(flags: np.ndarray) -> np.ndarray:
    from inference.windows import GATING_FLAGS

    return np.asarray((np.asarray(flags, dtype=np.int64) & GATING_FLAGS) != 0)


def fit_package(
    kind: Any,
    options: Any,
    batches: Sequence[pa.RecordBatch],
    spec: Any,
    settings: Any,
    *,
    name: str,
    source: str,
    holdout: float = 0.2,
    stats: Sequence[str] = (),
    levels: str | None = None,
) -> ModelPackage:
    """Featurize the training samples as ``edge models train`` does, fit ``kind`` through
    ``inference.train.fit`` and return the package in memory (not registered). ``stats``: keep only the
    features of these statistics (``<signal>__<stat>``; empty keeps every feature); ``levels``: which
    signals keep their level statistics (``inference.levels``; None: the current default mode)."""
    from inference import levels as lv
    from inference.manifest import build_manifest
    from inference.train import fit
    from inference.training_set import features_from_samples

    tset = features_from_samples(list(batches), spec, spectral=settings.spectral_signals,
                                 n_bands=settings.n_bands)
    tset, decision = lv.select(tset, stats, levels)
    result = fit(kind, tset, options, holdout=holdout)
    manifest = build_manifest(name, tset, result, spec, settings, [source])
    if decision is not None:
        manifest["levels"] = decision
    manifest["version"] = "eval"
    manifest["onnx_sha256"] = sha256_bytes(result.onnx)
    from pathlib import Path

    return ModelPackage(Path("."), manifest, result.onnx)
