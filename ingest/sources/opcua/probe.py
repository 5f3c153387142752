"""Cheap checks around a session: a TCP probe while waiting to reconnect, and the endpoint URL's path.

``wait_retry`` waits out a reconnect back-off but opens a TCP connection to the server every ``PROBE_S``
seconds; when the server did not answer and now does, it returns at once, so a server that comes back after
an outage of any length is tried within ``PROBE_S`` (plus a connect) instead of after a back-off that has
grown to ``reconnect_max_s``. ``check_endpoint_path`` compares the configured endpoint's path with the
endpoints the server lists (GetEndpoints): many servers ignore the path, others refuse it or serve another
address space there; either way a differing path is named in a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from urllib.parse import urlparse

from asyncua.client.client import Client

PROBE_S = 2.0  # at most this long between probes while the server is away
PROBE_TIMEOUT_S = 1.5


def host_port(endpoint: str) -> tuple[str, int]:
    u = urlparse(endpoint)
    return u.hostname or "127.0.0.1", u.port or 4840


async def server_answers(endpoint: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the endpoint's host and port opens within ``timeout_s``."""
    host, port = host_port(endpoint)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def wait_retry(endpoint: str, delay_s: float, stop: asyncio.Event, *, probe: bool = True,
                     interval_s: float = PROBE_S) -> bool:
    """Wait ``delay_s`` (or until ``stop``). With ``probe``, return True early when the server, away at an
    earlier probe, answers again; False when the whole delay passed (or stop was set)."""
    deadline = time.monotonic() + delay_s
    was_away = False
    while not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        t0 = time.monotonic()
        if probe and remaining > 0.05:
            up = await server_answers(endpoint, min(PROBE_TIMEOUT_S, interval_s))
            if up and was_away:
                return True
            was_away = was_away or not up
        pause = min(deadline - time.monotonic(), max(0.0, interval_s - (time.monotonic() - t0)))
        if pause > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)
    return False


def _path(url: str) -> str:
    return urlparse(url).path.rstrip("/")


async def check_endpoint_path(client: Client, endpoint: str) -> str | None:
    """A warning when the configured endpoint's path is not the path of any endpoint the server lists."""
    try:
        listed = await asyncio.wait_for(client.get_endpoints(), 5.0)
    except Exception:  # a check only: a server that does not answer GetEndpoints is not wrong
        return None
    urls = sorted({e.EndpointUrl for e in listed if e.EndpointUrl})
    if not urls or any(_path(u) == _path(endpoint) for u in urls):
        return None
    return (f"endpoint {endpoint}: its path {urlparse(endpoint).path or '/'!r} is not that of any endpoint "
            f"the server lists ({', '.join(urls)}); this server answered anyway, another may refuse it or "
            "serve something else there: use the listed URL")
