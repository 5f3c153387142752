"""The site historian: the site's data stream into the central historian, acknowledged after commit.

A durable pull consumer (``site_historian.durable``) on ``FE_<SITE>``: every process that names the same
durable shares it as a work queue (each message goes to one of them), and a message one of them fetched but
did not acknowledge (it died, it is stuck) goes to another after ``ack_wait_s``. Each message is one batch;
it is written with :class:`~edge.sinks.historian.writer.HistorianWriter` (its ledger row and its rows in one
transaction, batch id ``<box>.<batch_id>``) and acknowledged only after that commit, or after the ledger
said it was already there: a redelivery is never stored twice. No spool: while the central historian is away
the messages stay in the stream (``nak`` with a delay) and nothing is acknowledged.

A batch the historian refuses for its content, or a payload that does not decode, is terminated (``term``:
never redelivered), counted ``rejected{reason}`` and reported as an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from edge.core.component import EventHook, Role
from edge.core.metrics import METRICS, Metrics
from edge.sinks.historian.sink import BatchWriter, is_unavailable
from edge.sinks.jetstream.codec import data_stream, data_wildcard, decode
from edge.sinks.jetstream.settings import SiteHistorianSettings
from edge.sinks.jetstream.shutdown import close_client
from edge.sinks.jetstream.streams import connect, describe, ensure_streams, stream_kwargs

log = logging.getLogger("edge.sinks.jetstream.site_historian")


class SiteHistorian:
    """Supervisor component (role ``source``: it takes data in and is stopped first)."""

    role: Role = "source"

    def __init__(self, settings: SiteHistorianSettings, writer: BatchWriter, *, site: str | None,
                 name: str = "site-historian", metrics: Metrics | None = None,
                 on_event: EventHook | None = None) -> None:
        self.settings = settings
        self.writer = writer
        self.site = settings.site or site or "site"
        self.name = name
        self.metrics = metrics or METRICS
        self.on_event = on_event
        self.nc: Client | None = None
        self.committed = 0
        self.duplicates = 0
        self._up = True
        self._stopping = asyncio.Event()

    def attach_app(self, info: Any) -> None:
        if self.settings.site is None and getattr(info, "site", None):
            self.site = info.site

    async def run(self) -> None:
        self._stopping = asyncio.Event()
        s = self.settings
        try:
            self.nc = await connect(s.servers, name=f"{self.name}-{self.site}")
            js = self.nc.jetstream(timeout=max(5.0, s.write_timeout_s))
            if s.ensure_streams:
                await ensure_streams(js, self.site, **stream_kwargs(s))
            config = ConsumerConfig(durable_name=s.durable, ack_policy=AckPolicy.EXPLICIT,
                                    deliver_policy=DeliverPolicy.ALL, ack_wait=s.ack_wait_s, max_deliver=-1,
                                    max_ack_pending=s.max_ack_pending,
                                    filter_subject=s.filter_subject or data_wildcard(self.site))
            sub = await js.pull_subscribe(config.filter_subject or "", durable=s.durable,
                                          stream=data_stream(self.site), config=config)
            while not self._stopping.is_set():
                try:
                    msgs = await sub.fetch(s.fetch_batch, timeout=1.0)
                except TimeoutError:
                    continue
                for i, msg in enumerate(msgs):
                    if self._stopping.is_set() or not await self._handle(msg):
                        for rest in msgs[i:]:  # back to the stream now, not after ack_wait
                            with contextlib.suppress(Exception):
                                await rest.nak(delay=s.retry_interval_s)
                        if not self._stopping.is_set():
                            with contextlib.suppress(TimeoutError):
                                await asyncio.wait_for(self._stopping.wait(), s.retry_interval_s)
                        break
        finally:
            if self.nc is not None:
                await close_client(self.nc, 3.0, drain=True)
                self.nc = None

    async def stop(self) -> None:
        self._stopping.set()

    async def _handle(self, msg: Msg) -> bool:
        """Store one message's batch and acknowledge it; False when the historian is away (not acked)."""
        try:
            envelope = decode(msg.data).envelope
        except Exception as exc:
            await self._reject(msg, "decode", exc)
            return True
        if msg.metadata.num_pending is not None:
            self.metrics.set_gauge("site_pending", msg.metadata.num_pending, stage=self.name)
        started = time.monotonic()
        try:
            fresh = await asyncio.wait_for(self.writer.write(envelope), self.settings.write_timeout_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_unavailable(exc):
                if isinstance(exc, TimeoutError):
                    close = getattr(self.writer, "close", None)
                    if close is not None:
                        with contextlib.suppress(Exception):
                            await asyncio.wait_for(close(), 2.0)
                self._mark(False, exc)
                return False
            await self._reject(msg, "write_error", exc)
            return True
        self._mark(True, None)
        await msg.ack()
        if fresh:
            self.committed += 1
            self.metrics.inc(self.name, "committed", envelope.num_rows)
        else:
            self.duplicates += 1
            self.metrics.inc(self.name, "duplicate", envelope.num_rows)
        self.metrics.set_gauge("site_write_ms", (time.monotonic() - started) * 1000, stage=self.name)
        return True

    async def _reject(self, msg: Msg, reason: str, exc: BaseException) -> None:
        detail = {"subject": msg.subject, "stream_seq": msg.metadata.sequence.stream,
                  "msg_id": (msg.headers or {}).get("Nats-Msg-Id"), "error": describe(exc)}
        log.error("site historian rejected a message", extra=detail)
        self.metrics.inc(self.name, "rejected", 1, reason=reason)
        self._event("runtime", "site historian rejected a message; it is not redelivered", detail)
        await msg.term()

    def _mark(self, up: bool, exc: BaseException | None) -> None:
        if up != self._up:
            self._up = up
            self.metrics.set_gauge("historian_up", int(up), stage=self.name)
            if up:
                self._event("spool", "central historian answers again", {})
            else:
                self._event("spool", "central historian unavailable; messages stay in the stream",
                            {"error": describe(exc) if exc else ""})

    def _event(self, kind: str, message: str, detail: dict[str, Any]) -> None:
        if self.on_event is not None:
            with contextlib.suppress(Exception):
                self.on_event(kind, message, {"component": self.name, **detail})
