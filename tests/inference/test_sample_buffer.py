"""The equipment's sample buffer holds what joining its pieces in arrival order (and sorting them stably when
a piece starts before the last one ended) would hold, through growth, compaction and dropped heads."""

from __future__ import annotations

import numpy as np

from inference.sample_buffer import SampleBuffer


def _piece(rng: np.random.Generator, start: int, k: int) -> tuple[np.ndarray, ...]:
    ts = np.sort(start + rng.integers(0, 50, size=k)).astype(np.int64)
    return (ts, rng.integers(0, 4, size=k).astype(np.int32), rng.normal(size=k),
            rng.integers(0, 3, size=k).astype(np.int16), rng.integers(0, 8, size=k).astype(np.int32))


def _reference(pieces: list[tuple[np.ndarray, ...]], keep_from: int) -> list[np.ndarray]:
    cols = [np.concatenate([p[j] for p in pieces]) for j in range(5)]
    order = np.argsort(cols[0], kind="stable")
    cols = [c[order] for c in cols]
    return [c[cols[0] >= keep_from] for c in cols]


def test_in_order_overlapping_and_late_pieces_read_as_the_stable_sort_of_their_join() -> None:
    rng = np.random.default_rng(5)
    buf = SampleBuffer(capacity=8)  # small: grows and compacts many times
    pieces: list[tuple[np.ndarray, ...]] = []
    keep_from = 0
    for step in range(400):
        start = step * 30 - (60 if step % 7 == 3 else 0)  # every seventh piece starts in the past
        piece = _piece(rng, start, int(rng.integers(0, 12)))
        buf.append(*piece)
        pieces.append(piece)
        if step % 25 == 24:
            keep_from = step * 30 - 300
            buf.drop_before(keep_from)
        got = buf.columns()
        want = _reference(pieces, keep_from)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)
        assert len(buf) == len(want[0])
    assert [c.dtype for c in buf.columns()] == [np.int64, np.int32, np.float64, np.int16, np.int32]


def test_equal_timestamps_keep_their_arrival_order() -> None:
    buf = SampleBuffer(capacity=2)
    buf.append(np.array([10, 20]), np.array([0, 0]), np.array([1.0, 2.0]), np.zeros(2), np.zeros(2))
    buf.append(np.array([10, 30]), np.array([1, 1]), np.array([3.0, 4.0]), np.zeros(2), np.zeros(2))
    ts, sig, val, _, _ = buf.columns()
    assert ts.tolist() == [10, 10, 20, 30] and val.tolist() == [1.0, 3.0, 2.0, 4.0]
    assert sig.tolist() == [0, 1, 0, 1]


def test_an_empty_buffer_reads_empty_and_drops_nothing() -> None:
    buf = SampleBuffer()
    buf.drop_before(100)
    assert len(buf) == 0 and all(c.size == 0 for c in buf.columns())
