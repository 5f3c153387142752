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
    from nats.js.errors import NotFoundError

    nc = await connect(servers, name="edge-fleet", connect_timeout_s=timeout_s)
    try:
        js = nc.jetstream(timeout=timeout_s)
        stream = fleet_stream(site)
        try:
            info = await js.stream_info(stream, subjects_filter=heartbeat_wildcard(site))
        except NotFoundError:
            return []
        subjects = sorted((info.state.subjects or {}).keys())
        out = []
        for subject in subjects:
            with contextlib.suppress(NotFoundError):
                msg = await js.get_last_msg(stream, subject)
                with contextlib.suppress(ValueError):
                    out.append(json.loads(msg.data or b"{}"))
        return out
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.close(), 2.0)
