"""Connecting to the site cluster; making sure the site's streams exist (created by whoever comes first)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from edge.sinks.jetstream.codec import data_stream, data_wildcard, fleet_stream, token
from edge.sinks.jetstream.shutdown import close_client

log = logging.getLogger("edge.sinks.jetstream")

Callback = Callable[[], Awaitable[None]]


async def connect(servers: Sequence[str], *, name: str, on_down: Callback | None = None,
                  on_up: Callback | None = None, connect_timeout_s: float = 2.0) -> Client:
    """A client that reconnects for ever (to any node of the cluster). Raises when no node answers now."""

    async def _error(exc: Exception) -> None:
        log.debug("nats client error", extra={"error": repr(exc)})

    async def _down() -> None:
        if on_down is not None:
            await on_down()

    async def _up() -> None:
        if on_up is not None:
            await on_up()

    return await nats.connect(servers=list(servers), name=name, allow_reconnect=True,
                              max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                              connect_timeout=connect_timeout_s, error_cb=_error, disconnected_cb=_down,
                              reconnected_cb=_up)


async def _ensure(js: JetStreamContext, config: StreamConfig) -> None:
    try:
        await js.stream_info(str(config.name))
        return
    except NotFoundError:
        pass
    try:
        await js.add_stream(config)
        log.info("stream created", extra={"stream": config.name, "replicas": config.num_replicas})
    except BadRequestError as exc:  # created meanwhile by another box (same config), or a real conflict
        if getattr(exc, "err_code", None) != 10058:
            raise


async def ensure_streams(js: JetStreamContext, site: str, *, replicas: int, max_age_s: float,
                         max_bytes: int, duplicate_window_s: float) -> None:
    """``FE_<SITE>`` (the data, limits retention) and ``FE_<SITE>_FLEET`` (the last heartbeat per box)."""
    await _ensure(js, StreamConfig(
        name=data_stream(site), subjects=[data_wildcard(site)], retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE, num_replicas=replicas, max_age=max_age_s, max_bytes=max_bytes,
        duplicate_window=duplicate_window_s, discard=DiscardPolicy.OLD))
    await _ensure(js, StreamConfig(
        name=fleet_stream(site), subjects=[f"fe.{token(site)}.fleet.>"], retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE, num_replicas=replicas, max_msgs_per_subject=1, max_age=7 * 86400.0,
        duplicate_window=duplicate_window_s))


async def ensure_streams_when_ready(servers: Sequence[str], sites: Sequence[str], *, timeout_s: float,
                                    replicas: int, max_age_s: float, max_bytes: int,
                                    duplicate_window_s: float) -> None:
    """Create the sites' streams as soon as the cluster can: a fresh cluster refuses replicated streams
    until it has elected a meta leader, so this retries until ``timeout_s`` and then raises the last error."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            nc = await connect(servers, name="streams-setup")
            try:
                for site in sites:
                    await ensure_streams(nc.jetstream(timeout=5), site, replicas=replicas,
                                         max_age_s=max_age_s, max_bytes=max_bytes,
                                         duplicate_window_s=duplicate_window_s)
                return
            finally:
                await close_client(nc, 2.0)
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def stream_kwargs(settings: Any) -> dict[str, Any]:
    return {"replicas": settings.replicas, "max_age_s": settings.max_age_s, "max_bytes": settings.max_bytes,
            "duplicate_window_s": settings.duplicate_window_s}
