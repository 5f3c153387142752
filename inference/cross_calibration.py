"""Blocked cross-calibration: the threshold is set on scores of windows the scoring model did not see.

The (time-ordered) training windows are cut into ``k`` contiguous blocks. For each block, the kind is fitted
on the other blocks minus the windows that overlap the block in time (sliding windows share samples: with a
window of W s every H s that is ceil(W/H) windows on each side), and the block is scored through the fold's
exported graph (onnxruntime). The pooled held-out score sequences are what ``calibration.calibrate_threshold``
runs the severity rule over. The deployed model is then fitted on all training windows.

``check_training_size``: the pooled held-out set must hold ~10 alarm windows at the target rate for the
threshold to mean anything, and each fit part ~5 windows per feature.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from inference.calibration import graph_scores
from inference.models.base import ModelKind, Progress

K_FOLDS = 4


class TrainingDataTooSmall(ValueError):
    """The baseline has too few usable windows for the window, hop, features and target rate."""


def min_training_windows(target_far: float, n_features: int, k_folds: int = K_FOLDS) -> int:
    need_hold = math.ceil(10.0 / target_far)
    need_fit = math.ceil(5 * n_features * k_folds / (k_folds - 1))
    return max(need_hold, need_fit, 50)


def check_training_size(
    n_windows: int, target_far: float, n_features: int, window_s: float, hop_s: float, k_folds: int = K_FOLDS
) -> None:
    """Raise ``TrainingDataTooSmall`` (what ``edge models train`` prints) when the baseline is too short."""
    need = min_training_windows(target_far, n_features, k_folds)
    if n_windows < need:
        secs = window_s + (need - 1) * hop_s
        raise TrainingDataTooSmall(
            f"training data too small: {n_windows} usable windows ({window_s:g} s every {hop_s:g} s), "
            f"need >= {need} for {n_features} features at a target false-alarm rate of {target_far:.3g} "
            f"(>= {secs:.0f} s of normal running without gated windows); give a longer baseline, a larger "
            f"target rate, or fewer features"
        )


@dataclass
class HeldOut:
    """The pooled held-out score sequences (one per block) and what the manifest records of the blocks."""

    scores: list[np.ndarray]
    blocks: list[dict[str, Any]]


def blocked_folds(n: int, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """k contiguous blocks: (fit indices, held-out indices) per fold."""
    edges = np.linspace(0, n, k + 1).astype(int)
    out = []
    for i in range(k):
        rest = np.concatenate([np.arange(0, edges[i]), np.arange(edges[i + 1], n)])
        out.append((rest, np.arange(edges[i], edges[i + 1])))
    return out


def held_out_scores(
    kind: ModelKind[Any],
    x: np.ndarray,
    start_us: np.ndarray,
    window_us: int,
    options: Any,
    progress: Progress,
    k_folds: int = K_FOLDS,
) -> HeldOut:
    """Score each of ``k_folds`` blocks of ``x`` with the kind fitted on the rest (minus the windows that
    overlap the block: start within ``window_us`` of the block's), through the fold's graph."""
    n = len(x)
    timed = len(start_us) == n and window_us > 0
    seqs: list[np.ndarray] = []
    blocks: list[dict[str, Any]] = []
    quiet: Progress = lambda _m: None  # noqa: E731
    for i, (fit_idx, ho) in enumerate(blocked_folds(n, k_folds)):
        if not len(ho):
            continue
        if timed:
            lo, hi = int(start_us[ho[0]]), int(start_us[ho[-1]])
            s = start_us[fit_idx]
            fit_idx = fit_idx[(s <= lo - window_us) | (s >= hi + window_us)]
        if len(fit_idx) < 2:
            raise ValueError(f"block {i + 1} of {k_folds}: too few windows left to fit on ({len(fit_idx)})")
        fold = kind.fit(x[fit_idx], options, quiet)
        (s_ho,) = graph_scores(fold.onnx, x[ho])
        seqs.append(s_ho)
        block: dict[str, Any] = {"windows": len(ho), "fit_windows": len(fit_idx)}
        if timed:
            block.update(start_us=int(start_us[ho[0]]), end_us=int(start_us[ho[-1]]) + window_us)
        blocks.append(block)
        progress(f"{kind.name}: block {i + 1}/{k_folds}: fitted on {len(fit_idx)}, scored {len(ho)} held out")
    return HeldOut(seqs, blocks)
