"""The small types every area shares, defined once: a component's role and protocol, emit, the event hook."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from edge.core.envelope import Envelope

Role = Literal["source", "stage", "sink"]

# Hands an envelope to the next stage; awaiting it waits for room, so a slow consumer slows its producers.
Emit = Callable[["Envelope"], Awaitable[None]]

# Records an event (kind, message, detail) from any thread; the pipeline turns them into EVENTS rows.
EventHook = Callable[[str, str, dict[str, Any]], None]


class Component(Protocol):
    """A long-running part of the pipeline.

    ``run`` works until ``stop`` is called, then returns after finishing what it holds (a stage drains its
    input queue, a sink flushes). An exception from ``run`` is a failure and the supervisor restarts it.
    """

    name: str
    role: Role

    async def run(self) -> None: ...

    async def stop(self) -> None: ...
