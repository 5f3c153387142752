"""Point-wise figures (the SKAB leaderboard's convention, waico/SKAB ``core/metrics.py``, ``binary``).

A point is flagged when at least one window in alarm covers it (``alarm_points``). Over a set of files the
confusion matrices are summed (the same as concatenating the files' scored parts), then

    F1  = TP / (TP + (FN + FP) / 2)
    FAR = 100 * FP / (FP + TN)          (false alarms among the normal points, %)
    MAR = 100 * FN / (FN + TP)          (missed anomalous points, %)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


def alarm_points(n_points: int, win_start: np.ndarray, win_end: np.ndarray, alarm: np.ndarray) -> np.ndarray:
    """Boolean per point: True when a window in alarm covers it. ``win_start``/``win_end`` are point indices
    (end exclusive) of each window, ``alarm`` a boolean per window."""
    diff = np.zeros(n_points + 1, dtype=np.int64)
    a = np.asarray(alarm, dtype=bool)
    s = np.clip(np.asarray(win_start, dtype=np.int64)[a], 0, n_points)
    e = np.clip(np.asarray(win_end, dtype=np.int64)[a], 0, n_points)
    np.add.at(diff, s, 1)
    np.add.at(diff, e, -1)
    return np.cumsum(diff[:-1]) > 0


def window_point_span(
    point_ts: np.ndarray, start_us: np.ndarray, end_us: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Point index ranges [lo, hi) of windows [start, end) in event time over sorted point timestamps."""
    ts = np.asarray(point_ts, dtype=np.int64)
    return np.searchsorted(ts, start_us, "left"), np.searchsorted(ts, end_us, "left")


@dataclass(frozen=True)
class Confusion:
    tp: int = 0
    tn: int = 0
    fp: int = 0
    fn: int = 0

    @classmethod
    def of(cls, true: np.ndarray, pred: np.ndarray) -> Confusion:
        t = np.asarray(true).astype(bool)
        p = np.asarray(pred).astype(bool)
        if t.shape != p.shape:
            raise ValueError(f"labels ({t.shape}) and flags ({p.shape}) differ in length")
        return cls(int((t & p).sum()), int((~t & ~p).sum()), int((~t & p).sum()), int((t & ~p).sum()))

    def __add__(self, o: Confusion) -> Confusion:
        return Confusion(self.tp + o.tp, self.tn + o.tn, self.fp + o.fp, self.fn + o.fn)

    def figures(self) -> dict[str, float | int]:
        tp, tn, fp, fn = self.tp, self.tn, self.fp, self.fn
        f1 = tp / (tp + (fn + fp) / 2) if tp + fn + fp else 1.0
        far = 100.0 * fp / (fp + tn) if fp + tn else 0.0
        mar = 100.0 * fn / (fn + tp) if fn + tp else 0.0
        return {"F1": f1, "FAR": far, "MAR": mar, "TP": tp, "TN": tn, "FP": fp, "FN": fn}


def pointwise(trues: Iterable[np.ndarray], preds: Iterable[np.ndarray]) -> dict[str, float | int]:
    """SKAB point-wise F1, FAR (%), MAR (%) over all files together (confusion matrices summed)."""
    total = Confusion()
    for t, p in zip(trues, preds, strict=True):
        total = total + Confusion.of(t, p)
    return total.figures()
