"""The box's JetStream sink: every batch of the kinds it forwards, published to the site stream.

Delivery: the pipeline tees each historian-bound envelope (``edge.app.pipeline``): one copy to the local
historian, one to this sink's ``inbox``, their acknowledgements joined. So a source acknowledges its input
only once the local historian committed (or spooled) it **and** JetStream acknowledged the publish (or this
sink's own spool took it). Publishes carry ``Nats-Msg-Id = <box>.<batch_id>``: a retry inside the stream's
de-duplication window is stored once, and the central ledger catches anything later.

While the cluster is away (no connection, a publish error or timeout, no stream leader) envelopes go to a
:class:`~edge.sinks.historian.spool.Spool` of its own (``jetstream.spool_dir``); a replay task publishes the
spool oldest first once a probe succeeds. Up to ``in_flight`` publishes await their acks at once; what
waits in the inbox is taken up to ``ENCODE_BATCH`` envelopes at a time and encoded in one worker-thread hop
(one hop per envelope left the loop waiting on the thread).

Suppressed repeats (migration 0045) must not reach MES this way either: the tee hands this sink the insights
before the historian's trigger has flagged them, so the sink asks the historian the same question the
trigger asks, through ``insight_suppression_of()`` (migration 0046, the rule's one place), and publishes the
batch without the rows it names (the box's historian keeps them, flagged). Shadow rows never reach the tee
(``edge.app.pipeline``). When the historian cannot answer in time the batch goes out whole: the site must
not lose alarms because the box's database is away (counted ``suppression_unchecked``, and an event).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import pyarrow as pa
from nats.aio.client import Client
from nats.js import JetStreamContext

from edge.core.component import EventHook, Role
from edge.core.envelope import Envelope
from edge.core.metrics import METRICS, Metrics
from edge.core.settings import SpoolSettings
from edge.sinks.historian.spool import Spool, SpoolFull
from edge.sinks.jetstream.codec import data_subject, encode
from edge.sinks.jetstream.settings import JetStreamSettings
from edge.sinks.jetstream.shutdown import close_client, end_tasks
from edge.sinks.jetstream.streams import connect, describe, ensure_streams, stream_kwargs
from edge.sinks.jetstream.suppressions import HistorianSuppressions

log = logging.getLogger("edge.sinks.jetstream")

Wire = tuple[bytes, dict[str, str]]  # payload and headers of one message
ENCODE_BATCH = 16  # envelopes taken from the inbox at once and encoded in one worker-thread hop


class JetStreamSink:
    """Supervisor component (role ``sink``) with its own bounded ``inbox``; ``tap = True`` asks the pipeline
    for a copy of every historian-bound envelope."""

    role: Role = "sink"
    tap = True

    def __init__(self, settings: JetStreamSettings, *, box: str, site: str | None, spool: SpoolSettings,
                 inbox_batches: int = 64, name: str = "jetstream", metrics: Metrics | None = None,
                 on_event: EventHook | None = None,
                 suppressions: HistorianSuppressions | None = None) -> None:
        self.settings = settings
        self.suppressions = suppressions  # None: no historian to ask (insights go out as they come)
        self.name = name
        self.box = box
        self.site = settings.site or site or "site"
        self.inbox: asyncio.Queue[Envelope] = asyncio.Queue(inbox_batches)
        self.metrics = metrics or METRICS
        self.on_event = on_event
        self.spool = Spool(spool, metrics=self.metrics, stage=f"{name}-spool")
        self.kinds = frozenset(settings.kinds)
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self.last_error: str | None = None
        self.published = 0
        self._up = False
        self._stopping = asyncio.Event()
        self._ending = False  # the helpers' own exit: nats-py may swallow the cancellation meant for them
        self._replay_wake = asyncio.Event()
        self._sem = asyncio.Semaphore(settings.in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._replay_pos: tuple[int, int] = (0, 0)

    def attach_app(self, info: Any) -> None:
        if self.settings.site is None and getattr(info, "site", None):
            self.site = info.site

    @property
    def up(self) -> bool:
        return self._up

    # -- component -------------------------------------------------------------------------------------

    async def run(self) -> None:
        self._stopping = asyncio.Event()
        self._ending = False
        await asyncio.to_thread(self.spool.open)
        helpers = [asyncio.create_task(self._connect_loop(), name=f"{self.name}-connect"),
                   asyncio.create_task(self._replay_loop(), name=f"{self.name}-replay")]
        try:
            while not (self._stopping.is_set() and self.inbox.empty()):
                try:  # the fast path first: wait_for costs a task per call
                    envelope = self.inbox.get_nowait()
                except asyncio.QueueEmpty:
                    try:
                        envelope = await asyncio.wait_for(self.inbox.get(), 0.1)
                    except TimeoutError:
                        continue
                envelopes = [envelope]
                while len(envelopes) < ENCODE_BATCH and not self.inbox.empty():
                    envelopes.append(self.inbox.get_nowait())
                try:
                    await self._offer(envelopes)
                finally:
                    for _ in envelopes:
                        self.inbox.task_done()
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=self.settings.publish_timeout_s + 1)
        finally:
            self._ending = True
            await end_tasks(helpers, 2.0)
            if self.nc is not None:
                await close_client(self.nc, 2.0)
            self.nc, self.js, self._up = None, None, False
            await asyncio.to_thread(self.spool.close)
            if self.suppressions is not None:
                await self.suppressions.close()

    async def stop(self) -> None:
        self._stopping.set()

    # -- connection ------------------------------------------------------------------------------------

    async def _connect_loop(self) -> None:
        while self.nc is None and not self._ending:
            nc = None
            try:
                nc = await connect(self.settings.servers, name=f"{self.box}-jetstream",
                                   on_down=self._on_disconnect, on_up=self._on_reconnect)
                js = nc.jetstream(timeout=self.settings.publish_timeout_s)
                if self.settings.ensure_streams:
                    await ensure_streams(js, self.site, **stream_kwargs(self.settings))
            except Exception as exc:
                if nc is not None:  # connected but the streams are not there: a client reconnecting for ever
                    await close_client(nc, 2.0)
                self._mark_down(exc)
                await asyncio.sleep(self.settings.retry_interval_s)
                continue
            if self._ending:  # connected as the sink ended: nobody else would close it
                await close_client(nc, 2.0)
                return
            self.nc, self.js = nc, js
            self._mark_up()

    async def _on_disconnect(self) -> None:
        if self._stopping.is_set() and self.inbox.empty() and not self._tasks:
            return  # our own close at stop
        self._mark_down(ConnectionError("disconnected from the NATS cluster"))

    async def _on_reconnect(self) -> None:
        self._replay_wake.set()  # the replay task probes at once

    def _mark_down(self, exc: BaseException) -> None:
        self.last_error = describe(exc)
        if self._up:
            self._up = False
            self.metrics.set_gauge("jetstream_up", 0, stage=self.name)
            log.warning("JetStream unavailable; spooling", extra={"error": self.last_error})
            self._event("JetStream unavailable; spooling", {"error": self.last_error})

    def _mark_up(self) -> None:
        if not self._up:
            self._up = True
            self.metrics.set_gauge("jetstream_up", 1, stage=self.name)
            self._event("JetStream answers", {"spool_rows": self.spool.rows})
            self._replay_wake.set()

    def _event(self, message: str, detail: dict[str, Any]) -> None:
        if self.on_event is not None:
            with contextlib.suppress(Exception):
                self.on_event("connection", message, {"sink": self.name, **detail})

    # -- live path -------------------------------------------------------------------------------------

    async def _offer(self, envelopes: list[Envelope]) -> None:
        live = []
        for envelope in envelopes:
            if envelope.kind not in self.kinds:
                envelope.acknowledge()
                continue
            self.metrics.inc(self.name, "received", envelope.num_rows)
            if envelope.kind == "insights" and self.suppressions is not None:
                envelope = await self._without_suppressed(envelope)
                if envelope.num_rows == 0:
                    envelope.acknowledge()
                    continue
            live.append(envelope)
        if not live:
            return
        if not (self._up and self.js is not None):
            for envelope in live:
                await self._to_spool(envelope)
            return
        encoded = await self._encode(live)
        for envelope, wire in zip(live, encoded, strict=True):
            await self._sem.acquire()
            task = asyncio.create_task(self._publish_live(envelope, wire))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _without_suppressed(self, envelope: Envelope) -> Envelope:
        """The envelope without its suppressed rows (same batch id and acks); whole if nobody can tell."""
        assert self.suppressions is not None
        try:
            drop = await self.suppressions.suppressed(envelope.batch)
        except Exception as exc:
            self.metrics.inc(self.name, "suppression_unchecked", envelope.num_rows)
            log.warning("suppressions not checked; insights published whole", extra={"error": describe(exc)})
            self._event("suppressions not checked; insights published whole", {"error": describe(exc)})
            return envelope
        if not drop:
            return envelope
        self.metrics.inc(self.name, "suppressed", len(drop))
        gone = set(drop)
        keep = pa.array([i not in gone for i in range(envelope.num_rows)])
        return Envelope(envelope.kind, envelope.batch.filter(keep), envelope.batch_id, envelope.acks)

    async def _encode(self, envelopes: list[Envelope]) -> list[Wire]:
        """Payloads and headers of the envelopes. Compressing releases the GIL: a worker thread encodes
        them all at once (one hop for the lot) while the loop goes on with the publishes in flight."""
        compression = self.settings.compression
        if compression == "none" or sum(e.num_rows for e in envelopes) < 256:
            return [encode(e, self.box, compression=compression) for e in envelopes]
        return await asyncio.to_thread(lambda: [encode(e, self.box, compression=compression)
                                                for e in envelopes])

    async def _publish_live(self, envelope: Envelope, wire: Wire) -> None:
        try:
            await self._publish(envelope, wire)
        except Exception as exc:
            self._mark_down(exc)
            await self._to_spool(envelope)
        else:
            envelope.acknowledge()
        finally:
            self._sem.release()

    async def _publish(self, envelope: Envelope, wire: Wire | None = None) -> None:
        js = self.js
        if js is None:
            raise ConnectionError("not connected")
        payload, headers = wire if wire is not None else (await self._encode([envelope]))[0]
        subject = data_subject(self.site, self.settings.line, self.box, envelope.kind)
        ack = await js.publish(subject, payload, timeout=self.settings.publish_timeout_s, headers=headers)
        self.metrics.inc(self.name, "duplicate" if ack.duplicate else "published", envelope.num_rows)
        self.published += 1

    async def _to_spool(self, envelope: Envelope) -> None:
        while True:
            try:
                await asyncio.to_thread(self.spool.append, envelope)
            except SpoolFull:
                if self._stopping.is_set():  # left unacknowledged: the source delivers it again
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.settings.retry_interval_s)
                if self._up:
                    try:
                        await self._publish(envelope)
                    except Exception as exc:
                        self._mark_down(exc)
                        continue
                    envelope.acknowledge()
                    return
                continue
            envelope.acknowledge()
            self._replay_wake.set()
            return

    # -- replay ----------------------------------------------------------------------------------------

    async def _replay_loop(self) -> None:
        while not self._ending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._replay_wake.wait(), self.settings.retry_interval_s)
            self._replay_wake.clear()
            while self.js is not None:
                segment = await asyncio.to_thread(self.spool.oldest)
                if segment is None:
                    break
                envelopes = await asyncio.to_thread(segment.read)
                start = self._replay_pos[1] if self._replay_pos[0] == segment.seq else 0
                done = True
                for i in range(start, len(envelopes)):
                    started = time.monotonic()
                    try:
                        await self._publish(envelopes[i])
                    except Exception as exc:
                        self._mark_down(exc)
                        self._replay_pos = (segment.seq, i)
                        done = False
                        break
                    self._mark_up()
                    self.metrics.inc(self.name, "replayed", envelopes[i].num_rows)
                    log.debug("replayed", extra={"s": time.monotonic() - started})
                if not done:
                    break
                await asyncio.to_thread(self.spool.remove, segment)
                self._replay_pos = (0, 0)
            connected = self.nc is not None and self.nc.is_connected
            if self.js is not None and connected and self.spool.empty() and not self._up:
                self._mark_up()  # nothing to probe with: the connection itself says the cluster is back
