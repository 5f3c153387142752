"""The column buffers of one micro-batch."""

from __future__ import annotations

from typing import Any

import numpy as np


class Columns:
    """Column buffers of one micro-batch: python lists (values decoded by asyncua) and numpy chunks
    (values from the fast decoder), concatenated once when the batch is built."""

    __slots__ = ("chunks", "n", "q", "recv", "tag", "ts", "val")

    def __init__(self) -> None:
        self.ts: list[int] = []
        self.recv: list[int] = []
        self.tag: list[int] = []
        self.val: list[float] = []
        self.q: list[int] = []
        self.chunks: list[tuple[np.ndarray[Any, Any], ...]] = []  # (ts, recv, tag, val, q)
        self.n = 0
