"""MES context intake: MQTT (QoS 1, manual acknowledgement) into the context store and the historian.

Each message is decoded (:func:`contextualize.mes_events.decode_event`, with the configured field mapping),
applied to the in-memory store, and, in one historian transaction: the changed ``mes_context`` rows are
rewritten, stored samples and insights whose context changed are relabelled (with audit events), the event
is logged and a ``mes_context`` event recorded. Only after that commit is the message acknowledged. A
payload that is not a usable MES event goes to ``dead_letters`` with a reason and intake goes on.

The same :class:`MesContextStore` is what the contextualize stage joins against (``intake.store``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import paho.mqtt.client as paho
import psycopg

from contextualize.mes_events import MesEvent, MesEventError, decode_event
from contextualize.mes_relabel import HistorianColumns, RelabelReport, record_event, relabel
from contextualize.mes_store import MesContextStore
from contextualize.mes_store_sql import ensure_history, history_needed, load_into, log_event, persist
from contextualize.mes_timeline import ContextChange
from contextualize.settings import MesSettings
from edge.core.datamodel import EventKind
from edge.core.mqtt import connect, make_client
from edge.core.settings import BrokerSettings

log = logging.getLogger("contextualize.mes")


@dataclass
class IntakeStats:
    received: int = 0
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    samples_relabelled: int = 0
    insights_relabelled: int = 0


@dataclass
class ApplyResult:
    event: MesEvent
    changes: list[ContextChange]
    report: RelabelReport


def apply_event(
    conn: psycopg.Connection[Any],
    store: MesContextStore,
    ev: MesEvent,
    *,
    source: str,
    relabel_rows: bool = True,
    columns: HistorianColumns | None = None,
) -> ApplyResult:
    """Apply one event to ``store`` and the historian in one transaction (the CSV import uses this too).

    If the transaction fails, the store no longer matches the historian: reload it (``load_into``)."""
    with conn.transaction():
        ensure_history(conn, store, history_needed(conn, ev))
        changes = store.apply(ev)
        late = any(c.end is not None for c in changes)  # it landed before context the store already had
        log_event(conn, ev, source)
        report = RelabelReport()
        if changes:
            persist(conn, store, changes)
            if relabel_rows:
                report = relabel(conn, store, changes, source=source, columns=columns)
            record_event(
                conn,
                EventKind.MES_CONTEXT,
                source,
                ev.scope,
                _describe(ev, late),
                {
                    "event": ev.to_json(),
                    "late": late,
                    "changes": [c.as_dict() for c in changes],
                    "samples_relabelled": report.samples,
                    "insights_relabelled": report.insights,
                },
            )
    return ApplyResult(ev, changes, report)


def _describe(ev: MesEvent, late: bool) -> str:
    what = ev.work_order or ev.product or ev.batch or ev.shift or ""
    return f"{'late ' if late else ''}{ev.type} {what} at {ev.ts.isoformat()}".replace("  ", " ")


def dead_letter(
    conn: psycopg.Connection[Any], source: str, topic: str | None, reason: str, detail: str, payload: bytes
) -> None:
    with conn.transaction():
        conn.execute(
            "INSERT INTO dead_letters (ts, source, tag, reason, detail, payload) "
            "VALUES (now(), %s, %s, %s, %s, %s)",
            (source, topic, reason, detail, payload),
        )


class MesIntake:
    """Supervisor component (role ``source``): MES events from MQTT into the store and the historian.

    ``MesIntake(settings, broker, dsn)``; the store it fills is ``intake.store`` (pass ``store=`` to share
    one made elsewhere). ``topic`` overrides ``settings.topic`` (tests use a unique prefix)."""

    role = "source"

    def __init__(
        self,
        settings: MesSettings,
        broker: BrokerSettings,
        dsn: str,
        *,
        store: MesContextStore | None = None,
        name: str = "mes-intake",
        topic: str | None = None,
        url: str | None = None,
        client_id: str | None = None,
        db_password: str | None = None,
        on_change: Callable[[Sequence[ContextChange]], None] | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.broker = broker
        self.dsn = dsn
        self.store = store if store is not None else MesContextStore()
        self.topic = topic or settings.topic
        self.url = url
        self.client_id = client_id
        self.db_password = db_password
        self.on_change = on_change
        self.stats = IntakeStats()
        self.loaded = asyncio.Event()  # set once the store holds the historian's intervals
        self.subscribed = asyncio.Event()
        self._stop = asyncio.Event()
        self._settle: list[tuple[float, list[ContextChange]]] = []

    async def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        self._stop.clear()
        conn = await asyncio.to_thread(self._connect_db)
        try:
            n = await asyncio.to_thread(load_into, conn, self.store, self.settings.history_days)
            log.info("MES context loaded", extra={"intervals": n})
            self.loaded.set()
            columns = await asyncio.to_thread(HistorianColumns.probe, conn)
            await self._consume(conn, columns)
        finally:
            await asyncio.to_thread(conn.close)

    def _connect_db(self) -> psycopg.Connection[Any]:
        kwargs: dict[str, Any] = {"autocommit": True}
        if self.db_password is not None:
            kwargs["password"] = self.db_password
        return psycopg.connect(self.dsn, **kwargs)

    async def _consume(self, conn: psycopg.Connection[Any], columns: HistorianColumns) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[paho.MQTTMessage] = asyncio.Queue()
        # a stable client id (ours, or the broker section's + "-mes") gets a persistent session: a message not
        # acknowledged before a crash or restart is delivered again
        cid = self.client_id or (f"{self.broker.client_id}-mes" if self.broker.client_id else None)
        persistent = cid is not None
        client, address, props = make_client(self.broker, client_id=cid, url=self.url,
                                             clean_start=not persistent)
        client.manual_ack_set(True)

        def on_connect(c: paho.Client, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
            if not rc.is_failure:
                c.subscribe(self.topic, qos=self.settings.qos)

        def on_subscribe(_c: paho.Client, _u: Any, _mid: int, _rc: Any, _p: Any = None) -> None:
            loop.call_soon_threadsafe(self.subscribed.set)

        def on_message(_c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, msg)

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        connect(client, address, props, clean_start=not persistent, keepalive=self.broker.keepalive_s)
        client.loop_start()
        try:
            while not self._stop.is_set():
                await self._settle_due(conn, columns)
                try:
                    msg = await asyncio.wait_for(queue.get(), 0.2)
                except TimeoutError:
                    continue
                await asyncio.to_thread(self._handle, conn, columns, msg)
                if msg.qos > 0:
                    client.ack(msg.mid, msg.qos)
            # drain what already arrived, then go
            while not queue.empty():
                msg = queue.get_nowait()
                await asyncio.to_thread(self._handle, conn, columns, msg)
                if msg.qos > 0:
                    client.ack(msg.mid, msg.qos)
        finally:
            with contextlib.suppress(Exception):
                client.disconnect()
            client.loop_stop()
            self.subscribed.clear()

    def _handle(
        self, conn: psycopg.Connection[Any], columns: HistorianColumns, msg: paho.MQTTMessage
    ) -> None:
        self.stats.received += 1
        payload = bytes(msg.payload)
        try:
            ev = decode_event(payload, self.settings.mapping)
        except MesEventError as exc:
            self._dead_letter(conn, msg.topic, exc.reason, exc.detail, payload)
            return
        try:
            result = apply_event(
                conn, self.store, ev, source=self.name, relabel_rows=self.settings.relabel, columns=columns
            )
        except psycopg.Error:
            # the historian did not take it: memory may now be ahead of the table; reload, then fail
            with contextlib.suppress(Exception):
                load_into(conn, self.store, self.settings.history_days)
            raise
        except Exception as exc:  # an event the store cannot apply: it must not stop intake
            log.exception("MES event could not be applied")
            with contextlib.suppress(Exception):
                load_into(conn, self.store, self.settings.history_days)
            self._dead_letter(conn, msg.topic, "apply_failed", f"{type(exc).__name__}: {exc}", payload)
            return
        if not result.changes:
            self.stats.duplicates += 1
        self.stats.applied += 1
        self.stats.samples_relabelled += result.report.samples
        self.stats.insights_relabelled += result.report.insights
        if result.changes:
            if self.settings.relabel and self.settings.relabel_settle_s > 0:
                self._settle.append((time.monotonic() + self.settings.relabel_settle_s, result.changes))
            if self.on_change is not None:
                self.on_change(result.changes)

    def _dead_letter(
        self, conn: psycopg.Connection[Any], topic: str, reason: str, detail: str, payload: bytes
    ) -> None:
        self.stats.dead_lettered += 1
        log.warning("MES payload dead-lettered", extra={"topic": topic, "reason": reason, "detail": detail})
        dead_letter(conn, self.name, topic, reason, detail, payload)

    async def _settle_due(self, conn: psycopg.Connection[Any], columns: HistorianColumns) -> None:
        """Second relabel pass: samples contextualized before an event arrived may be committed after it."""
        now = time.monotonic()
        due = [c for t, c in self._settle if t <= now]
        if not due:
            return
        self._settle = [(t, c) for t, c in self._settle if t > now]

        def work() -> None:
            with conn.transaction():
                for changes in due:
                    rep = relabel(conn, self.store, changes, source=self.name, columns=columns)
                    self.stats.samples_relabelled += rep.samples
                    self.stats.insights_relabelled += rep.insights

        await asyncio.to_thread(work)


def payload_json(ev: MesEvent) -> bytes:
    """The canonical payload of an event (simulator, tests, CSV re-publishing)."""
    return orjson.dumps(ev.to_json())
