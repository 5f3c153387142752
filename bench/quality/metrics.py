"""Evaluation metrics for anomaly detectors (numpy only; meant to be ported into ``inference``).

Contents
--------
* ``alarm_points``          - window alarms -> per-point flags (a point is flagged when an alarm window covers it)
* ``skab_binary``           - SKAB leaderboard point-wise F1 / FAR / MAR
* ``label_events``, ``event_detection`` - event-wise detection (any alarm overlapping a span, optional tolerance)
                              and detection delay
* ``nab_*``                 - the NAB scorer (scaled sigmoid, probationary period, profiles, normalisation)

SKAB convention (waico/SKAB ``core/metrics.py``, ``chp_score(metric="binary")``): the confusion matrix is
summed over all files (equivalent to concatenating the per-file series; here: the test parts), then
    F1  = TP / (TP + (FN + FP) / 2)
    FAR = 100 * FP / (FP + TN)          (false alarms among the normal points, %)
    MAR = 100 * FN / (FN + TP)          (missed anomalous points, %)
The leaderboard rounds F1 to 2 decimals and FAR/MAR to 2 decimals (``round=True`` does the same).

NAB convention (numenta/NAB ``nab/sweeper.py``, v1.x; validated against ``results/`` in ``eval_nab.py``):
* probationary length = min(floor(0.15 * n), 0.15 * 5000) rows; detections there are ignored;
* a row is a detection when its anomaly score >= threshold (here: a boolean array);
* inside a window [l, r] (row indices, width w = r - l + 1) the row i scores
  tpWeight * S(-(r - i + 1) / w) / S(-1), S(x) = 2 / (1 + exp(5 x)) - 1; a window's score is the max over its
  detections, -fnWeight when it has none;
* outside windows each detection adds fpWeight * S(|i - r_prev| / (w_prev - 1)) (r_prev, w_prev: the last
  window that ended before i), or -fpWeight before the first window (S(x >= 3) = -1);
* normalised score = 100 * (raw - null) / (perfect - null) with null = -fnWeight * windows and
  perfect = tpWeight * windows, summed over the files of the (sub)corpus.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# ------------------------------------------------------------------------------------------ window -> points


def alarm_points(n_points: int, win_start: np.ndarray, win_end: np.ndarray, alarm: np.ndarray) -> np.ndarray:
    """Boolean per point: True when at least one window in alarm covers it. ``win_start``/``win_end`` are
    point indices (end exclusive) of each window, ``alarm`` a boolean per window."""
    diff = np.zeros(n_points + 1, dtype=np.int64)
    s = np.clip(np.asarray(win_start)[alarm], 0, n_points)
    e = np.clip(np.asarray(win_end)[alarm], 0, n_points)
    np.add.at(diff, s, 1)
    np.add.at(diff, e, -1)
    return np.cumsum(diff[:-1]) > 0


# ------------------------------------------------------------------------------------------------- SKAB


def confusion(true: np.ndarray, pred: np.ndarray) -> tuple[int, int, int, int]:
    t = np.asarray(true).astype(bool)
    p = np.asarray(pred).astype(bool)
    return int((t & p).sum()), int((~t & ~p).sum()), int((~t & p).sum()), int((t & ~p).sum())


def skab_binary(
    trues: Sequence[np.ndarray], preds: Sequence[np.ndarray], round_like_leaderboard: bool = False
) -> dict[str, float]:
    """SKAB point-wise F1, FAR (%), MAR (%) over all files together (confusion matrices summed)."""
    tp = tn = fp = fn = 0
    for t, p in zip(trues, preds, strict=True):
        a, b, c, d = confusion(t, p)
        tp, tn, fp, fn = tp + a, tn + b, fp + c, fn + d
    f1 = tp / (tp + (fn + fp) / 2) if tp + fn + fp else 1.0
    far = 100.0 * fp / (fp + tn) if fp + tn else 0.0
    mar = 100.0 * fn / (fn + tp) if fn + tp else 0.0
    if round_like_leaderboard:
        f1, far, mar = round(f1, 2), round(far, 2), round(mar, 2)
    return {"F1": f1, "FAR": far, "MAR": mar, "TP": tp, "TN": tn, "FP": fp, "FN": fn}


# ------------------------------------------------------------------------------------------- event-wise


def label_events(labels: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of 1 in a 0/1 label array as (start, end) index pairs, end exclusive."""
    y = np.concatenate([[0], np.asarray(labels).astype(np.int8), [0]])
    d = np.diff(y)
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist(), strict=True))


def event_detection(
    labels: np.ndarray, pred: np.ndarray, tolerance: int = 0
) -> dict[str, object]:
    """Event-wise detection. A labelled span [s, e) is detected when a flagged point lies in
    [s - tolerance, e + tolerance). Delay (points) = first flagged point in that range - s (negative = early,
    within the tolerance). False events = runs of flagged points that overlap no (tolerance-widened) span."""
    p = np.asarray(pred).astype(bool)
    n = p.shape[0]
    events = label_events(labels)
    det, delays = [], []
    covered = np.zeros(n, dtype=bool)
    for s, e in events:
        lo, hi = max(0, s - tolerance), min(n, e + tolerance)
        covered[lo:hi] = True
        idx = np.flatnonzero(p[lo:hi])
        det.append(bool(idx.size))
        delays.append(int(lo + idx[0] - s) if idx.size else None)
    false_events = sum(1 for s, e in label_events(p) if not covered[s:e].any())
    found = [d for d in delays if d is not None]
    return {
        "events": len(events),
        "detected": int(sum(det)),
        "detected_each": det,
        "delays": delays,
        "mean_delay": float(np.mean(found)) if found else None,
        "false_events": false_events,
    }


# -------------------------------------------------------------------------------------------------- NAB

NAB_PROFILES: dict[str, dict[str, float]] = {
    "standard": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11, "tnWeight": 1.0},
    "reward_low_FP_rate": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.22, "tnWeight": 1.0},
    "reward_low_FN_rate": {"tpWeight": 1.0, "fnWeight": 2.0, "fpWeight": 0.11, "tnWeight": 1.0},
}


def nab_scaled_sigmoid(x: float) -> float:
    if x >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def nab_probationary_length(n: int, probation_percent: float = 0.15) -> float:
    return min(math.floor(probation_percent * n), probation_percent * 5000)


def nab_window_indices(timestamps: Sequence[str] | np.ndarray, windows: Sequence[Sequence[str]]) -> list[tuple[int, int]]:
    """[(l, r)] inclusive row indices of NAB windows given as timestamp strings (matched on the
    'YYYY-MM-DD HH:MM:SS' prefix; timestamps must be sorted)."""
    ts = np.asarray([str(t)[:19] for t in timestamps])
    out = []
    for a, b in windows:
        l_ = int(np.searchsorted(ts, str(a)[:19], side="left"))
        r_ = int(np.searchsorted(ts, str(b)[:19], side="right")) - 1
        out.append((l_, r_))
    return out


def nab_row_weights(n: int, windows: Sequence[tuple[int, int]], profile: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Per-row sweep score (what a detection at that row would be worth) and the window id of each row
    (-1 outside windows, -2 in the probationary period)."""
    tpw, fpw = profile["tpWeight"], profile["fpWeight"]
    max_tp = nab_scaled_sigmoid(-1.0)
    prob = nab_probationary_length(n)
    w = np.empty(n)
    wid = np.full(n, -1, dtype=np.int64)
    wins = sorted(windows)
    k = 0
    prev_r = prev_w = None
    i = 0
    while i < n:
        if k < len(wins) and i == wins[k][0]:
            l_, r_ = wins[k]
            width = float(r_ - l_ + 1)
            for j in range(l_, min(r_, n - 1) + 1):
                w[j] = nab_scaled_sigmoid(-(r_ - j + 1) / width) * tpw / max_tp
                wid[j] = k
            prev_r, prev_w = r_, width
            k += 1
            i = r_ + 1
            continue
        pos = 3.0 if prev_r is None else abs(prev_r - i) / float(prev_w - 1)
        w[i] = nab_scaled_sigmoid(pos) * fpw
        i += 1
    wid[: int(math.ceil(prob)) if prob != int(prob) else int(prob)] = -2
    return w, wid


def nab_score_file(
    detections: np.ndarray, windows: Sequence[tuple[int, int]], profile: dict[str, float] | str = "standard"
) -> dict[str, float]:
    """Raw NAB score of one file for boolean ``detections`` (row >= threshold), with its counts."""
    prof = NAB_PROFILES[profile] if isinstance(profile, str) else profile
    det = np.asarray(detections).astype(bool)
    n = det.shape[0]
    w, wid = nab_row_weights(n, windows, prof)
    scorable = wid != -2
    # windows are only scored when they have scorable rows (NAB drops windows inside the probation)
    score = 0.0
    win_ids = np.unique(wid[wid >= 0])
    for k in win_ids:
        m = (wid == k) & det
        score += float(w[m].max()) if m.any() else -prof["fnWeight"]
    fp_rows = det & (wid == -1)
    score += float(w[fp_rows].sum())
    in_win = wid >= 0
    return {
        "score": score,
        "TP": int((det & in_win).sum()),
        "TN": int((~det & (wid == -1)).sum()),
        "FP": int(fp_rows.sum()),
        "FN": int((~det & in_win).sum()),
        "Total_Count": n,
        "windows": len(win_ids),
        "scorable": int(scorable.sum()),
    }


def nab_normalize(raw_total: float, n_windows: int, profile: dict[str, float] | str = "standard") -> float:
    """100 * (raw - null) / (perfect - null) for a corpus with ``n_windows`` windows in total."""
    prof = NAB_PROFILES[profile] if isinstance(profile, str) else profile
    null = -prof["fnWeight"] * n_windows
    perfect = prof["tpWeight"] * n_windows
    return 100.0 * (raw_total - null) / (perfect - null)


def onsets(flags: np.ndarray) -> np.ndarray:
    """Boolean array True only at the first point of each run of True (alarm onsets)."""
    f = np.asarray(flags).astype(bool)
    out = f.copy()
    out[1:] &= ~f[:-1]
    return out
