"""The box's heartbeat: who it is, what config and models it runs, how its components and spools are.

Published every ``heartbeat_interval_s`` as JSON to ``fe.<site>.fleet.heartbeat.<box>`` (stream
``FE_<SITE>_FLEET`` keeps the last one per box). Fields::

    {"box", "site", "version", "ts" (unix s), "seq", "started", "interval_s",
     "config_sha256", "config_body" (the rendered config, secrets by reference; null when not carried),
     "models": [{"name", "version"}], "components": {name: {"healthy", "restarts", "last_error"}},
     "spool": {"historian": {"rows", "bytes"}, "jetstream": {"rows", "bytes"}},
     "jetstream_up", "last_error"}

What only the top knows (the rendered config, the supervisor, the models) comes through
:meth:`Heartbeat.attach_app` with an :class:`AppInfo`; without it the heartbeat still says who and how.
A heartbeat is never spooled: one that cannot be published is skipped (silence is the signal).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client

from edge.core.component import Role
from edge.core.metrics import METRICS, Metrics
from edge.sinks.jetstream.codec import heartbeat_subject
from edge.sinks.jetstream.settings import JetStreamSettings
from edge.sinks.jetstream.shutdown import close_client
from edge.sinks.jetstream.streams import connect, describe, ensure_streams, stream_kwargs

log = logging.getLogger("edge.sinks.jetstream.heartbeat")


@dataclass
class AppInfo:
    """What the app tells the heartbeat (``edge.app.fleet.info.app_info`` builds it)."""

    box: str
    site: str
    version: str
    config_sha256: str
    config_body: str
    components: Callable[[], dict[str, dict[str, Any]]] = field(default=lambda: {})
    models: Callable[[], list[dict[str, str]]] = field(default=lambda: [])


class Heartbeat:
    """Supervisor component (role ``sink``): one heartbeat every ``heartbeat_interval_s``."""

    role: Role = "sink"

    def __init__(self, settings: JetStreamSettings, *, box: str, site: str | None, sink: Any = None,
                 name: str = "jetstream-heartbeat", metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.name = name
        self.box = box
        self.site = settings.site or site or "site"
        self.sink = sink  # the JetStreamSink: its spool and state
        self.metrics = metrics or METRICS
        self.info: AppInfo | None = None
        self.nc: Client | None = None
        self.seq = 0
        self.started = time.time()
        self._stopping = asyncio.Event()

    def attach_app(self, info: AppInfo) -> None:
        self.info = info
        if self.settings.site is None and info.site:
            self.site = info.site

    def payload(self) -> dict[str, Any]:
        info = self.info
        m = self.metrics
        spool: dict[str, dict[str, float]] = {
            "historian": {"rows": m.gauge("spool_rows", "spool"), "bytes": m.gauge("spool_bytes", "spool")}}
        last_error = None
        if self.sink is not None:
            spool["jetstream"] = {"rows": self.sink.spool.rows, "bytes": self.sink.spool.bytes}
            last_error = self.sink.last_error
        components = info.components() if info else {}
        errors = [c["last_error"] for c in components.values() if c.get("last_error")]
        return {
            "box": self.box, "site": self.site, "version": info.version if info else "",
            "ts": time.time(), "seq": self.seq, "started": self.started,
            "interval_s": self.settings.heartbeat_interval_s,
            "config_sha256": info.config_sha256 if info else "",
            "config_body": info.config_body if info and self.settings.heartbeat_config_body else None,
            "models": info.models() if info else [], "components": components, "spool": spool,
            "jetstream_up": bool(self.sink.up) if self.sink is not None else None,
            "last_error": last_error or (errors[-1] if errors else None),
        }

    async def beat(self) -> bool:
        """Publish one heartbeat; False when the cluster did not take it."""
        if self.nc is None:
            try:
                self.nc = await connect(self.settings.servers, name=f"{self.box}-heartbeat")
                if self.settings.ensure_streams:
                    await ensure_streams(self.nc.jetstream(timeout=self.settings.publish_timeout_s),
                                         self.site, **stream_kwargs(self.settings))
            except Exception as exc:
                log.debug("heartbeat: no cluster", extra={"error": describe(exc)})
                if self.nc is not None:
                    await close_client(self.nc, 2.0)
                self.nc = None
                return False
        self.seq += 1
        body = json.dumps(self.payload(), default=str, separators=(",", ":")).encode()
        try:
            await self.nc.jetstream().publish(heartbeat_subject(self.site, self.box), body,
                                              timeout=min(self.settings.publish_timeout_s,
                                                          self.settings.heartbeat_interval_s))
        except Exception as exc:
            log.debug("heartbeat not taken", extra={"error": describe(exc)})
            return False
        self.metrics.inc(self.name, "published")
        return True

    async def run(self) -> None:
        self._stopping = asyncio.Event()
        try:
            while not self._stopping.is_set():
                await self.beat()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.settings.heartbeat_interval_s)
        finally:
            if self.nc is not None:
                await close_client(self.nc, 2.0)
                self.nc = None

    async def stop(self) -> None:
        self._stopping.set()
