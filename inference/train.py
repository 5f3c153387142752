"""Fit anomaly models on a baseline period of normal running and export them as ONNX model packages.

The training set (``inference.training_set``: featurized as the pipeline does) is split in time order: the
first ``1 - holdout`` part fits the model and calibrates its threshold, the last part is kept as the held-out
set that ``Registry.validate`` checks (seen by neither). The threshold is never set on windows the scoring
model was fitted on: blocked cross-calibration (``inference.cross_calibration``) scores each of ``k`` blocks
of the training part with the kind fitted on the others, through the exported graph (onnxruntime), and the
threshold is the smallest whose alarm rate after the stage's severity hysteresis on the pooled held-out
scores is <= the kind's ``target_far`` (``inference.calibration``). The deployed model is the kind fitted on
the whole training part.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar, cast

import numpy as np

from inference.calibration import Hysteresis, calibrate_threshold, fit_metrics, graph_scores
from inference.cross_calibration import K_FOLDS, held_out_scores, min_training_windows
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
    hysteresis: Hysteresis | None = None,
    k_folds: int = K_FOLDS,
) -> TrainResult:
    """Fit ``kind`` on ``ts`` with its training ``options`` (its settings model; None: the defaults) and
    cross-calibrate its threshold with the severity rule ``hysteresis`` (None: the settings' defaults)."""
    say = progress or (lambda _m: None)
    opts = options if options is not None else cast(S, kind.settings.model_validate({}))
    hyst = hysteresis or Hysteresis()
    n_win, n_feat = ts.x.shape
    if n_win < 20:
        raise ValueError(f"only {n_win} good windows in the training data; need at least 20")
    n_train = max(10, round(n_win * (1.0 - holdout)))
    x_train, x_hold = ts.x[:n_train], ts.x[n_train:]
    say(f"{kind.name}: {n_win} windows x {n_feat} features; {len(x_train)} to fit, {len(x_hold)} held out")
    need = min_training_windows(opts.target_far, n_feat, k_folds)
    if n_train < need:
        say(f"{kind.name}: warning: {n_train} windows cannot resolve a target false-alarm rate of "
            f"{opts.target_far:.3g} with {n_feat} features (need >= {need})")
    starts = ts.window_start_us[:n_train] if len(ts.window_start_us) == n_win else np.zeros(0, np.int64)
    window_us = round(ts.window_s * 1e6)
    held = held_out_scores(kind, x_train, starts, window_us, opts, say, k_folds)
    threshold, achieved = calibrate_threshold(held.scores, opts.target_far, hyst)
    fitted = kind.fit(x_train, opts, say)
    thresholds = {**fitted.thresholds, "score": threshold}
    say(f"{kind.name}: scoring the training and held-out windows through onnxruntime")
    s_train, s_hold = graph_scores(fitted.onnx, x_train, x_hold)
    metrics = fit_metrics(s_train, s_hold, threshold, opts.quantile, hyst)
    metrics["calibration"] = {
        "method": "blocked cross-calibration, severity hysteresis in the loop",
        "target_far": opts.target_far,
        "heldout_alarm_rate_after_hysteresis": achieved,
        "heldout_windows": int(sum(len(s) for s in held.scores)),
        "k_folds": k_folds,
        "gap_s": ts.window_s,
        "blocks": held.blocks,
        "hysteresis": hyst.as_dict(),
        "min_windows": need,
    }
    hold_far = metrics["holdout_alarm_rate_after_hysteresis"]
    say(
        f"{kind.name}: threshold {threshold:.4g}; cross-calibrated alarm rate {achieved:.2%} "
        f"(target {opts.target_far:.2%}); held-out false-alarm rate "
        f"{'n/a' if hold_far is None else f'{hold_far:.2%}'} after hysteresis "
        f"({'n/a' if not len(s_hold) else format(metrics['holdout_false_alarm_rate'], '.2%')} of windows "
        f"above the threshold)"
    )
    return TrainResult(kind.name, fitted.onnx, threshold, thresholds, metrics, x_hold, fitted.extra)
