"""Closing one window in a single pass (Numba): the grid of per-cell means with values held forward, the
count of bad samples, the OR of the samples' flags and whether any was uncertain. One compiled call per
window instead of some twenty small numpy calls, which cost more than the work itself when many equipment
close a window at once (and each waited for the GIL beside the sources)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from inference.kernels import fill_grid


@njit(nogil=True, cache=True)
def window_cells(ts: np.ndarray, sig: np.ndarray, val: np.ndarray, qual: np.ndarray, flg: np.ndarray,
                 lo_hold: int, lo: int, hi: int, start: int, end: int, n_sig: int, n_grid: int,
                 hold_cells: int, bad_quality: int, uncertain_quality: int
                 ) -> tuple[np.ndarray, int, int, bool]:  # pragma: no cover - numba
    """For the samples ``[lo, hi)`` of sorted columns (``[lo_hold, lo)``: the hold span before the window):
    the grid (signals x ``n_grid``; a cell's mean over its good finite samples, else the last value held
    for at most ``hold_cells`` cells, starting from the last good finite sample of the hold span), the
    number of samples of quality ``>= bad_quality``, the OR of the flags, and whether a sample is uncertain.
    Sums run in time order, as ``np.bincount`` adds them: the grid is the same to the bit."""
    prior = np.full(n_sig, np.nan)
    for i in range(lo_hold, lo):  # forward: the last one written is the latest in time
        if qual[i] < bad_quality and math.isfinite(val[i]):
            prior[sig[i]] = val[i]
    sums = np.zeros((n_sig, n_grid), dtype=np.float64)
    counts = np.zeros((n_sig, n_grid), dtype=np.int64)
    n_bad = 0
    flags = 0
    uncertain = False
    span = end - start
    for i in range(lo, hi):
        flags |= flg[i]
        q = qual[i]
        if q == uncertain_quality:
            uncertain = True
        if q >= bad_quality:
            n_bad += 1
            continue
        v = val[i]
        if not math.isfinite(v):
            continue
        cell = ((ts[i] - start) * n_grid) // span
        sums[sig[i], cell] += v
        counts[sig[i], cell] += 1
    return fill_grid(sums, counts, prior, hold_cells), n_bad, flags, uncertain


def warm_up() -> None:
    """Compile (or load from cache) with the types ``Windower`` passes."""
    ts = np.array([0, 1], dtype=np.int64)
    window_cells(ts, np.zeros(2, np.int32), np.zeros(2), np.zeros(2, np.int16), np.zeros(2, np.int32),
                 0, 1, 2, 1, 3, 1, 2, 1, 2, 1)
