"""Calibration of a fitted model on its exported graph, with the product's severity rule in the loop.

The rows are scored through onnxruntime (``graph_scores``: what the pipeline will run). The threshold is the
smallest one whose ALARM rate after the severity hysteresis (``inference.severity.SeverityTracker``, the
stage's own code: warning/alarm levels, ``hysteresis_windows`` in a row to rise or fall) on held-out normal
score sequences is <= the target false-alarm rate (``calibrate_threshold``). ``fit_metrics`` is what the
manifest records of a fit (``train_score_deciles`` is the drift monitor's reference).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def graph_scores(onnx: bytes, *parts: np.ndarray) -> list[np.ndarray]:
    """The ``score`` output of the graph for the rows of each part (float64; empty for a part of no rows),
    in one onnxruntime session on the CPU."""
    from inference.runtimes.onnx.runtime import OnnxRuntime

    rt = OnnxRuntime(onnx, providers=["CPUExecutionProvider"], intra_op_threads=1)
    return [np.asarray(rt.infer(x)["score"].astype(np.float64)) if len(x) else np.zeros(0) for x in parts]


def quantile_threshold(train_scores: np.ndarray, quantile: float) -> float:
    return float(np.quantile(train_scores, quantile))


def _default(field: str) -> Any:
    from inference.settings import InferenceSettings

    return InferenceSettings.model_fields[field].default


@dataclass(frozen=True)
class Hysteresis:
    """The severity rule's parameters (``[inference]`` ``warning_ratio``, ``clear_ratio``,
    ``hysteresis_windows``); the defaults are the settings model's."""

    warning_ratio: float = _default("warning_ratio")
    clear_ratio: float = _default("clear_ratio")
    hysteresis_windows: int = _default("hysteresis_windows")

    @classmethod
    def from_settings(cls, s: Any) -> Hysteresis:
        return cls(float(s.warning_ratio), float(s.clear_ratio), int(s.hysteresis_windows))

    def as_dict(self) -> dict[str, Any]:
        return {"warning_ratio": self.warning_ratio, "clear_ratio": self.clear_ratio,
                "hysteresis_windows": self.hysteresis_windows}


def severity_levels(seqs: Sequence[np.ndarray], threshold: float, hyst: Hysteresis) -> list[np.ndarray]:
    """The level (0 ok, 1 warning, 2 alarm) of every window of each sequence, each sequence a run of
    windows of one equipment starting at level ok, by the stage's ``SeverityTracker``."""
    from inference.severity import SeverityTracker

    tracker = SeverityTracker(hyst.warning_ratio, hyst.clear_ratio, hyst.hysteresis_windows)
    lens = [len(s) for s in seqs]
    if not sum(lens):
        return [np.zeros(0, dtype=np.int64) for _ in seqs]
    assets = [str(i) for i, n in enumerate(lens) for _ in range(n)]
    scores = np.concatenate([np.asarray(s, dtype=np.float64) for s in seqs])
    out = tracker.update_many("calibration", assets, scores, threshold, np.zeros(len(scores), dtype=bool))
    return list(np.split(out, np.cumsum(lens)[:-1]))


def alarm_rate(seqs: Sequence[np.ndarray], threshold: float, hyst: Hysteresis) -> float:
    """Share of the windows at level alarm after hysteresis."""
    levels = severity_levels(seqs, threshold, hyst)
    n = sum(len(lv) for lv in levels)
    return sum(int(np.count_nonzero(lv == 2)) for lv in levels) / max(n, 1)


def calibrate_threshold(
    seqs: Sequence[np.ndarray], target_far: float, hyst: Hysteresis
) -> tuple[float, float]:
    """(threshold, its alarm rate after hysteresis): the smallest held-out score (or just above the largest)
    whose alarm rate on the held-out normal sequences ``seqs`` is <= ``target_far``."""
    allv = np.concatenate([np.asarray(s, dtype=np.float64) for s in seqs]) if seqs else np.zeros(0)
    allv = allv[np.isfinite(allv)]
    if not len(allv):
        raise ValueError("no finite held-out scores to calibrate the threshold on")
    cand = np.unique(allv)
    top = float(cand[-1])
    cand = np.concatenate([cand, [top + max(abs(top) * 1e-6, 1e-12)]])
    lo, hi = 0, len(cand) - 1  # the rate does not grow with the threshold: binary search
    if alarm_rate(seqs, float(cand[lo]), hyst) <= target_far:
        hi = lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if alarm_rate(seqs, float(cand[mid]), hyst) <= target_far:
            hi = mid
        else:
            lo = mid
    t = float(cand[hi])
    return t, alarm_rate(seqs, t, hyst)


def fit_metrics(
    s_train: np.ndarray, s_hold: np.ndarray, threshold: float, quantile: float, hyst: Hysteresis | None = None
) -> dict[str, Any]:
    """What the manifest records of a fit; ``train_score_deciles`` is the reference of the drift monitor.
    The rates are raw (score >= threshold) unless named ``after_hysteresis``."""
    h = hyst or Hysteresis()
    return {
        "train_windows": len(s_train),
        "holdout_windows": len(s_hold),
        "quantile": quantile,
        "train_false_alarm_rate": float(np.mean(s_train >= threshold)),
        "holdout_false_alarm_rate": float(np.mean(s_hold >= threshold)) if len(s_hold) else None,
        "holdout_alarm_rate_after_hysteresis": alarm_rate([s_hold], threshold, h) if len(s_hold) else None,
        "train_score_p50": float(np.median(s_train)),
        "train_score_deciles": [float(q) for q in np.quantile(s_train, np.linspace(0.1, 0.9, 9))],
    }
