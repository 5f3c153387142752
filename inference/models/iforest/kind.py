"""The ``iforest`` kind's fit: an IsolationForest on the raw (float32) features; its threshold is the
``quantile`` of the exported graph's training scores, set by ``inference.train``."""

from __future__ import annotations

import numpy as np

from inference.models.base import FittedModel, Progress, standardizer
from inference.models.iforest.graph import iforest_onnx
from inference.models.iforest.settings import IforestSettings


class IforestKind:
    name = "iforest"
    settings = IforestSettings

    def fit(self, x_train: np.ndarray, options: IforestSettings, progress: Progress) -> FittedModel:
        from sklearn.ensemble import IsolationForest

        mu, sd = standardizer(x_train)
        progress(f"iforest: fitting {options.n_estimators} trees")
        forest = IsolationForest(n_estimators=options.n_estimators, random_state=options.seed).fit(
            x_train.astype(np.float32)
        )
        progress("iforest: building the ONNX tree ensemble")

        def score(x: np.ndarray) -> np.ndarray:
            return np.asarray(-forest.decision_function(np.asarray(x, dtype=np.float32)), dtype=np.float64)

        return FittedModel(
            onnx=iforest_onnx(forest, x_train.shape[1], mu, sd),
            threshold=None,
            thresholds={},
            extra={},
            score=score,
        )


KIND = IforestKind()
