"""Fit anomaly models on a baseline period of normal running and export them as ONNX model packages.

The training set (``inference.training_set``: featurized as the pipeline does) is split in time order: the
first ``1 - holdout`` part fits the model (the kind's ``fit``, ``inference.models``) and calibrates the
threshold (a quantile of the training scores), the last part is kept as the held-out set that
``Registry.validate`` checks (its false alarm rate). Both parts are scored through onnxruntime, on the
exported graph (``inference.calibration``), so the threshold and metrics are those of what the pipeline runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar, cast

import numpy as np

from inference.calibration import fit_metrics, graph_scores, quantile_threshold
from inference.models.base import KindSettings, ModelKind, Progress
from inference.training_set import TrainingSet

S = TypeVar("S", bound=KindSettings)


@dataclass
class TrainResult:
    kind: str
    onnx: bytes
    threshold: float
    thresholds: dict[str, float]
    metrics: dict[str, Any]
    holdout: np.ndarray
    extra: dict[str, Any]


def fit(
    kind: ModelKind[S],
    ts: TrainingSet,
    options: S | None = None,
    *,
    holdout: float = 0.2,
    progress: Progress | None = None,
) -> TrainResult:
    """Fit ``kind`` on ``ts`` with its training ``options`` (its settings model; None: the defaults)."""
    say = progress or (lambda _m: None)
    opts = options if options is not None else cast(S, kind.settings.model_validate({}))
    n_win, n_feat = ts.x.shape
    if n_win < 20:
        raise ValueError(f"only {n_win} good windows in the training data; need at least 20")
    n_train = max(10, round(n_win * (1.0 - holdout)))
    x_train, x_hold = ts.x[:n_train], ts.x[n_train:]
    say(f"{kind.name}: {n_win} windows x {n_feat} features; {len(x_train)} to fit, {len(x_hold)} held out")
    fitted = kind.fit(x_train, opts, say)
    say(f"{kind.name}: scoring the training and held-out windows through onnxruntime")
    s_train, s_hold = graph_scores(fitted.onnx, x_train, x_hold)
    threshold, thresholds = fitted.threshold, fitted.thresholds
    if threshold is None:
        threshold = quantile_threshold(s_train, opts.quantile)
        thresholds = {"score": threshold}
    metrics = fit_metrics(s_train, s_hold, threshold, opts.quantile)
    say(
        f"{kind.name}: threshold {threshold:.4g}; false alarms train "
        f"{metrics['train_false_alarm_rate']:.3%}, "
        f"held out {metrics['holdout_false_alarm_rate'] if len(s_hold) else 'n/a'}"
    )
    return TrainResult(kind.name, fitted.onnx, threshold, thresholds, metrics, x_hold, fitted.extra)
