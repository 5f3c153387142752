"""Severity with hysteresis (the product's rule) and threshold calibration with the hysteresis in the loop.

``severity_levels`` is a line-by-line port of ``inference/insights.py::_severity_kernel`` for one
(asset, model) slot starting at level ok: raw level = 2 (alarm) at score >= threshold, 1 (warning) at
score >= warning_ratio * threshold, else 0. A level rises after ``hysteresis`` windows in a row with a raw
level above the current one (to the lowest raw level seen in that run); it falls (to min(raw, level - 1))
after ``hysteresis`` windows in a row below clear_ratio x the current level's bound. Gated / non-finite
windows keep the level. Defaults = the product's settings (0.8, 0.9, 2).

``calibrate_threshold`` finds the smallest threshold whose ALARM rate (share of windows at level 2 after
hysteresis) on held-out normal score sequences is <= the target false-alarm rate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

try:  # optional speed-up; the pure-Python path gives the same result
    from numba import njit
except Exception:  # pragma: no cover
    def njit(*a, **k):
        def deco(f):
            return f
        return deco if not (a and callable(a[0])) else a[0]


@njit(cache=True)
def _levels(scores, gated, threshold, warning_ratio, clear_ratio, hysteresis):  # pragma: no cover
    n = scores.shape[0]
    out = np.empty(n, dtype=np.int64)
    warn = warning_ratio * threshold
    level = 0
    up_run = 0
    up_min = 2
    down_run = 0
    for i in range(n):
        sc = scores[i]
        if gated[i] or not np.isfinite(sc):
            out[i] = level
            continue
        raw = 2 if sc >= threshold else (1 if sc >= warn else 0)
        if raw > level:
            up_run += 1
            up_min = min(up_min, raw) if up_run > 1 else raw
            if up_run >= hysteresis:
                level = up_min
                up_run = 0
        else:
            up_run = 0
        if level > 0:
            bound = threshold if level == 2 else warn
            if sc < clear_ratio * bound:
                down_run += 1
                if down_run >= hysteresis:
                    level = min(raw, level - 1)
                    down_run = 0
            else:
                down_run = 0
        else:
            down_run = 0
        out[i] = level
    return out


def severity_levels(
    scores: np.ndarray,
    threshold: float,
    warning_ratio: float = 0.8,
    clear_ratio: float = 0.9,
    hysteresis: int = 2,
    gated: np.ndarray | None = None,
) -> np.ndarray:
    s = np.ascontiguousarray(scores, dtype=np.float64)
    g = np.zeros(s.shape[0], dtype=np.bool_) if gated is None else np.ascontiguousarray(gated, dtype=np.bool_)
    return _levels(s, g, float(threshold), float(warning_ratio), float(clear_ratio), int(hysteresis))


def alarms(scores: np.ndarray, threshold: float, **hyst) -> np.ndarray:
    """Boolean per window: level == alarm after hysteresis."""
    return severity_levels(scores, threshold, **hyst) == 2


def alarm_rate(seqs: Sequence[np.ndarray], threshold: float, **hyst) -> float:
    n = sum(len(s) for s in seqs)
    return sum(int(alarms(s, threshold, **hyst).sum()) for s in seqs) / max(n, 1)


def calibrate_threshold(
    seqs: Sequence[np.ndarray], target_far: float, margin: float = 1.0, **hyst
) -> tuple[float, float]:
    """Smallest threshold (among the held-out scores, then x ``margin``) with alarm rate after hysteresis
    <= ``target_far`` on the held-out normal sequences ``seqs`` (each a contiguous run of window scores).
    Returns (threshold, held-out alarm rate at that threshold)."""
    allv = np.concatenate([np.asarray(s, dtype=np.float64) for s in seqs])
    allv = allv[np.isfinite(allv)]
    cand = np.unique(allv)
    cand = np.concatenate([cand, [cand[-1] * 1.000001 + 1e-12]])
    lo, hi = 0, len(cand) - 1  # the rate is non-increasing in the threshold: binary search
    if alarm_rate(seqs, cand[lo], **hyst) <= target_far:
        hi = lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if alarm_rate(seqs, cand[mid], **hyst) <= target_far:
            hi = mid
        else:
            lo = mid
    t = float(cand[hi]) * margin
    return t, alarm_rate(seqs, t, **hyst)


def blocked_folds(n: int, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """k contiguous blocks: (fit indices, held-out indices) per fold, for cross-calibration."""
    edges = np.linspace(0, n, k + 1).astype(int)
    out = []
    for i in range(k):
        ho = np.arange(edges[i], edges[i + 1])
        fit = np.concatenate([np.arange(0, edges[i]), np.arange(edges[i + 1], n)])
        out.append((fit, ho))
    return out


def min_training_windows(target_far: float, n_features: int, k_folds: int = 4) -> int:
    """Minimum number of baseline windows to fit and cross-calibrate: the pooled held-out scores (every
    window is held out once) must hold >= 10 / target_far windows, so that the threshold rests on >= ~10
    alarm windows, and each fit part (k-1)/k of them >= 5 x n_features windows."""
    need_hold = int(np.ceil(10.0 / target_far))
    need_fit = int(np.ceil(5 * n_features * k_folds / (k_folds - 1)))
    return max(need_hold, need_fit, 50)


class TrainingDataTooSmall(ValueError):
    """What the product should raise (and ``edge models train`` print) when the baseline is too short."""


def check_training_size(n_windows: int, target_far: float, n_features: int, window_s: float, hop_s: float,
                        k_folds: int = 4) -> None:
    need = min_training_windows(target_far, n_features, k_folds)
    if n_windows < need:
        secs = window_s + (need - 1) * hop_s
        raise TrainingDataTooSmall(
            f"training data too small: {n_windows} usable windows ({window_s:g} s every {hop_s:g} s), "
            f"need >= {need} for {n_features} features at a target false-alarm rate of {target_far:.3g} "
            f"(>= {secs:.0f} s of normal running without gated windows); give a longer baseline, a larger "
            f"target rate, or fewer features")


def cross_calibrate(make_model, x: np.ndarray, target_far: float, k_folds: int = 4, gap: int = 0,
                    margin: float = 1.0, scale_q: float = 0.99, **hyst):
    """Fit ``make_model()`` on all windows ``x`` (time ordered) and calibrate its threshold on held-out
    scores: k contiguous folds, each scored by a model fitted on the other folds minus ``gap`` windows on
    each side of the held-out block (overlapping sliding windows would leak). Models with ``parts`` /
    ``set_scales`` (PCA T2+Q) get their T2 and Q scales from the pooled held-out parts (quantile
    ``scale_q``). Returns (final model, threshold, held-out alarm rate, pooled held-out score sequences)."""
    n = len(x)
    held_parts, held_scores = [], []
    for fit_idx, ho in blocked_folds(n, k_folds):
        keep = (fit_idx < ho[0] - gap) | (fit_idx > ho[-1] + gap)
        m = make_model().fit(x[fit_idx[keep]])
        if hasattr(m, "parts"):
            held_parts.append(m.parts(x[ho]))
        else:
            held_scores.append(m.score(x[ho]))
    final = make_model().fit(x)
    if held_parts:
        t2 = np.concatenate([p[0] for p in held_parts])
        q = np.concatenate([p[1] for p in held_parts])
        final.t2_s = float(max(np.quantile(t2, scale_q), 1e-9))
        final.q_s = float(max(np.quantile(q, scale_q), 1e-9))
        held_scores = [np.maximum(a / final.t2_s, b / final.q_s) for a, b in held_parts]
    thr, rate = calibrate_threshold(held_scores, target_far, margin=margin, **hyst)
    return final, thr, rate, held_scores


def forward_check(make_model, x: np.ndarray, target_far: float, k_folds: int = 4, gap: int = 0,
                  frac: float = 2 / 3, **hyst) -> float:
    """Training-only model selection: fit + cross-calibrate on the first ``frac`` of the baseline windows,
    return the alarm rate (after hysteresis) on the rest - later normal data the model did not see."""
    n = int(frac * len(x))
    m, thr, _, _ = cross_calibrate(make_model, x[:n], target_far, k_folds, gap=gap, **hyst)
    return float(alarms(m.score(x[n + gap:]), thr, **hyst).mean())
