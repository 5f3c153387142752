"""The historian's inbox hands out insights before the samples queued ahead of them, keeps each kind's order,
and bounds both lanes together (a full queue still blocks the sources)."""

from __future__ import annotations

import asyncio

import pyarrow as pa

from edge.app.queues import InsightsFirstQueue
from edge.core.envelope import Envelope

EMPTY = pa.record_batch({"x": pa.array([], pa.int64())})


def env(kind: str, i: int) -> Envelope:
    return Envelope(kind, EMPTY, f"{kind}-{i}")


async def test_insights_overtake_samples_and_each_kind_keeps_its_order() -> None:
    q = InsightsFirstQueue(10)
    for e in (env("samples", 1), env("insights", 1), env("samples", 2), env("features", 1),
              env("insights", 2), env("samples", 3)):
        await q.put(e)
    got = [(await q.get()).batch_id for _ in range(q.qsize())]
    assert got == ["insights-1", "insights-2", "samples-1", "samples-2", "features-1", "samples-3"]
    assert q.empty()


async def test_the_bound_counts_both_lanes() -> None:
    q = InsightsFirstQueue(2)
    await q.put(env("samples", 1))
    await q.put(env("insights", 1))
    assert q.full()
    blocked = asyncio.create_task(q.put(env("insights", 2)))
    await asyncio.sleep(0)
    assert not blocked.done()  # waits for room like any asyncio.Queue
    assert (await q.get()).batch_id == "insights-1"
    await asyncio.wait_for(blocked, 5)
    assert [(await q.get()).batch_id for _ in range(2)] == ["insights-2", "samples-1"]
