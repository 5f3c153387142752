"""The historian's inbox: a bounded asyncio queue where insights overtake the samples queued before them.

Insights are few (one batch per model per scoring) and someone waits for each (MES, through the outbox);
samples come in many batches whose order matters only among themselves. In one FIFO an insights batch
waits behind every samples batch queued ahead of it, so its latency grows with the historian's backlog.
Here each kind keeps its own order and an insights batch is taken first; the bound counts both lanes, so
backpressure on the sources is unchanged.
"""

from __future__ import annotations

import asyncio
import collections

from edge.core.envelope import Envelope

FIRST_KINDS = frozenset({"insights"})


class _Lanes:
    """The queue's storage (asyncio.Queue keeps it in ``_queue`` and asks only its length and truth)."""

    def __init__(self) -> None:
        self.first: collections.deque[Envelope] = collections.deque()
        self.rest: collections.deque[Envelope] = collections.deque()

    def __len__(self) -> int:
        return len(self.first) + len(self.rest)

    def put(self, item: Envelope) -> None:
        (self.first if item.kind in FIRST_KINDS else self.rest).append(item)

    def get(self) -> Envelope:
        return self.first.popleft() if self.first else self.rest.popleft()


class InsightsFirstQueue(asyncio.Queue[Envelope]):
    """``asyncio.Queue`` of Envelopes whose ``get`` returns queued insights batches before anything else."""

    _queue: _Lanes

    def _init(self, maxsize: int) -> None:
        self._queue = _Lanes()

    def _put(self, item: Envelope) -> None:
        self._queue.put(item)

    def _get(self) -> Envelope:
        return self._queue.get()
