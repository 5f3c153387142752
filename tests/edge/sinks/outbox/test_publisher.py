"""The insights outbox: written with the insight in one transaction, published QoS 1 in order, marked on
PUBACK, retained per equipment, and never lost to a broker outage."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as paho
import psycopg
import pyarrow as pa
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.core.datamodel import INSIGHTS, batch_from_rows
from edge.core.metrics import Metrics
from edge.core.settings import BrokerSettings
from edge.sinks.historian.migrate import migrate
from edge.sinks.outbox.publisher import OutboxPublisher, rows_to_insights
from tests.conftest import MqttTarget
from tests.fixtures.delivery_helpers import PrivatePostgres, async_wait_until
from tests.fixtures.delivery_helpers import queueing_mosquitto as queueing_mosquitto  # fixture
from tests.fixtures.services import MosquittoProcess

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def insight_rows(equipment: list[str], i: int) -> list[dict[str, Any]]:
    ts = T0 + timedelta(seconds=i)
    return [{
        "insight_id": f"{eq}-{i:05d}", "ts": ts, "asset": f"plant/area1/line1/cell1/{eq}",
        "model": "iforest", "model_version": "3", "model_sha256": "ab" * 32, "score": i / 10,
        "threshold": 1.0, "severity": "ok", "window_start": ts - timedelta(seconds=1), "window_end": ts,
        "top_features": '[{"feature": "rms", "contribution": 0.5}]', "context": '{"work_order": "WO-1"}',
        "quality_flags": 0, "gated": False} for eq in equipment]


def insert_insights(conn: psycopg.Connection[Any], batch: pa.RecordBatch) -> None:
    """An insights batch into `insights` in one transaction; the trigger fills the outbox."""
    cols = [f.name for f in INSIGHTS]
    with conn.transaction():
        for row in batch.to_pylist():
            conn.execute(f"INSERT INTO insights ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))})",
                         [row[c] for c in cols])


class MesSubscriber:
    """An MES client: persistent session, QoS 1, records (topic, insight_id, retained) in arrival order."""

    def __init__(self, port: int, topic: str) -> None:
        self.got: list[tuple[str, str, bool]] = []
        self.lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"mes-{uuid.uuid4().hex[:6]}",
                                  protocol=paho.MQTTv5)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        self.subscribed = threading.Event()

        def on_connect(c: paho.Client, u: Any, f: Any, rc: Any, p: Any) -> None:
            c.subscribe(topic, qos=1)

        def on_subscribe(c: paho.Client, u: Any, mid: int, rcs: Any, p: Any) -> None:
            self.subscribed.set()

        def on_message(c: paho.Client, u: Any, msg: paho.MQTTMessage) -> None:
            doc = orjson.loads(msg.payload)
            with self.lock:
                self.got.append((msg.topic, doc["insight_id"], bool(msg.retain)))

        self.client.on_connect = on_connect
        self.client.on_subscribe = on_subscribe
        self.client.on_message = on_message
        self.client.reconnect_delay_set(0.2, 1)  # type: ignore[arg-type]  # paho takes seconds as float
        self.client.connect_async("127.0.0.1", port, keepalive=10, clean_start=False, properties=props)
        self.client.loop_start()
        assert self.subscribed.wait(10)

    def ids(self) -> list[str]:
        with self.lock:
            return [i for _, i, _ in self.got]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def first_occurrences(ids: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for i in ids:
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


def test_rows_to_insights_round_trip(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        migrate(conn)
        batch = batch_from_rows(insight_rows(["eq1", "eq2"], 7), INSIGHTS)
        insert_insights(conn, batch)
        payloads = [r[0] for r in conn.execute("SELECT payload FROM insights_outbox ORDER BY seq")]
    back = rows_to_insights(payloads)
    assert back.schema.equals(INSIGHTS)
    assert back.column("insight_id").to_pylist() == ["eq1-00007", "eq2-00007"]
    assert back.column("ts").to_pylist() == batch.column("ts").to_pylist()
    assert back.column("window_start").to_pylist() == batch.column("window_start").to_pylist()
    assert [orjson.loads(x) for x in back.column("top_features").to_pylist()] == [
        [{"feature": "rms", "contribution": 0.5}]] * 2


async def test_outbox_is_published_in_order_marked_and_retained(pg_dsn: str, mqtt: MqttTarget) -> None:
    equipment = ["eq1", "eq2", "eq3"]
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        migrate(conn)
        for i in range(40):
            insert_insights(conn, batch_from_rows(insight_rows(equipment, i), INSIGHTS))
    mes = MesSubscriber(mqtt.port, f"{mqtt.prefix}/#")
    metrics = Metrics()
    broker = BrokerSettings.model_validate({"url": mqtt.url, "topic_prefix": mqtt.prefix})
    pub = OutboxPublisher(pg_dsn, broker, metrics=metrics, window=16)
    task = asyncio.create_task(pub.run())
    try:
        await async_wait_until(lambda: len(mes.ids()) >= 120, 30, "120 insights at the MES subscriber")
        await async_wait_until(lambda: metrics.get("outbox-publisher", "published") >= 120, 10, "marks")
    finally:
        await pub.stop()
        await asyncio.wait_for(task, 10)
        mes.close()
    for eq in equipment:
        got = [i for t, i, _ in mes.got if f"/{eq}/_insights/iforest" in t]
        assert got == [f"{eq}-{i:05d}" for i in range(40)]
    assert {t for t, _, _ in mes.got} == {
        f"{mqtt.prefix}/plant/area1/line1/cell1/{eq}/_insights/iforest" for eq in equipment}
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute("SELECT count(*), count(published_at) FROM insights_outbox").fetchone()
    assert row == (120, 120)

    # retained: a late subscriber gets the latest insight per equipment at once
    late = MesSubscriber(mqtt.port, f"{mqtt.prefix}/#")
    try:
        await async_wait_until(lambda: len(late.got) >= 3, 10, "retained insights")
        await asyncio.sleep(0.3)
        assert sorted((i, r) for _, i, r in late.got) == [(f"{eq}-00039", True) for eq in equipment]
    finally:
        late.close()


async def test_edge_writer_may_update_only_delivery_columns(pg_dsn: str) -> None:
    role = f"edge_writer_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        migrate(conn)
        insert_insights(conn, batch_from_rows(insight_rows(["eq1"], 1), INSIGHTS))
    # the grants of 0040 applied to a role of this test (the cluster's own edge_writer may be shared)
    sql = Path(_migration_path()).read_text()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        try:
            grants = sql[sql.index("DO $$"):].replace("'edge_writer'", f"'{role}'").replace(
                "TO edge_writer", f'TO "{role}"')
            conn.execute(grants.encode())
            conn.execute(f'SET ROLE "{role}"')
            conn.execute("UPDATE insights_outbox SET published_at = now(), publish_attempts = 1")
            for bad in ("UPDATE insights_outbox SET payload = '{}'::jsonb",
                        "INSERT INTO insights_outbox (insight_id, ts, payload) VALUES ('x', now(), '{}')",
                        "DELETE FROM insights_outbox"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(bad)
            conn.execute("RESET ROLE")
        finally:
            conn.execute("RESET ROLE")
            conn.execute(f'DROP OWNED BY "{role}"')
            conn.execute(f'DROP ROLE "{role}"')


def _migration_path() -> str:
    from edge.sinks.historian.migrate import MIGRATIONS_DIR

    return str(MIGRATIONS_DIR / "0040_insights_outbox.sql")


@pytest.mark.slow
@pytest.mark.wallclock
async def test_broker_down_60s_insights_reach_mes_in_order(queueing_mosquitto: MosquittoProcess) -> None:
    """Insights keep being produced while the broker is down for 60 s; afterwards every one of them reaches
    the MES subscriber, in order per equipment."""
    own_mosquitto = queueing_mosquitto
    pg = await asyncio.to_thread(lambda: PrivatePostgres().start())
    equipment = ["press1", "press2", "oven1"]
    try:
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            migrate(conn)
        prefix = f"fe-test/{uuid.uuid4().hex[:8]}"
        mes = MesSubscriber(own_mosquitto.port, f"{prefix}/#")
        metrics = Metrics()
        broker = BrokerSettings.model_validate({"url": own_mosquitto.url, "topic_prefix": prefix})
        pub = OutboxPublisher(pg.dsn, broker, metrics=metrics, reconnect_delay_s=0.5)
        task = asyncio.create_task(pub.run())
        produced = 0

        async def produce(seconds: float) -> None:
            nonlocal produced
            end = time.monotonic() + seconds
            with psycopg.connect(pg.dsn, autocommit=True) as conn:
                while time.monotonic() < end:
                    insert_insights(conn, batch_from_rows(insight_rows(equipment, produced), INSIGHTS))
                    produced += 1
                    await asyncio.sleep(0.2)

        await produce(3)
        await async_wait_until(lambda: len(mes.ids()) >= 3 * produced, 10, "insights before the outage")
        before = len(mes.ids())
        await asyncio.to_thread(own_mosquitto.stop)
        t_down = time.monotonic()
        await produce(60)
        during = produced
        await asyncio.to_thread(own_mosquitto.start)
        down_s = time.monotonic() - t_down
        await produce(3)
        total = 3 * produced
        try:
            await async_wait_until(lambda: len(set(mes.ids())) >= total, 60, f"all {total} insights at MES")
            await async_wait_until(lambda: metrics.get("outbox-publisher", "published") >= total, 20, "marks")
        finally:
            await pub.stop()
            await asyncio.wait_for(task, 10)
            mes.close()
        print(f"broker down {down_s:.1f}s; {total} insights ({3 * (during - before // 3)} during the outage);"
              f" {len(mes.ids())} messages at MES ({len(mes.ids()) - total} duplicates)")
        for eq in equipment:
            got = first_occurrences([i for t, i, _ in mes.got if f"/{eq}/_insights/" in t])
            assert got == [f"{eq}-{i:05d}" for i in range(produced)]
        with psycopg.connect(pg.dsn) as conn:
            assert conn.execute("SELECT count(*) FROM insights_outbox WHERE published_at IS NULL"
                                ).fetchone() == (0,)
    finally:
        await asyncio.to_thread(pg.cleanup)


async def test_writer_insights_fill_the_outbox_in_the_same_transaction(pg_dsn: str) -> None:
    from edge.core.envelope import Envelope
    from edge.sinks.historian.settings import HistorianSettings
    from edge.sinks.historian.writer import HistorianWriter

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        migrate(conn)
    writer = HistorianWriter(HistorianSettings.model_validate({"dsn": pg_dsn}), dsn=pg_dsn)
    try:
        batch = batch_from_rows(insight_rows(["eq1", "eq2"], 1) + insight_rows(["eq1", "eq2"], 2), INSIGHTS)
        assert await writer.write(Envelope("insights", batch, "ins-1")) is True
        assert await writer.write(Envelope("insights", batch, "ins-1")) is False  # replay: ledger skips it
        # the same insights in another batch (re-emitted): insights and outbox both keep one row each
        assert await writer.write(Envelope("insights", batch, "ins-2")) is True
    finally:
        await writer.close()
    with psycopg.connect(pg_dsn) as conn:
        ids = [r[0] for r in conn.execute("SELECT insight_id FROM insights_outbox ORDER BY seq")]
        n_insights = conn.execute("SELECT count(*) FROM insights").fetchone()
    assert ids == ["eq1-00001", "eq2-00001", "eq1-00002", "eq2-00002"]
    assert n_insights == (4,)


async def test_clean_stop_disconnects_so_no_will_fires(pg_dsn: str, mqtt: MqttTarget,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A stop sends DISCONNECT before the socket closes: a will registered on the publisher's client is not
    published. The control (the same client's socket cut) shows the watcher would have seen one."""
    import socket

    import edge.sinks.outbox.publisher as outbox

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        migrate(conn)
    will_topic = mqtt.topic("will")
    clients: list[paho.Client] = []
    from edge.core.mqtt import make_client as real_make_client

    def make_client_with_will(*args: Any, **kwargs: Any) -> Any:
        client, address, props = real_make_client(*args, **kwargs)
        client.will_set(will_topic, f"unclean close {len(clients)}".encode(), qos=1)
        clients.append(client)
        return client, address, props

    monkeypatch.setattr(outbox, "make_client", make_client_with_will)
    wills: list[bytes] = []
    subscribed = threading.Event()
    watcher = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    watcher.on_subscribe = lambda *a: subscribed.set()
    watcher.on_message = lambda c, u, msg: wills.append(bytes(msg.payload))
    watcher.connect(mqtt.host, mqtt.port)
    watcher.subscribe(will_topic, qos=1)
    watcher.loop_start()
    assert subscribed.wait(10)
    settings = BrokerSettings.model_validate({"url": mqtt.url, "topic_prefix": mqtt.prefix})
    try:
        pub = OutboxPublisher(pg_dsn, settings, metrics=Metrics(), reconnect_delay_s=0.2)
        task = asyncio.create_task(pub.run())
        await async_wait_until(lambda: pub.connected, 10, "the publisher connected")
        await pub.stop()
        await asyncio.wait_for(task, 10)
        assert not clients[0].is_connected()
        await asyncio.sleep(1.0)
        assert wills == []  # the broker saw a clean DISCONNECT

        # control: cut the connection of a running publisher; its will fires, and after the reconnect the
        # clean stop again fires none
        pub = OutboxPublisher(pg_dsn, settings, metrics=Metrics(), reconnect_delay_s=0.2)
        task = asyncio.create_task(pub.run())
        await async_wait_until(lambda: pub.connected and len(clients) == 2, 10, "the second publisher")
        sock = clients[1].socket()
        assert isinstance(sock, socket.socket)
        sock.shutdown(socket.SHUT_RDWR)
        await async_wait_until(lambda: wills == [b"unclean close 1"], 10, "the will of the cut connection")
        await async_wait_until(lambda: pub.connected and len(clients) == 3, 10, "the reconnect")
        await pub.stop()
        await asyncio.wait_for(task, 10)
        await asyncio.sleep(1.0)
        assert wills == [b"unclean close 1"]
    finally:
        watcher.disconnect()
        watcher.loop_stop()
