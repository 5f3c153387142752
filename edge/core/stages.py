"""Generic pipeline stages: a queue-to-queue transform, and the fan-out between historian and inference."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from edge.core.component import Emit, Role
from edge.core.envelope import Envelope

log = logging.getLogger("edge.core.stages")

Transform = Callable[[Envelope], Sequence[Envelope]]


def queue_emit(queue: asyncio.Queue[Envelope]) -> Emit:
    """An emit callable that waits for room: a slow consumer slows its producers, memory stays bounded."""

    async def emit(envelope: Envelope) -> None:
        await queue.put(envelope)

    return emit


class TransformStage:
    """Takes envelopes from ``inbox``, transforms each in a worker thread, and hands the results to ``emit``.

    On ``stop`` it finishes what is already queued (drain) and returns. A transform that raises on one
    batch is logged and the batch is passed on to ``on_error`` (for example as a dead letter); the stage
    keeps going, so one poisoned batch never stops the stream.
    """

    role: Role = "stage"

    def __init__(self, name: str, inbox: asyncio.Queue[Envelope], transform: Transform, emit: Emit,
                 on_error: Callable[[Envelope, Exception], Sequence[Envelope]] | None = None,
                 in_thread: bool = True) -> None:
        self.name = name
        self.inbox = inbox
        self.transform = transform
        self.emit = emit
        self.on_error = on_error
        self.in_thread = in_thread
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        while True:
            if self._stopping.is_set() and self.inbox.empty():
                return
            try:
                envelope = await asyncio.wait_for(self.inbox.get(), 0.1)
            except TimeoutError:
                continue
            try:
                if self.in_thread:
                    results = await asyncio.to_thread(self.transform, envelope)
                else:
                    results = self.transform(envelope)
            except Exception as exc:
                log.exception("transform failed", extra={"stage": self.name, "batch_id": envelope.batch_id})
                results = self.on_error(envelope, exc) if self.on_error else []
            for result in results:
                await self.emit(result)
            self.inbox.task_done()

    async def stop(self) -> None:
        self._stopping.set()
