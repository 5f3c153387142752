"""The window kernel against the numpy formulation it replaced (bincount sums, the prior from a reversed
``np.unique``), to the bit, on random windows with bad, uncertain and non-finite samples and holds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge.core.datamodel import Quality
from inference.kernels import fill_grid
from inference.window_kernel import window_cells

BAD, UNCERTAIN = int(Quality.BAD), int(Quality.UNCERTAIN)


def reference(ts: np.ndarray, sig: np.ndarray, val: np.ndarray, qual: np.ndarray, flg: np.ndarray,
              lo_hold: int, lo: int, hi: int, start: int, end: int, n_sig: int, n_grid: int,
              hold_cells: int) -> tuple[np.ndarray, int, int, bool]:
    w_q = qual[lo:hi]
    bad = w_q >= BAD
    flags = int(np.bitwise_or.reduce(flg[lo:hi])) if hi > lo else 0
    prior = np.full(n_sig, np.nan)
    p_sig, p_val, p_q = sig[lo_hold:lo], val[lo_hold:lo], qual[lo_hold:lo]
    ok = (p_q < BAD) & np.isfinite(p_val)
    if ok.any():
        rev_sig, rev_val = p_sig[ok][::-1], p_val[ok][::-1]
        sigs, last = np.unique(rev_sig, return_index=True)
        prior[sigs] = rev_val[last]
    good = (~bad) & np.isfinite(val[lo:hi])
    cell = ((ts[lo:hi][good] - start) * n_grid) // (end - start)
    key = sig[lo:hi][good].astype(np.int64) * n_grid + cell
    sums = np.bincount(key, weights=val[lo:hi][good], minlength=n_sig * n_grid).reshape(n_sig, n_grid)
    counts = np.bincount(key, minlength=n_sig * n_grid).reshape(n_sig, n_grid)
    grid = fill_grid(sums, counts, prior, hold_cells)
    return grid, int(np.count_nonzero(bad)), flags, bool(np.any(w_q == UNCERTAIN))


@pytest.mark.parametrize("seed", range(12))
def test_the_kernel_equals_the_numpy_formulation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, n_sig, n_grid = int(rng.integers(0, 400)), int(rng.integers(1, 6)), int(rng.integers(1, 40))
    start, end = 10_000_000, 20_000_000
    ts = np.sort(rng.integers(start - 5_000_000, end, n)).astype(np.int64)
    sig = rng.integers(0, n_sig, n).astype(np.int32)
    val = rng.normal(size=n) * 10.0 ** rng.integers(-3, 6, n)
    val[rng.random(n) < 0.05] = np.nan
    val[rng.random(n) < 0.02] = np.inf
    qual = rng.choice(np.array([0, UNCERTAIN, BAD, BAD + 1], dtype=np.int16), n, p=[0.8, 0.08, 0.08, 0.04])
    flg = (rng.integers(0, 4, n) * (rng.random(n) < 0.1)).astype(np.int32)
    lo_hold, lo, hi = (int(np.searchsorted(ts, t, "left")) for t in (start - 5_000_000, start, end))
    hold_cells = int(rng.integers(0, 8))
    got = window_cells(ts, sig, val, qual, flg, lo_hold, lo, hi, start, end, n_sig, n_grid, hold_cells,
                       BAD, UNCERTAIN)
    want = reference(ts, sig, val, qual, flg, lo_hold, lo, hi, start, end, n_sig, n_grid, hold_cells)
    np.testing.assert_array_equal(got[0], want[0])  # NaN where NaN, every other value to the bit
    assert (int(got[1]), int(got[2]), bool(got[3])) == want[1:]


def test_a_held_value_runs_out_after_the_hold() -> None:
    ts = np.array([0, 4], dtype=np.int64)  # one sample before the window, one in its first cell
    grid, n_bad, flags, uncertain = window_cells(
        ts, np.zeros(2, np.int32), np.array([1.0, 3.0]), np.zeros(2, np.int16), np.array([0, 4], np.int32),
        0, 1, 2, 4, 14, 1, 10, 2, BAD, UNCERTAIN)
    assert grid[0, 0] == 3.0 and list(grid[0, 1:3]) == [3.0, 3.0] and all(map(math.isnan, grid[0, 3:]))
    assert (n_bad, flags, uncertain) == (0, 4, False)
