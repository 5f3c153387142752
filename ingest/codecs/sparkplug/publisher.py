"""Insights as a Sparkplug B edge node: the historian's ``insights_outbox`` to ``spBv1.0/<group>/...``.

Like the JSON publisher (:mod:`edge.sinks.outbox.publisher`) it reads the outbox, so only insights the
historian committed go out; unlike it, it keeps its own progress (an in-memory cursor over ``seq``, see
:class:`OutboxTail`) and marks nothing, so the two run side by side without touching each other's work.
Sparkplug is about state, not a log: at start the node's state is the latest insight per equipment and model
in the outbox; births carry the current state, DDATA the changes. The messages come from
:class:`ingest.codecs.sparkplug.node.SparkplugInsightsNode`.

Per connection (Sparkplug B 3.0): a new ``bdSeq`` (0..255, persisted in ``bdseq_file`` before the CONNECT,
so a restarted appliance never reuses the previous one), the NDEATH with that bdSeq as the MQTT will (QoS 1,
not retained), a subscription to the node's NCMD topic, then NBIRTH (seq 0) and a DBIRTH per equipment with
its current values, then a DDATA per equipment for each new committed insight (a DBIRTH first for new
equipment or a new model). NCMD ``Node Control/Rebirth`` = true: NBIRTH and every DBIRTH again, same bdSeq.
A lost connection throws the client away (paho must not reconnect by itself with the old will); the next
connection has a new bdSeq and births with the current state, insights committed meanwhile included. A
clean stop publishes the NDEATH, waits (bounded) for its PUBACK, then disconnects cleanly (no will).

Events (``on_event(kind, message, detail)``, kind ``connection``): node online (connect and births), node
offline (connection lost, or stopped), rebirth requested by NCMD.

Wiring::

    pub = SparkplugPublisher(dsn, config.broker, group_id="plant1", edge_node_id=config.box.id,
                             bdseq_file=config.spool.dir / "sparkplug-plant1-box1.bdseq",
                             on_event=events.record)
    supervisor.add(pub)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psycopg

from edge.core.component import EventHook, Role
from edge.core.datamodel import EventKind
from edge.core.metrics import METRICS, Metrics
from edge.core.mqtt import connect, make_client
from edge.core.settings import BrokerSettings, SecretRef
from edge.sinks.outbox.publisher import (
    close_client,
    connect_historian,
    pause_before_reconnect,
    rows_to_insights,
)
from ingest.codecs import Command
from ingest.codecs.sparkplug.node import SparkplugInsightsNode, is_rebirth_request

log = logging.getLogger("edge.sinks.sparkplug")


SELECT_MAX = "SELECT coalesce(max(seq), 0) FROM insights_outbox"
SELECT_LATEST = """
    SELECT DISTINCT ON (asset, payload->>'model') payload FROM insights_outbox
    WHERE seq <= %s ORDER BY asset, payload->>'model', ts DESC, seq DESC
"""
SELECT_AFTER = """
    SELECT seq, payload FROM insights_outbox
    WHERE seq > %s AND NOT (seq = ANY(%s)) ORDER BY seq LIMIT %s
"""


class BdSeqFile:
    """The last bdSeq used, in a file: each new connection takes the next one (0..255, wrapping)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def last(self) -> int | None:
        try:
            return int(self.path.read_text().strip()) % 256
        except (OSError, ValueError):
            return None

    def next(self) -> int:
        """The bdSeq of a new connection, written (fsync, atomic rename) before it is used."""
        last = self.last()
        value = 0 if last is None else (last + 1) % 256
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w") as f:
            f.write(f"{value}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        with contextlib.suppress(OSError):
            fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return value


class OutboxTail:
    """Committed outbox rows after a cursor, each once, in ``seq`` order as far as commits allow.

    ``seq`` comes from an identity column: a transaction may commit after one that took a higher number, and
    numbers are skipped for good (a rolled back insert, a replay the trigger's ``ON CONFLICT`` drops). So the
    cursor only passes a missing number when it has stayed missing ``gap_timeout_s``; rows above it are
    delivered at once and remembered (``seen``) until then.
    """

    def __init__(self, *, batch: int = 1000, gap_timeout_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.batch = batch
        self.gap_timeout_s = gap_timeout_s
        self.clock = clock
        self.cursor = 0
        self.seen: set[int] = set()
        self._gap: tuple[int, float] | None = None  # (missing seq, since)

    async def start(self, conn: psycopg.AsyncConnection[Any]) -> list[dict[str, Any]]:
        """Set the cursor to the newest row and return the latest row per equipment and model."""
        cur = await conn.execute(SELECT_MAX)
        row = await cur.fetchone()
        self.cursor = int(row[0]) if row else 0
        self.seen.clear()
        self._gap = None
        cur = await conn.execute(SELECT_LATEST, (self.cursor,))
        return [r[0] for r in await cur.fetchall()]

    async def fetch(self, conn: psycopg.AsyncConnection[Any]) -> list[dict[str, Any]]:
        """The next committed rows not delivered yet (at most ``batch``)."""
        cur = await conn.execute(SELECT_AFTER, (self.cursor, sorted(self.seen), self.batch))
        rows = await cur.fetchall()
        for seq, _ in rows:
            self.seen.add(int(seq))
        self._advance()
        return [r[1] for r in rows]

    def _advance(self) -> None:
        while True:
            while self.cursor + 1 in self.seen:
                self.cursor += 1
                self.seen.discard(self.cursor)
            if not self.seen:
                self._gap = None
                return
            missing, now = self.cursor + 1, self.clock()
            if self._gap is None or self._gap[0] != missing:
                self._gap = (missing, now)
                return
            if now - self._gap[1] < self.gap_timeout_s:
                return
            self.cursor = min(self.seen) - 1  # the gap stayed empty: those numbers will never commit
            self._gap = None


class SparkplugPublisher:
    """Supervisor component (role ``sink``): insights as a Sparkplug B edge node. See the module docstring."""

    role: Role = "sink"

    def __init__(self, dsn: str, broker: BrokerSettings, *, group_id: str, edge_node_id: str,
                 bdseq_file: Path, name: str = "sparkplug-publisher", password: SecretRef | None = None,
                 url: str | None = None, client_id: str | None = None, poll_interval_s: float = 0.2,
                 reconnect_delay_s: float = 1.0, gap_timeout_s: float = 30.0, close_timeout_s: float = 2.0,
                 metrics: Metrics | None = None, on_event: EventHook | None = None) -> None:
        self.name = name
        self.stage = name
        self.dsn = dsn
        self.password = password
        self.broker = broker
        self.url = url
        self.client_id = client_id or f"{broker.client_id or 'factory-edge'}-sparkplug-{edge_node_id}"
        self.node = SparkplugInsightsNode(group_id, edge_node_id)
        self.bdseq_file = BdSeqFile(bdseq_file)
        self.tail = OutboxTail(gap_timeout_s=gap_timeout_s)
        self.poll_interval_s = poll_interval_s
        self.reconnect_delay_s = reconnect_delay_s
        self.close_timeout_s = close_timeout_s
        self.metrics = metrics or METRICS
        self.on_event = on_event
        self.client: paho.Client | None = None  # the current connection's client (tests kill its socket)
        self.online = False
        self._stop = asyncio.Event()

    async def stop(self) -> None:
        self._stop.set()

    def _event(self, message: str, detail: dict[str, Any]) -> None:
        log.info(message, extra={"detail": detail})
        if self.on_event is not None:
            try:
                self.on_event(EventKind.CONNECTION, message, detail)
            except Exception:
                log.exception("recording an event failed")

    async def run(self) -> None:
        self._stop = asyncio.Event()
        async with await connect_historian(self.dsn, self.password) as conn:
            latest = await self.tail.start(conn)
            if latest:
                self.node.observe(rows_to_insights(latest))
            while not self._stop.is_set():
                await self._session(conn)
                await pause_before_reconnect(self._stop, self.reconnect_delay_s)

    async def _session(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """One broker connection with its own bdSeq: births, data, rebirths until it drops or we stop."""
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()  # connected and subscribed to NCMD
        lost = asyncio.Event()
        wake = asyncio.Event()
        rebirth = asyncio.Event()
        disconnected = threading.Event()
        acked: set[int] = set()
        lock = threading.Lock()
        ncmd = self.node.topic("NCMD")

        def on_connect(client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
            if not getattr(reason, "is_failure", False):
                client.subscribe(ncmd, qos=1)

        def on_subscribe(client: paho.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
            loop.call_soon_threadsafe(ready.set)

        def on_message(client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
            if msg.topic == ncmd and is_rebirth_request(bytes(msg.payload)):
                loop.call_soon_threadsafe(rebirth.set)
                loop.call_soon_threadsafe(wake.set)

        def on_disconnect(client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
            disconnected.set()
            # No reconnect by paho: it would reuse this connection's will, and a new connection needs a new
            # bdSeq. Stopping the loop from its own thread ends it after this callback.
            client.loop_stop()
            loop.call_soon_threadsafe(lost.set)
            loop.call_soon_threadsafe(wake.set)

        def on_publish(client: paho.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
            with lock:
                acked.add(mid)
            loop.call_soon_threadsafe(wake.set)

        bdseq = self.bdseq_file.next()
        will = self.node.will(bdseq)
        self.metrics.set_gauge("sparkplug_bdseq", bdseq, stage=self.stage)
        client, address, props = make_client(self.broker, client_id=self.client_id, clean_start=True,
                                             url=self.url)
        client.will_set(will.topic, will.payload, qos=will.qos, retain=False)
        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        client.on_disconnect = on_disconnect
        client.on_publish = on_publish
        broker = f"{address.host}:{address.port}"
        self.client = client
        said_goodbye = False
        try:
            connect(client, address, props, clean_start=True, keepalive=self.broker.keepalive_s)
            client.loop_start()  # paho retries a failed first connect itself, with the same will
            if not await self._first(ready, lost):
                return
            # what was committed while we were away goes into the state: the births carry it
            await self._observe_pending(conn)
            if not self._publish(client, self.node.births()):
                return
            self.online = True
            self._event(f"Sparkplug node {self.node.group}/{self.node.node} online",
                        {"broker": broker, "bdSeq": bdseq, "devices": len(self.node.devices)})
            while not lost.is_set() and not self._stop.is_set():
                if rebirth.is_set():
                    rebirth.clear()
                    self.metrics.inc(self.stage, "rebirths")
                    self._event(f"Sparkplug node {self.node.group}/{self.node.node}: rebirth requested",
                                {"bdSeq": bdseq, "devices": len(self.node.devices)})
                    if not self._publish(client, self.node.births()):
                        break
                rows = await self.tail.fetch(conn)
                if rows and not self._publish(client, self.node.messages(rows_to_insights(rows))):
                    break
                if len(rows) >= self.tail.batch:
                    continue
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), self.poll_interval_s)
            if self._stop.is_set() and not lost.is_set():
                said_goodbye = True
                await self._say_goodbye(client, acked, lock, lost, wake)
                self._event(f"Sparkplug node {self.node.group}/{self.node.node} offline (stopped)",
                            {"broker": broker, "bdSeq": bdseq})
            else:
                self._event(f"Sparkplug node {self.node.group}/{self.node.node} offline (connection lost)",
                            {"broker": broker, "bdSeq": bdseq})
        finally:
            if self.online and not said_goodbye and not lost.is_set():
                # ended by an error (say the historian went away): the NDEATH still goes out before the
                # DISCONNECT (same socket, in order), so hosts learn the node's data is stale
                death = self.node.ndeath()
                with contextlib.suppress(Exception):
                    client.publish(death.topic, death.payload, qos=death.qos, retain=False)
            self.online = False
            self.client = None
            close_client(client, disconnected, self.close_timeout_s)

    async def _first(self, ready: asyncio.Event, lost: asyncio.Event) -> bool:
        """Wait until connected and subscribed (or stopped, or lost); True when ready."""
        waits = [asyncio.create_task(e.wait()) for e in (ready, lost, self._stop)]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        return ready.is_set() and not lost.is_set() and not self._stop.is_set()

    async def _observe_pending(self, conn: psycopg.AsyncConnection[Any]) -> None:
        while True:
            rows = await self.tail.fetch(conn)
            if rows:
                self.node.observe(rows_to_insights(rows))
            if len(rows) < self.tail.batch:
                return

    def _publish(self, client: paho.Client, messages: list[Command]) -> bool:
        """Publish in order; False when the client is not connected any more (the session ends)."""
        for m in messages:
            info = client.publish(m.topic, m.payload, qos=m.qos, retain=m.retain)
            if info.rc != paho.MQTT_ERR_SUCCESS:
                return False
            self.metrics.inc(self.stage, "published", reason=m.topic.split("/")[2])
        return True

    async def _say_goodbye(self, client: paho.Client, acked: set[int], lock: threading.Lock,
                           lost: asyncio.Event, wake: asyncio.Event) -> None:
        """The NDEATH, explicitly, before a clean disconnect; waits for its PUBACK (bounded)."""
        death = self.node.ndeath()
        info = client.publish(death.topic, death.payload, qos=death.qos, retain=False)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            return
        self.metrics.inc(self.stage, "published", reason="NDEATH")
        deadline = loop_time() + self.close_timeout_s
        while not lost.is_set():
            with lock:
                if info.mid in acked:
                    return
            remaining = deadline - loop_time()
            if remaining <= 0:
                log.warning("no PUBACK for the NDEATH within %.1fs", self.close_timeout_s)
                return
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), min(remaining, 0.1))


def loop_time() -> float:
    return asyncio.get_running_loop().time()
