"""Ending NATS clients and the tasks that use them within a bound, whatever the client does.

nats-py swallows a cancellation in places (its flush queue, ``drain``, ``close`` while it reconnects): a
task cancelled while inside the client may go on waiting, and ``asyncio.wait_for`` then waits for it for
ever, since it waits until the cancelled awaitable has ended. So nothing here awaits a cancellation: it
waits with ``asyncio.wait`` (which returns at its timeout), and a task still running then is left
cancelled, kept referenced, and named in the log, while shutdown goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("edge.sinks.jetstream")

_LEFT_RUNNING: set[asyncio.Task[Any]] = set()  # held so that a task left behind is not collected mid-run


async def end_tasks(tasks: Iterable[asyncio.Task[Any]], timeout_s: float, *, cancel: bool = True) -> bool:
    """Cancel the tasks (unless ``cancel`` is False) and wait up to ``timeout_s`` for them to end; True
    when all did. Their exceptions are retrieved (logged at debug), not raised."""
    tasks = list(tasks)
    if cancel:
        for task in tasks:
            task.cancel()
    if not tasks:
        return True
    done, pending = await asyncio.wait(tasks, timeout=timeout_s)
    for task in done:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            log.debug("task ended with an error", extra={"task": task.get_name(), "error": repr(error)})
    for task in pending:
        task.cancel()
        _LEFT_RUNNING.add(task)
        task.add_done_callback(_LEFT_RUNNING.discard)
        log.warning("task did not end in time; left cancelled",
                    extra={"task": task.get_name(), "s": timeout_s})
    return not pending


async def close_client(nc: Any, timeout_s: float, *, drain: bool = False) -> bool:
    """Close (or drain, then close) a NATS client within ``timeout_s``; True when it closed in time."""
    task = asyncio.create_task(nc.drain() if drain else nc.close(), name="nats-close")
    return await end_tasks([task], timeout_s, cancel=False)
