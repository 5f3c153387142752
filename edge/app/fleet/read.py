"""Reading the last heartbeat of every box of a site from ``FE_<SITE>_FLEET`` (one message per subject)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from typing import Any

from edge.sinks.jetstream.codec import fleet_stream, heartbeat_wildcard
from edge.sinks.jetstream.streams import connect


async def heartbeats(servers: Sequence[str], site: str, *, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """The last heartbeat of each box (decoded JSON); empty when the stream does not exist yet."""
    from nats.errors import TimeoutError as NatsTimeout
    from nats.js.errors import NotFoundError

    nc = await connect(servers, name="edge-fleet", connect_timeout_s=timeout_s)
    try:
        js = nc.jetstream(timeout=timeout_s)
        # A request may time out while the cluster elects a new stream leader (a node just went away):
        # ask again a few times before giving up.
        for attempt in range(READ_ATTEMPTS):
            try:
                return await _read(js, site, NotFoundError)
            except (NatsTimeout, TimeoutError):
                if attempt == READ_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(1.0 + attempt)
        return []
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.close(), 2.0)


READ_ATTEMPTS = 4


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
