"""Shutdown within a bound even when what is shut down swallows its cancellation (nats-py may)."""

from __future__ import annotations

import asyncio
import time

from edge.sinks.jetstream.shutdown import close_client, end_tasks


async def _stubborn(release: asyncio.Event) -> None:
    """Goes on after each cancellation, as a coroutine inside nats-py's flush queue or close may, until
    ``release`` is set (so that the test's loop can end)."""
    while not release.is_set():
        try:
            await release.wait()
        except asyncio.CancelledError:
            continue


async def test_a_task_that_swallows_its_cancellation_does_not_hold_up_shutdown() -> None:
    release = asyncio.Event()
    task = asyncio.create_task(_stubborn(release))
    await asyncio.sleep(0)
    started = time.monotonic()
    assert await end_tasks([task], 0.3) is False
    assert time.monotonic() - started < 2.0
    assert not task.done()  # left behind, cancelled again, still referenced
    # what asyncio.wait_for does with the same task: it waits for the cancelled task to end, for ever
    other = asyncio.create_task(_stubborn(release))
    await asyncio.sleep(0)
    hung = asyncio.create_task(asyncio.wait_for(other, 0.1))
    done, _ = await asyncio.wait([hung], timeout=1.0)
    assert not done
    release.set()
    await asyncio.wait([task, other, hung], timeout=2.0)
    assert task.done() and other.done() and hung.done()


async def test_tasks_that_end_are_reported_ended_and_their_errors_not_raised() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    tasks = [asyncio.create_task(asyncio.sleep(30)), asyncio.create_task(fails())]
    assert await end_tasks(tasks, 2.0) is True
    assert all(t.done() for t in tasks)


class _ClientWhoseCloseHangs:
    """Stands in for a NATS client stuck in ``close`` (the real one needs a wedged flush queue)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def close(self) -> None:
        await _stubborn(self.release)


async def test_a_client_close_that_hangs_is_given_up_on_in_time() -> None:
    client = _ClientWhoseCloseHangs()
    started = time.monotonic()
    assert await close_client(client, 0.3) is False
    assert time.monotonic() - started < 2.0
    client.release.set()
    await asyncio.sleep(0.05)
