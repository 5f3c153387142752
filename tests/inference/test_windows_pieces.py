"""Batches that arrive in time order and batches that overlap in time give the same windows (the equipment's
sample buffer sorts only when a piece starts before the samples it holds end)."""

from __future__ import annotations

import numpy as np

from inference.windows import Windower, WindowSpec
from tests.inference.test_features_windows import T0, US, ctx_batch


def _pieces(order: list[int]) -> list[tuple[list[int], list[str], list[float]]]:
    """Six 5 s batches of two tags at 2 Hz with distinct values, in the given order."""
    out = []
    for k in order:
        ts = [T0 + k * 5 * US + i * US // 2 for i in range(10) for _ in range(2)]
        tags = ["a", "b"] * 10
        vals = [float(k * 100 + i) for i in range(20)]
        out.append((ts, tags, vals))
    return out


def _windows(order: list[int], interleave: bool = False) -> list[tuple[int, np.ndarray]]:
    w = Windower(WindowSpec(window_s=10, hop_s=5, grid_hz=2, allowed_lateness_s=30))
    pieces = _pieces(order)
    if interleave:  # every second sample of two batches in each: pieces overlap in time
        pieces = [(p[0][j::2] + q[0][j::2], p[1][j::2] + q[1][j::2], p[2][j::2] + q[2][j::2])
                  for p, q in zip(pieces[::2], pieces[1::2], strict=True) for j in (0, 1)]
    for ts, tags, vals in pieces:
        w.add(ctx_batch(ts, tags, vals, "site/line1/press1"))
    w.add(ctx_batch([T0 + 70 * US], ["a"], [0.0], "site/line1/press1"))  # watermark T0+40 s
    return [(x.start_us, x.grid) for x in w.ready()]


def test_in_order_and_overlapping_pieces_give_the_same_windows() -> None:
    ordered = _windows([0, 1, 2, 3, 4, 5])
    assert [(s - T0) // US for s, _ in ordered] == [0, 5, 10, 15, 20, 25]
    for other in (_windows([0, 2, 1, 3, 5, 4]), _windows([0, 1, 2, 3, 4, 5], interleave=True)):
        assert [s for s, _ in other] == [s for s, _ in ordered]
        for (_, a), (_, b) in zip(other, ordered, strict=True):
            np.testing.assert_array_equal(a, b)
    # the first window's grid: each cell the one sample of its tag in that half second
    np.testing.assert_array_equal(ordered[0][1][0, :10], np.arange(0.0, 20.0, 2.0))

