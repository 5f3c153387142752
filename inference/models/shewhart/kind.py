"""The ``shewhart`` kind's fit: each feature standardized with its training mean and std, the score the
largest |z| of any feature, scaled by the training ``quantile`` of that maximum.

Two numbers a feature and no covariance: where a short baseline cannot estimate the covariance of many
features (a PCA of window means and stds of dozens of signals), per-feature limits still hold, and a fault
that moves one signal's level or spread shows in that signal's own feature."""

from __future__ import annotations

import numpy as np

from inference.models.base import FittedModel, Progress, standardizer
from inference.models.shewhart.graph import shewhart_onnx
from inference.models.shewhart.settings import ShewhartSettings


class ShewhartKind:
    name = "shewhart"
    settings = ShewhartSettings

    def fit(self, x_train: np.ndarray, options: ShewhartSettings, progress: Progress) -> FittedModel:
        x = np.asarray(x_train, dtype=np.float64)
        mu, sd = standardizer(x)
        limit = float(max(np.quantile(zmax(x, mu, sd), options.quantile), 1e-9))
        progress(f"shewhart: {x.shape[1]} features, limit |z| {limit:.3g} (quantile {options.quantile:g})")

        def score(x_new: np.ndarray) -> np.ndarray:
            return zmax(np.asarray(x_new, dtype=np.float64), mu, sd) / limit

        return FittedModel(
            onnx=shewhart_onnx(mu, sd, limit),
            threshold=None,
            thresholds={"z_limit": limit},
            extra={"z_limit": limit},
            score=score,
        )


def zmax(x: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """The largest |standardized deviation| of each row."""
    return np.asarray(np.abs((x - mu) / sd).max(axis=1))


KIND = ShewhartKind()
