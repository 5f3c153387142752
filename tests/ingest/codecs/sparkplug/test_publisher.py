"""Insights as a Sparkplug B edge node, published on a real Mosquitto from a real historian outbox, and read
back with ingest's Sparkplug host codec (births, aliases, seq, bdSeq)."""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.app.config import AppConfig
from edge.core.datamodel import INSIGHTS, batch_from_rows
from edge.core.metrics import Metrics
from edge.core.settings import BrokerSettings
from edge.sinks.historian.migrate import migrate
from ingest.codecs import Decoded
from ingest.codecs.sparkplug.codec import SparkplugCodec
from ingest.codecs.sparkplug.node import device_id
from ingest.codecs.sparkplug.payload import pb, rebirth_command
from ingest.codecs.sparkplug.publisher import BdSeqFile, OutboxTail, SparkplugPublisher
from tests.conftest import MqttTarget
from tests.fixtures.delivery_helpers import async_wait_until
from tests.fixtures.services import MosquittoProcess

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
ASSET = "plant/area1/line1/cell1/press1"
DEV = device_id(ASSET)
NODE = "box1"


def insight_row(i: int, score: float, asset: str = ASSET) -> dict[str, Any]:
    ts = T0 + timedelta(seconds=i)
    return {"insight_id": f"ins-{asset}-{i:05d}", "ts": ts, "asset": asset, "model": "iforest",
            "model_version": "3", "model_sha256": "ab" * 32, "score": score, "threshold": 1.0,
            "severity": "alarm" if score >= 1.0 else "ok", "window_start": ts - timedelta(seconds=1),
            "window_end": ts, "top_features": "[]", "context": "{}", "quality_flags": 0, "gated": False}


def insert(conn: psycopg.Connection[Any], rows: list[dict[str, Any]]) -> None:
    """Rows into `insights` (the trigger fills the outbox) on ``conn``, in its current transaction."""
    batch = batch_from_rows(rows, INSIGHTS)
    cols = [f.name for f in INSIGHTS]
    for row in batch.to_pylist():
        conn.execute(f"INSERT INTO insights ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))})",
                     [row[c] for c in cols])


def commit_insights(dsn: str, rows: list[dict[str, Any]]) -> None:
    with psycopg.connect(dsn) as conn:
        insert(conn, rows)
        conn.commit()


class SparkplugHost:
    """Subscribes to ``spBv1.0/<group>/#`` and records (topic, payload) in arrival order. ``persistent``: a
    session the broker keeps (and fills) while this client is away."""

    def __init__(self, port: int, group: str, *, persistent: bool = False) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"host-{uuid.uuid4().hex[:6]}",
                                  protocol=paho.MQTTv5)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600 if persistent else 0

        def on_connect(c: paho.Client, u: Any, f: Any, rc: Any, p: Any) -> None:
            c.subscribe(f"spBv1.0/{group}/#", qos=1)

        def on_subscribe(c: paho.Client, u: Any, mid: int, rcs: Any, p: Any) -> None:
            self.subscribed.set()

        def on_message(c: paho.Client, u: Any, msg: paho.MQTTMessage) -> None:
            with self.lock:
                self.got.append((msg.topic, bytes(msg.payload)))

        self.client.on_connect = on_connect
        self.client.on_subscribe = on_subscribe
        self.client.on_message = on_message
        self.client.reconnect_delay_set(1, 1)
        self.client.connect_async("127.0.0.1", port, keepalive=10, clean_start=not persistent,
                                  properties=props)
        self.client.loop_start()
        assert self.subscribed.wait(10)

    def messages(self) -> list[tuple[str, bytes]]:
        with self.lock:
            return list(self.got)

    def of(self, mtype: str) -> list[Any]:
        return [pb.Payload.FromString(p) for t, p in self.messages() if t.split("/")[2] == mtype]

    def types(self) -> list[str]:
        return [t.split("/")[2] for t, _ in self.messages()]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def bdseq(payload: Any) -> int:
    return int(next(m.long_value for m in payload.metrics if m.name == "bdSeq"))


def metric_values(payload: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in payload.metrics:
        kind = m.WhichOneof("value")
        out[m.name] = None if m.is_null or kind is None else getattr(m, kind)
    return out


def publisher(dsn: str, url: str, group: str, bdseq_file: Path, events: list[tuple[str, str, dict[str, Any]]],
              **kwargs: Any) -> SparkplugPublisher:
    return SparkplugPublisher(dsn, BrokerSettings.model_validate({"url": url}), group_id=group,
                              edge_node_id=NODE, bdseq_file=bdseq_file, poll_interval_s=0.05,
                              reconnect_delay_s=0.3,
                              metrics=kwargs.pop("metrics", Metrics()),
                              on_event=lambda kind, message, detail: events.append((kind, message, detail)),
                              **kwargs)


def decode_all(host: SparkplugHost, group: str) -> tuple[SparkplugCodec, Decoded]:
    codec = SparkplugCodec()
    out = Decoded("sp")
    codec.decode(host.messages(), 1, out)
    assert not out.commands, "the host codec asked for a rebirth: seq, births or aliases were wrong"
    assert len(out.dead) == 0, out.dead.take()
    return codec, out


def group_id() -> str:
    return f"fe-test-{uuid.uuid4().hex[:10]}"


async def test_committed_insight_gives_nbirth_dbirth_ddata(pg_dsn: str, mqtt: MqttTarget,
                                                           tmp_path: Path) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        migrate(conn)
    group = group_id()
    host = SparkplugHost(mqtt.port, group)
    events: list[tuple[str, str, dict[str, Any]]] = []
    metrics = Metrics()
    pub = publisher(pg_dsn, mqtt.url, group, tmp_path / "node.bdseq", events, metrics=metrics)
    task = asyncio.create_task(pub.run())
    try:
        await async_wait_until(lambda: host.types() == ["NBIRTH"], 10, "the NBIRTH")
        nbirth = host.of("NBIRTH")[0]
        assert nbirth.seq == 0 and bdseq(nbirth) == 0
        assert metric_values(nbirth)["Node Control/Rebirth"] is False
        assert (tmp_path / "node.bdseq").read_text().strip() == "0"

        # an insight not committed yet does not go out
        with psycopg.connect(pg_dsn) as conn:
            insert(conn, [insight_row(1, 2.5)])
            await asyncio.sleep(1.0)  # 20 polls of the outbox
            assert host.types() == ["NBIRTH"]
            conn.commit()
        await async_wait_until(lambda: host.types() == ["NBIRTH", "DBIRTH", "DDATA"], 10, "DBIRTH, DDATA")
        topics = [t for t, _ in host.messages()]
        assert topics[1:] == [f"spBv1.0/{group}/DBIRTH/{NODE}/{DEV}", f"spBv1.0/{group}/DDATA/{NODE}/{DEV}"]
        dbirth, ddata = host.of("DBIRTH")[0], host.of("DDATA")[0]
        assert (dbirth.seq, ddata.seq) == (1, 2)
        aliases = {m.alias: m.name for m in dbirth.metrics}
        assert sorted(aliases.values()) == ["iforest/alarm", "iforest/gated", "iforest/score",
                                            "iforest/severity", "iforest/threshold"]
        assert all(not m.name for m in ddata.metrics)
        data = {aliases[m.alias]: m for m in ddata.metrics}
        assert data["iforest/score"].double_value == 2.5
        assert data["iforest/severity"].string_value == "alarm"
        assert data["iforest/alarm"].boolean_value is True
        assert data["iforest/score"].timestamp == int((T0 + timedelta(seconds=1)).timestamp() * 1000)

        # the project's own Sparkplug host codec reads it all: no rebirth request, the score as a sample
        _, out = decode_all(host, group)
        samples = out.to_samples(1).to_pylist()
        assert [(s["tag"], s["value"]) for s in samples if s["tag"].endswith("/score")] == [
            (f"{group}/{NODE}/{DEV}/iforest/score", 2.5)]

        # the next insights of that equipment: DDATA only, with the latest value
        commit_insights(pg_dsn, [insight_row(2, 0.4), insight_row(3, 0.3)])
        await async_wait_until(lambda: len(host.of("DDATA")) == 2, 10, "the second DDATA")
        second = {aliases[m.alias]: m for m in host.of("DDATA")[1].metrics}
        assert second["iforest/score"].double_value == 0.3 and host.of("DDATA")[1].seq == 3
        assert host.types().count("DBIRTH") == 1

        # the JSON publisher's progress is untouched
        with psycopg.connect(pg_dsn) as conn:
            counts = conn.execute("SELECT count(*), count(published_at) FROM insights_outbox").fetchone()
        assert counts == (3, 0)
    finally:
        await pub.stop()
        await asyncio.wait_for(task, 10)
    # a clean stop: the NDEATH explicitly, and the will does not fire as well
    await async_wait_until(lambda: len(host.of("NDEATH")) == 1, 10, "the NDEATH")
    await asyncio.sleep(1.0)
    host.close()
    assert [bdseq(p) for p in host.of("NDEATH")] == [0]
    assert metrics.get(pub.stage, "published", reason="DDATA") == 2
    messages = [m for _, m, _ in events]
    assert messages == [f"Sparkplug node {group}/{NODE} online",
                        f"Sparkplug node {group}/{NODE} offline (stopped)"]
    assert all(kind == "connection" for kind, _, _ in events)


async def test_rebirth_on_ncmd(pg_dsn: str, mqtt: MqttTarget, tmp_path: Path) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        migrate(conn)
    commit_insights(pg_dsn, [insight_row(1, 0.2), insight_row(2, 1.7),
                             insight_row(1, 0.1, asset="plant/area1/line1/cell2/press2")])
    group = group_id()
    host = SparkplugHost(mqtt.port, group)
    events: list[tuple[str, str, dict[str, Any]]] = []
    metrics = Metrics()
    pub = publisher(pg_dsn, mqtt.url, group, tmp_path / "node.bdseq", events, metrics=metrics)
    task = asyncio.create_task(pub.run())
    try:
        # the state at start (latest per equipment in the outbox) is born at once
        await async_wait_until(lambda: len(host.types()) == 3, 10, "NBIRTH and two DBIRTHs")
        assert host.types() == ["NBIRTH", "DBIRTH", "DBIRTH"]
        births = {t.split("/")[-1]: metric_values(pb.Payload.FromString(p)) for t, p in host.messages()[1:]}
        assert births[DEV]["iforest/score"] == 1.7
        assert births[device_id("plant/area1/line1/cell2/press2")]["iforest/score"] == 0.1

        cmd = rebirth_command(group, NODE)
        sender = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        sender.connect("127.0.0.1", mqtt.port)
        sender.loop_start()
        try:
            sender.publish(cmd.topic, cmd.payload, qos=cmd.qos).wait_for_publish(5)
            await async_wait_until(lambda: host.types().count("NBIRTH") == 2, 10, "the rebirth")
            await async_wait_until(lambda: host.types().count("DBIRTH") == 4, 10, "the DBIRTHs again")
        finally:
            sender.disconnect()
            sender.loop_stop()
        assert host.types()[3:] == ["NCMD", "NBIRTH", "DBIRTH", "DBIRTH"]  # the host sees its own command
        again = host.of("NBIRTH")[1]
        assert again.seq == 0 and bdseq(again) == 0  # same connection, same bdSeq
        reborn = {t.split("/")[-1]: metric_values(pb.Payload.FromString(p)) for t, p in host.messages()[5:]}
        assert reborn == births
        await async_wait_until(lambda: len(events) >= 2, 5, "the rebirth event")
        assert events[1][1] == f"Sparkplug node {group}/{NODE}: rebirth requested"
        assert metrics.get(pub.stage, "rebirths") == 1
        # a new insight after the rebirth decodes against it
        commit_insights(pg_dsn, [insight_row(3, 0.9)])
        await async_wait_until(lambda: "DDATA" in host.types(), 10, "DDATA after the rebirth")
        _, out = decode_all(host, group)
        tag = f"{group}/{NODE}/{DEV}/iforest/score"
        scores = [s["value"] for s in out.to_samples(1).to_pylist() if s["tag"] == tag]
        assert scores == [1.7, 1.7, 0.9]
    finally:
        await pub.stop()
        await asyncio.wait_for(task, 10)
        host.close()


async def test_will_on_unclean_close_and_bdseq_across_restarts(pg_dsn: str, mqtt: MqttTarget,
                                                               tmp_path: Path) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        migrate(conn)
    commit_insights(pg_dsn, [insight_row(1, 1.2)])
    group = group_id()
    host = SparkplugHost(mqtt.port, group)
    events: list[tuple[str, str, dict[str, Any]]] = []
    bdseq_file = tmp_path / "spool" / "node.bdseq"
    pub = publisher(pg_dsn, mqtt.url, group, bdseq_file, events)
    task = asyncio.create_task(pub.run())
    try:
        await async_wait_until(lambda: host.types() == ["NBIRTH", "DBIRTH"], 10, "the first births")
        assert bdseq(host.of("NBIRTH")[0]) == 0
        # the connection dies without a DISCONNECT: the broker publishes the will
        client = pub.client
        assert client is not None
        sock = client.socket()
        assert isinstance(sock, socket.socket)
        sock.shutdown(socket.SHUT_RDWR)
        await async_wait_until(lambda: len(host.of("NDEATH")) == 1, 10, "the will NDEATH")
        await async_wait_until(lambda: len(host.of("NBIRTH")) == 2 and len(host.of("DBIRTH")) == 2, 10,
                               "the births of the new connection")
        assert bdseq(host.of("NDEATH")[0]) == 0  # the will carries the bdSeq of the NBIRTH it ends
        assert bdseq(host.of("NBIRTH")[1]) == 1  # a new connection, a new bdSeq
        assert metric_values(host.of("DBIRTH")[1])["iforest/score"] == 1.2  # with the current state
        codec, _ = decode_all(host, group)
        state = codec.nodes[(group, NODE)]
        assert state.online and state.bdseq == 1
        assert any(m == f"Sparkplug node {group}/{NODE} offline (connection lost)" for _, m, _ in events)
    finally:
        await pub.stop()
        await asyncio.wait_for(task, 10)
    await async_wait_until(lambda: len(host.of("NDEATH")) == 2, 10, "the NDEATH of the clean stop")
    assert bdseq(host.of("NDEATH")[1]) == 1
    assert bdseq_file.read_text().strip() == "1"

    # the appliance restarts: the bdSeq goes on from the file, it is not reused
    pub2 = publisher(pg_dsn, mqtt.url, group, bdseq_file, events)
    task2 = asyncio.create_task(pub2.run())
    try:
        await async_wait_until(lambda: len(host.of("NBIRTH")) == 3 and len(host.of("DBIRTH")) == 3, 10,
                               "the births after the restart")
        assert bdseq(host.of("NBIRTH")[2]) == 2
        assert metric_values(host.of("DBIRTH")[2])["iforest/score"] == 1.2
    finally:
        await pub2.stop()
        await asyncio.wait_for(task2, 10)
    await async_wait_until(lambda: len(host.of("NDEATH")) == 3, 10, "the last NDEATH")
    await asyncio.sleep(0.5)
    host.close()
    assert [bdseq(p) for p in host.of("NDEATH")] == [0, 1, 2]
    decode_all(host, group)


@pytest.fixture
def queueing_qos0_mosquitto() -> Any:
    """A private broker whose persistent sessions survive its restart and also queue QoS 0 messages (births
    are QoS 0) while the subscriber is still reconnecting."""
    broker = MosquittoProcess(extra_conf="max_queued_messages 0\nqueue_qos0_messages true").start()
    try:
        yield broker
    finally:
        broker.cleanup()


async def test_reconnect_after_broker_restart_rebirths(pg_dsn: str, queueing_qos0_mosquitto: MosquittoProcess,
                                                        tmp_path: Path) -> None:
    broker = queueing_qos0_mosquitto
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        migrate(conn)
    group = group_id()
    host = SparkplugHost(broker.port, group, persistent=True)
    events: list[tuple[str, str, dict[str, Any]]] = []
    pub = publisher(pg_dsn, broker.url, group, tmp_path / "node.bdseq", events)
    task = asyncio.create_task(pub.run())
    try:
        await async_wait_until(lambda: host.types() == ["NBIRTH"], 10, "the NBIRTH")
        commit_insights(pg_dsn, [insight_row(1, 0.5)])
        await async_wait_until(lambda: host.types() == ["NBIRTH", "DBIRTH", "DDATA"], 10, "the first data")

        await asyncio.to_thread(broker.stop)
        await async_wait_until(lambda: not pub.online, 10, "the publisher to see the outage")
        commit_insights(pg_dsn, [insight_row(2, 3.5)])  # committed while the broker is away
        await asyncio.to_thread(broker.start)

        await async_wait_until(lambda: len(host.of("NBIRTH")) == 2 and len(host.of("DBIRTH")) == 2, 30,
                               "the births after the broker restart")
        first, second = host.of("NBIRTH")
        assert bdseq(second) != bdseq(first)
        assert int(pub.bdseq_file.path.read_text()) == bdseq(second)
        assert second.seq == 0
        # the current state: the insight committed during the outage is in the DBIRTH
        assert metric_values(host.of("DBIRTH")[1])["iforest/score"] == 3.5
        kinds = [m.split(" ", 3)[-1] for _, m, _ in events]
        assert kinds[:3] == ["online", "offline (connection lost)", "online"]
        commit_insights(pg_dsn, [insight_row(3, 0.1)])
        await async_wait_until(lambda: len(host.of("DDATA")) == 2, 10, "data after the reconnect")
        after_outage = host.messages()[host.types().index("NBIRTH", 1):]
        codec = SparkplugCodec()
        out = Decoded("sp")
        codec.decode(after_outage, 1, out)
        assert not out.commands
    finally:
        await pub.stop()
        await asyncio.wait_for(task, 10)
        host.close()


def test_bdseq_file_counts_and_wraps(tmp_path: Path) -> None:
    f = BdSeqFile(tmp_path / "x" / "bd")
    assert f.last() is None
    assert [f.next() for _ in range(3)] == [0, 1, 2]
    (tmp_path / "x" / "bd").write_text("255\n")
    assert f.next() == 0
    (tmp_path / "x" / "bd").write_text("garbage")
    assert f.next() == 0


async def test_outbox_tail_waits_on_gaps_then_passes_them(pg_dsn: str) -> None:
    """Rows committed out of seq order are each delivered once; a seq that never commits is passed later."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        migrate(conn)
    now = [0.0]
    tail = OutboxTail(gap_timeout_s=30, clock=lambda: now[0])
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as aconn:
        assert await tail.start(aconn) == []
        slow = psycopg.connect(pg_dsn)
        insert(slow, [insight_row(1, 0.1)])  # takes a seq, commits later
        commit_insights(pg_dsn, [insight_row(2, 0.2)])
        got = await tail.fetch(aconn)
        assert [r["insight_id"] for r in got] == [f"ins-{ASSET}-00002"]
        assert tail.cursor == 0  # the first seq is not committed yet
        slow.commit()
        slow.close()
        got = await tail.fetch(aconn)
        assert [r["insight_id"] for r in got] == [f"ins-{ASSET}-00001"]
        assert tail.cursor == 2 and not tail.seen
        assert await tail.fetch(aconn) == []

        rolled_back = psycopg.connect(pg_dsn)
        insert(rolled_back, [insight_row(3, 0.3)])
        rolled_back.rollback()
        rolled_back.close()
        commit_insights(pg_dsn, [insight_row(4, 0.4)])
        assert [r["insight_id"] for r in await tail.fetch(aconn)] == [f"ins-{ASSET}-00004"]
        assert tail.cursor == 2
        now[0] = 31.0
        assert await tail.fetch(aconn) == []
        assert tail.cursor == 4 and not tail.seen


def test_pipeline_wires_the_sparkplug_node(tmp_path: Path) -> None:
    from edge.app.pipeline import build_pipeline

    def components(sparkplug: dict[str, Any]) -> dict[str, Any]:
        cfg = AppConfig.model_validate({
            "box": {"id": "line/box 1"}, "spool": {"dir": str(tmp_path / "spool")},
            "metrics": {"enabled": False}, "mes": {"enabled": False}, "inference": {"sparkplug": sparkplug}})
        return build_pipeline(cfg, with_inference=False).components

    off = components({})
    assert "outbox-publisher" in off and "sparkplug-publisher" not in off
    both = components({"enabled": True, "group_id": "plant1"})
    assert "outbox-publisher" in both
    sp = both["sparkplug-publisher"]
    assert isinstance(sp, SparkplugPublisher)
    assert (sp.node.group, sp.node.node) == ("plant1", "line_box 1")
    assert sp.bdseq_file.path == tmp_path / "spool" / "sparkplug-plant1-line_box 1.bdseq"
    only = components({"enabled": True, "keep_json": False, "edge_node_id": "n7"})
    assert "outbox-publisher" not in only and only["sparkplug-publisher"].node.node == "n7"
