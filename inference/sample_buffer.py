"""An equipment's samples in time order as five growable columns (ts, signal id, value, quality, flags).

Each arriving piece is copied in once. Closing a window then reads views of the columns, instead of joining
every piece held so far again at each close (the held span is several hops long, so each sample used to be
copied as many times). Pieces arrive sorted; one that starts before the last sample held (out-of-order
delivery) marks the buffer unsorted, and the next read sorts it, stably, as joining the pieces in arrival
order and sorting them would.
"""

from __future__ import annotations

import numpy as np

DTYPES = (np.int64, np.int32, np.float64, np.int16, np.int32)

Columns = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class SampleBuffer:
    def __init__(self, capacity: int = 1024) -> None:
        self._cols = [np.empty(capacity, dtype=d) for d in DTYPES]
        self._lo = 0  # the held samples are [lo, hi) of each column
        self._hi = 0
        self._sorted = True

    def __len__(self) -> int:
        return self._hi - self._lo

    def append(self, ts: np.ndarray, sig: np.ndarray, val: np.ndarray, qual: np.ndarray,
               flg: np.ndarray) -> None:
        """Add a piece sorted by ``ts`` (the five arrays of equal length)."""
        k = ts.shape[0]
        if k == 0:
            return
        if self._hi + k > self._cols[0].shape[0]:
            self._make_room(k)
        if self._hi > self._lo and ts[0] < self._cols[0][self._hi - 1]:
            self._sorted = False
        for col, piece in zip(self._cols, (ts, sig, val, qual, flg), strict=True):
            col[self._hi : self._hi + k] = piece
        self._hi += k

    def _make_room(self, k: int) -> None:
        live = self._hi - self._lo
        capacity = self._cols[0].shape[0]
        if live + k <= capacity // 2:  # room enough once the dropped head is gone: move the rest down
            for col in self._cols:
                col[:live] = col[self._lo : self._hi]  # numpy copies overlapping ranges correctly
        else:
            grown = max(2 * capacity, 2 * (live + k))
            new = [np.empty(grown, dtype=d) for d in DTYPES]
            for old, col in zip(self._cols, new, strict=True):
                col[:live] = old[self._lo : self._hi]
            self._cols = new
        self._lo, self._hi = 0, live

    def columns(self) -> Columns:
        """Views of the held samples, sorted by time; valid until the next ``append`` or ``drop_before``."""
        lo, hi = self._lo, self._hi
        if not self._sorted:
            order = np.argsort(self._cols[0][lo:hi], kind="stable")
            for col in self._cols:
                col[lo:hi] = col[lo:hi][order]
            self._sorted = True
        c = self._cols
        return c[0][lo:hi], c[1][lo:hi], c[2][lo:hi], c[3][lo:hi], c[4][lo:hi]

    def drop_before(self, ts_us: int) -> None:
        """Forget the samples older than ``ts_us``."""
        ts = self.columns()[0]
        self._lo += int(np.searchsorted(ts, ts_us, "left"))
