"""What travels on the queues between stages: one Arrow batch, its idempotency id, its acknowledgements."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa

BatchKind = Literal["samples", "features", "insights", "events", "dead_letters"]


@dataclass
class Envelope:
    """A batch on its way to the historian.

    ``batch_id`` is deterministic for what the batch holds at its source (for example the source name and
    the first and last message ids), so a replay after a crash or from the spool is recognised by the
    historian's ledger and stored once. ``acks`` are called once the batch is committed or spooled: only
    then may a source acknowledge its input (MQTT QoS 1 PUBACK).
    """

    kind: BatchKind
    batch: pa.RecordBatch
    batch_id: str
    acks: list[Callable[[], None]] = field(default_factory=list)

    def acknowledge(self) -> None:
        acks, self.acks = self.acks, []
        for ack in acks:
            ack()

    @property
    def num_rows(self) -> int:
        return int(self.batch.num_rows)


def join_acks(acks: list[Callable[[], None]], parts: int) -> list[Callable[[], None]]:
    """``parts`` callables that run ``acks`` once all of them have been called: for a batch split into
    several envelopes (samples and dead letters, say), whose input may be acknowledged only when every part
    is safe."""
    if not acks:
        return []
    remaining = [parts]
    lock = threading.Lock()

    def part_done() -> None:
        with lock:
            remaining[0] -= 1
            done = remaining[0] == 0
        if done:
            for ack in acks:
                ack()

    return [part_done] * parts


def batch_id_for(*parts: object) -> str:
    """A stable id from the parts that identify a batch at its source."""
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(str(part).encode())
        h.update(b"\x1f")
    return h.hexdigest()
