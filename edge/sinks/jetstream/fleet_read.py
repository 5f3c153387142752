"""Reading the last heartbeat of every box of a site from ``FE_<SITE>_FLEET`` (one message per subject).

Here rather than in ``edge.app`` so that both ``edge fleet status`` and the TUI's fleet screen read the same
way (the TUI may not import ``edge.app``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edge.sinks.jetstream.codec import fleet_stream, heartbeat_wildcard
from edge.sinks.jetstream.fleet_table import BoxRow, Desired, rows
from edge.sinks.jetstream.shutdown import close_client
from edge.sinks.jetstream.streams import connect

READ_ATTEMPTS = 4


async def heartbeats(servers: Sequence[str], site: str, *, timeout_s: float = 5.0,
                     attempts: int = READ_ATTEMPTS) -> list[dict[str, Any]]:
    """The last heartbeat of each box (decoded JSON); empty when the stream does not exist yet."""
    from nats.errors import TimeoutError as NatsTimeout
    from nats.js.errors import NotFoundError

    # the client retries the servers for ever (what a box wants); a reader gives up after timeout_s
    try:
        nc = await asyncio.wait_for(connect(servers, name="edge-fleet", connect_timeout_s=timeout_s),
                                    timeout_s)
    except TimeoutError:
        raise ConnectionError(f"no NATS server answered in {timeout_s:g} s") from None
    try:
        js = nc.jetstream(timeout=timeout_s)
        # A request may time out while the cluster elects a new stream leader (a node just went away):
        # ask again a few times before giving up.
        for attempt in range(attempts):
            try:
                return await _read(js, site, NotFoundError)
            except (NatsTimeout, TimeoutError):
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(1.0 + attempt)
        return []
    finally:
        await close_client(nc, 2.0)


async def _read(js: Any, site: str, not_found: type[Exception]) -> list[dict[str, Any]]:
    stream = fleet_stream(site)
    try:
        info = await js.stream_info(stream, subjects_filter=heartbeat_wildcard(site))
    except not_found:
        return []
    subjects = sorted((info.state.subjects or {}).keys())
    out = []
    for subject in subjects:
        with contextlib.suppress(not_found):
            msg = await js.get_last_msg(stream, subject)
            with contextlib.suppress(ValueError):
                out.append(json.loads(msg.data or b"{}"))
    return out


@dataclass(frozen=True)
class FleetWatch:
    """Where a fleet view reads its heartbeats and what it holds them against: ``edge fleet status`` and
    the TUI's fleet screen both read through one of these (the app builds it, with the desired state)."""

    servers: tuple[str, ...]
    site: str
    desired: Desired
    silent_after: float = 3.0
    expected: tuple[str, ...] = ()

    async def boxes(self, now: float, *, timeout_s: float = 5.0,
                    attempts: int = READ_ATTEMPTS) -> list[BoxRow]:
        beats = await heartbeats(self.servers, self.site, timeout_s=timeout_s, attempts=attempts)
        return rows(beats, self.desired, now=now, silent_after=self.silent_after, expected=self.expected)
