"""Insights to MES: drains the historian's ``insights_outbox`` to MQTT, QoS 1, in order, retained.

Each insight row inserted into ``insights`` is copied into ``insights_outbox`` by a trigger in the same
transaction (migration 0040). This component reads the unpublished rows in ``seq`` order (which is insert
order, so the order per equipment), publishes each with QoS 1 and ``retain=True`` (the broker keeps the latest
insight per equipment topic for late subscribers), and marks a row ``published_at`` only when the broker's
PUBACK for its message id arrives (paho ``on_publish``). It reads when woken: by a commit of insights (the
historian writer's ``pg_notify`` on ``INSIGHTS_CHANNEL``, heard on a second, LISTEN connection), by a PUBACK,
or, failing both, every ``poll_interval_s`` (the fallback when the LISTEN connection is down, or for rows
another writer inserted without notifying).

A broker outage delays insights, never loses them: on a disconnect the client is thrown away with whatever it
had in flight, and after the reconnect publishing starts again at the oldest unmarked row, in order. Delivery
is at least once: a message the broker took just before the connection dropped, without its PUBACK reaching
us, is published again (MES deduplicates on ``insight_id``).

Topics and payloads come from ``edge.sinks.outbox.encoder.insight_payloads`` (topic
``[prefix/]<asset path>/_insights/<model>``, one ``(topic, bytes)`` per insight row, in order); if that module
is missing or fails on a row, from :func:`default_encode` (``{prefix}insights/{asset}``, the row as JSON).

Wiring::

    pub = OutboxPublisher(config.historian.dsn, config.broker, password=config.historian.password)
    supervisor.add(pub)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import orjson
import paho.mqtt.client as paho
import psycopg
import pyarrow as pa

from edge.core.component import Role
from edge.core.datamodel import INSIGHTS
from edge.core.metrics import METRICS, Metrics
from edge.core.mqtt import connect, make_client
from edge.core.settings import BrokerSettings, SecretRef
from edge.sinks.historian.writer import INSIGHTS_CHANNEL
from edge.sinks.outbox.encoder import insight_payloads, with_explanation

log = logging.getLogger("edge.sinks.outbox")

Encode = Callable[[list[dict[str, Any]]], list[tuple[str, bytes]]]

SELECT_PENDING = """
    SELECT seq, insight_id, asset, payload FROM insights_outbox
    WHERE published_at IS NULL ORDER BY seq LIMIT %s
"""
MARK_PUBLISHED = """
    UPDATE insights_outbox SET published_at = now(), last_attempt_at = now(),
           publish_attempts = publish_attempts + 1
    WHERE seq = ANY(%s)
"""


def close_client(client: paho.Client, disconnected: threading.Event, timeout_s: float = 2.0) -> None:
    """End a ``loop_start`` client cleanly, in paho's documented order: DISCONNECT first (the network thread
    sends it, closes the socket and sets ``disconnected`` from ``on_disconnect``), wait for that at most
    ``timeout_s``, then stop the network thread. With ``loop_stop`` first, the DISCONNECT depends on
    ``disconnect()`` writing it on the caller's thread after the loop ended (paho 2.2 does, but a partial
    write is never finished): the broker may then see the socket close without it, an unclean close that
    fires the client's will."""
    try:
        if client.disconnect() == paho.MQTT_ERR_SUCCESS:
            disconnected.wait(timeout_s)
    except Exception:  # an already broken socket: nothing to say goodbye on
        log.debug("disconnect failed", exc_info=True)
    finally:
        client.loop_stop()


async def connect_historian(dsn: str, password: SecretRef | None) -> psycopg.AsyncConnection[Any]:
    """The autocommit connection an outbox reader (this publisher, the Sparkplug one) keeps for its run."""
    kwargs: dict[str, Any] = {"autocommit": True}
    if password is not None:
        kwargs["password"] = password.resolve()
    return await psycopg.AsyncConnection.connect(dsn, **kwargs)


async def pause_before_reconnect(stop: asyncio.Event, delay_s: float) -> None:
    """Wait ``delay_s`` before the next broker session; returns at once when stopping."""
    if not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay_s)


def default_encode(prefix: str) -> Encode:
    def encode(rows: list[dict[str, Any]]) -> list[tuple[str, bytes]]:
        return [(f"{prefix}insights/{row.get('asset') or 'unknown'}", orjson.dumps(row)) for row in rows]

    return encode


def rows_to_insights(rows: Sequence[dict[str, Any]]) -> pa.RecordBatch:
    """The outbox's JSON rows as an INSIGHTS batch (timestamps parsed back from ISO text)."""
    cols: dict[str, list[Any]] = {f.name: [] for f in INSIGHTS}
    for row in rows:
        for f in INSIGHTS:
            v = row.get(f.name)
            if v is not None and pa.types.is_timestamp(f.type) and isinstance(v, str):
                v = datetime.fromisoformat(v)
            elif v is not None and f.name in ("top_features", "context") and not isinstance(v, str):
                v = orjson.dumps(v).decode()
            cols[f.name].append(v)
    return with_explanation(pa.RecordBatch.from_pydict(cols, schema=INSIGHTS), rows)


def insight_json_encode(prefix: str) -> Encode:
    """The MES encoding of :mod:`edge.sinks.outbox.encoder`; rows it cannot encode go out as plain JSON."""
    fallback = default_encode(prefix)

    def encode(rows: list[dict[str, Any]]) -> list[tuple[str, bytes]]:
        try:
            out = insight_payloads(rows_to_insights(rows), prefix)
        except Exception:
            log.exception("insight_payloads failed; publishing the rows as plain JSON")
            return fallback(rows)
        if len(out) != len(rows):  # we mark rows by position: anything else cannot be tracked
            log.error("insight_payloads gave %d messages for %d rows; publishing plain JSON",
                      len(out), len(rows))
            return fallback(rows)
        return out

    return encode


class OutboxPublisher:
    """Supervisor component (role ``sink``): the outbox to MQTT. See the module docstring."""

    role: Role = "sink"

    def __init__(self, dsn: str, broker: BrokerSettings, *, name: str = "outbox-publisher",
                 password: SecretRef | None = None, url: str | None = None, client_id: str | None = None,
                 encode: Encode | None = None, window: int = 200, poll_interval_s: float = 0.2,
                 reconnect_delay_s: float = 1.0, retain: bool = True, metrics: Metrics | None = None,
                 close_timeout_s: float = 2.0, listen: bool = True) -> None:
        self.name = name
        self.dsn = dsn
        self.password = password
        self.broker = broker
        self.url = url
        self.client_id = client_id or f"{broker.client_id or 'factory-edge'}-outbox-{uuid.uuid4().hex[:6]}"
        self.encode = encode or insight_json_encode(broker.topic_prefix)
        self.window = window
        self.poll_interval_s = poll_interval_s
        self.reconnect_delay_s = reconnect_delay_s
        self.retain = retain
        self.metrics = metrics or METRICS
        self.close_timeout_s = close_timeout_s
        self.stage = name
        self._stop = asyncio.Event()
        self.connected = False
        self.listen = listen
        self.listening = asyncio.Event()  # set while the LISTEN connection is up
        self.notifications = 0
        self._wake: asyncio.Event | None = None  # the current broker session's wake-up

    async def stop(self) -> None:
        self._stop.set()
        if self._wake is not None:  # do not sit out the poll interval
            self._wake.set()

    async def run(self) -> None:
        self._stop = asyncio.Event()
        listener = asyncio.create_task(self._listen()) if self.listen else None
        try:
            async with await connect_historian(self.dsn, self.password) as conn:
                while not self._stop.is_set():
                    await self._session(conn)
                    await pause_before_reconnect(self._stop, self.reconnect_delay_s)
        finally:
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener

    async def _listen(self) -> None:
        """Wake the publishing loop on each commit of insights (the historian writer's ``pg_notify``) rather
        than at its next poll. On its own connection, as notifications arrive only on a connection that
        reads; when that connection fails, the poll carries on alone until it is back."""
        while not self._stop.is_set():
            try:
                async with await connect_historian(self.dsn, self.password) as lconn:
                    await lconn.execute(f"LISTEN {INSIGHTS_CHANNEL}")
                    self.listening.set()
                    async for _ in lconn.notifies():
                        self.notifications += 1
                        if self._wake is not None:
                            self._wake.set()
            except psycopg.Error as exc:
                log.warning("outbox LISTEN connection failed (%s); polling every %.1f s until it is back",
                            exc, self.poll_interval_s)
            finally:
                self.listening.clear()
            await pause_before_reconnect(self._stop, self.reconnect_delay_s)

    async def _session(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """One broker connection: publish until it drops (or we stop); then the client is thrown away."""
        loop = asyncio.get_running_loop()
        connected = asyncio.Event()
        lost = asyncio.Event()
        acked: list[int] = []
        wake = self._wake = asyncio.Event()
        lock = threading.Lock()
        disconnected = threading.Event()  # set on the network thread once the socket is closed

        def on_connect(client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
            if not getattr(reason, "is_failure", False):
                loop.call_soon_threadsafe(connected.set)

        def on_disconnect(client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
            disconnected.set()
            loop.call_soon_threadsafe(lost.set)
            loop.call_soon_threadsafe(wake.set)

        def on_publish(client: paho.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
            with lock:
                acked.append(mid)
            loop.call_soon_threadsafe(wake.set)

        client, address, props = make_client(self.broker, client_id=self.client_id, clean_start=True,
                                             url=self.url)
        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_publish = on_publish
        client.max_inflight_messages_set(self.window)
        client.max_queued_messages_set(0)
        inflight: dict[int, int] = {}  # mid -> outbox seq
        try:
            connect(client, address, props, clean_start=True, keepalive=self.broker.keepalive_s)
            client.loop_start()
            waiter = asyncio.create_task(connected.wait())
            stopper = asyncio.create_task(self._stop.wait())
            try:
                await asyncio.wait({waiter, stopper, asyncio.create_task(lost.wait())},
                                   timeout=10, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                stopper.cancel()
            if not connected.is_set() or lost.is_set():
                return
            self.connected = True
            log.info("outbox publisher connected", extra={"broker": f"{address.host}:{address.port}"})
            while not lost.is_set():
                wake.clear()  # before reading: a PUBACK or a commit after this point wakes the next wait
                with lock:
                    done, acked[:] = list(acked), []
                seqs = [inflight.pop(mid) for mid in done if mid in inflight]
                if seqs:
                    await conn.execute(MARK_PUBLISHED, (seqs,))
                    self.metrics.inc(self.stage, "published", len(seqs))
                if self._stop.is_set() and not inflight:
                    return
                if not self._stop.is_set() and len(inflight) < self.window:
                    await self._publish_more(conn, client, inflight)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), self.poll_interval_s)
                if self._stop.is_set() and not inflight:
                    continue
            log.warning("broker connection lost; %d insights in flight will be sent again", len(inflight))
        finally:
            self.connected = False
            close_client(client, disconnected, self.close_timeout_s)

    async def _publish_more(self, conn: psycopg.AsyncConnection[Any], client: paho.Client,
                            inflight: dict[int, int]) -> None:
        pending_seqs = set(inflight.values())
        cur = await conn.execute(SELECT_PENDING, (self.window + len(pending_seqs),))
        rows = [r for r in await cur.fetchall() if r[0] not in pending_seqs]
        self.metrics.set_gauge("outbox_pending", len(rows) + len(pending_seqs), stage=self.stage)
        rows = rows[: self.window - len(inflight)]
        if not rows:
            return
        messages = self.encode([r[3] for r in rows])
        for (seq, *_), (topic, payload) in zip(rows, messages, strict=True):
            info = client.publish(topic, payload, qos=1, retain=self.retain)
            if info.rc != paho.MQTT_ERR_SUCCESS:
                return  # not connected any more: the session ends and we start over at the oldest row
            inflight[info.mid] = seq
