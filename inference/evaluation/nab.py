"""The NAB scorer (numenta/NAB ``nab/sweeper.py``, v1.x), checked against NAB's stored per-file scores by
``tests/inference/evaluation/test_nab_validation.py``.

* probationary length = min(floor(0.15 * n), 0.15 * 5000) rows; detections there are ignored, and so are
  windows that lie wholly inside it;
* a row is a detection when its anomaly score >= threshold (here: a boolean array; the evaluator passes
  alarm onsets, as NAB charges every flagged row);
* inside a window [l, r] (inclusive row indices, width w = r - l + 1) the row i is worth
  tpWeight * S(-(r - i + 1) / w) / S(-1), S(x) = 2 / (1 + exp(5 x)) - 1; a window scores the max over its
  detections, -fnWeight when it has none;
* outside windows each detection adds fpWeight * S(|i - r_prev| / (w_prev - 1)) (r_prev, w_prev: the last
  window that ended before i), or -fpWeight before the first window (S(x >= 3) = -1);
* normalised score = 100 * (raw - null) / (perfect - null), null = -fnWeight * windows, perfect =
  tpWeight * windows, over the files of a corpus.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

PROFILES: dict[str, dict[str, float]] = {
    "standard": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11, "tnWeight": 1.0},
    "reward_low_FP_rate": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.22, "tnWeight": 1.0},
    "reward_low_FN_rate": {"tpWeight": 1.0, "fnWeight": 2.0, "fpWeight": 0.11, "tnWeight": 1.0},
}


def scaled_sigmoid(x: float) -> float:
    if x >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def probationary_length(n: int, probation_percent: float = 0.15) -> float:
    return min(math.floor(probation_percent * n), probation_percent * 5000)


def window_indices(
    timestamps: Sequence[str] | np.ndarray, windows: Sequence[Sequence[str]]
) -> list[tuple[int, int]]:
    """[(l, r)] inclusive row indices of windows given as timestamp strings (matched on the
    'YYYY-MM-DD HH:MM:SS' prefix; ``timestamps`` sorted)."""
    ts = np.asarray([str(t)[:19].replace("T", " ") for t in timestamps])
    out = []
    for a, b in windows:
        lo = int(np.searchsorted(ts, str(a)[:19].replace("T", " "), side="left"))
        hi = int(np.searchsorted(ts, str(b)[:19].replace("T", " "), side="right")) - 1
        out.append((lo, hi))
    return out


def row_weights(
    n: int, windows: Sequence[tuple[int, int]], profile: dict[str, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: what a detection there is worth, and its window id (-1 outside windows, -2 probationary)."""
    tpw, fpw = profile["tpWeight"], profile["fpWeight"]
    max_tp = scaled_sigmoid(-1.0)
    prob = probationary_length(n)
    w = np.empty(n)
    wid = np.full(n, -1, dtype=np.int64)
    wins = sorted(windows)
    k = 0
    prev_r: int | None = None
    prev_w = 0.0
    i = 0
    while i < n:
        if k < len(wins) and i == wins[k][0]:
            lo, hi = wins[k]
            width = float(hi - lo + 1)
            j = np.arange(lo, min(hi, n - 1) + 1)
            w[j] = [scaled_sigmoid(-(hi - x + 1) / width) * tpw / max_tp for x in j.tolist()]
            wid[j] = k
            prev_r, prev_w = hi, width
            k += 1
            i = hi + 1
            continue
        # the stretch up to the next window: false-positive weights, vectorised
        nxt = wins[k][0] if k < len(wins) else n
        rows = np.arange(i, max(i + 1, min(nxt, n)))
        if prev_r is None:
            w[rows] = -fpw
        else:
            pos = np.abs(prev_r - rows) / float(prev_w - 1) if prev_w > 1 else np.full(len(rows), np.inf)
            w[rows] = np.where(pos >= 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * np.minimum(pos, 3.0))) - 1.0) * fpw
        i = int(rows[-1]) + 1
    wid[: math.ceil(prob)] = -2
    return w, wid


def score_file(
    detections: np.ndarray, windows: Sequence[tuple[int, int]], profile: dict[str, float] | str = "standard"
) -> dict[str, Any]:
    """Raw NAB score of one file for boolean ``detections``, with NAB's counts."""
    prof = PROFILES[profile] if isinstance(profile, str) else profile
    det = np.asarray(detections).astype(bool)
    n = det.shape[0]
    w, wid = row_weights(n, windows, prof)
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
    }


def normalize(raw_total: float, n_windows: int, profile: dict[str, float] | str = "standard") -> float:
    """100 * (raw - null) / (perfect - null) for a corpus with ``n_windows`` windows in total."""
    prof = PROFILES[profile] if isinstance(profile, str) else profile
    null = -prof["fnWeight"] * n_windows
    perfect = prof["tpWeight"] * n_windows
    return 100.0 * (raw_total - null) / (perfect - null) if perfect != null else 0.0


def onsets(flags: np.ndarray) -> np.ndarray:
    """True only at the first point of each run of True (alarm onsets)."""
    f = np.asarray(flags).astype(bool)
    out = f.copy()
    out[1:] &= ~f[:-1]
    return out
