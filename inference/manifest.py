"""The package manifest of a fitted model (``manifest.json``): features in order, thresholds, the window
settings it was featurized with, the training data's fingerprint and the fit's metrics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from inference.explain.baseline import feature_stats
from inference.feature_drift import feature_reference
from inference.training_set import TrainingSet, fingerprint
from inference.windows import WindowSpec

if TYPE_CHECKING:
    from inference.train import TrainResult


def build_manifest(
    name: str,
    tset: TrainingSet,
    result: TrainResult,
    spec: WindowSpec,
    settings: Any,
    sources: Sequence[str],
    *,
    assets: Sequence[str] = (),
) -> dict[str, Any]:
    """The manifest of ``result`` (its kind named by ``result.kind``), fitted on ``tset``."""
    from datetime import UTC, datetime

    return {
        "name": name,
        "kind": result.kind,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "features": tset.feature_names,
        "input": "features",
        "outputs": {"score": "score", "contributions": "contributions"},
        "threshold": result.threshold,
        "thresholds": result.thresholds,
        "window": {
            "window_s": spec.window_s,
            "hop_s": spec.hop_s,
            "grid_hz": spec.grid_hz,
            "max_hold_s": spec.max_hold_s,
            "signal_key": spec.signal_key,
            "spectral_signals": list(settings.spectral_signals),
            "n_bands": settings.n_bands,
        },
        "training": fingerprint(tset.x, tset.feature_names, sources),
        "feature_stats": feature_stats(tset.x, tset.feature_names, tset.units),
        "reference": feature_reference(tset.x, tset.feature_names),  # what live drift is measured against
        "metrics": result.metrics,
        "model": result.extra,
        "assets": list(assets),
    }
