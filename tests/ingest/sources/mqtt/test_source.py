"""The MQTT source on the real broker: JSON round trips (MQTT 5 and 3.1.1), persistent sessions with manual
acknowledgement, shared subscriptions, TLS with client certificates, username and password, Sparkplug B."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import paho.mqtt.client as paho
import pyarrow as pa
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.app.plugins import make_codec
from edge.core.component import Emit
from edge.core.envelope import Envelope
from edge.core.settings import BrokerSettings, SecretRef, TlsSettings
from edge.simulator.mqtt_publishers import JsonPublisher, SparkplugEdgeNode
from edge.simulator.plant import Plant, PlantConfig
from ingest.settings import MqttSourceSettings
from ingest.sources.mqtt import MqttSource
from tests.conftest import MqttTarget
from tests.fixtures.services import MosquittoProcess, free_port, wait_port

PROTOCOLS = ["5", "3.1.1"]


class Collector:
    """An emit callable that keeps what it gets and, when ``auto_ack``, acknowledges it at once."""

    def __init__(self, auto_ack: bool = True) -> None:
        self.auto_ack = auto_ack
        self.envelopes: list[Envelope] = []

    async def __call__(self, env: Envelope) -> None:
        self.envelopes.append(env)
        if self.auto_ack:
            env.acknowledge()

    def of(self, kind: str) -> list[Envelope]:
        return [e for e in self.envelopes if e.kind == kind]

    def samples(self) -> pa.Table:
        batches = [e.batch for e in self.of("samples")]
        if not batches:
            return pa.table({"tag": pa.array([], pa.string()), "value": pa.array([], pa.float64())})
        return pa.Table.from_batches(batches).combine_chunks()

    def rows(self) -> list[tuple[str, int, float]]:
        t = self.samples()
        if t.num_rows == 0:
            return []
        return list(
            zip(
                t.column("tag").cast(pa.string()).to_pylist(),
                t.column("ts").cast(pa.int64()).to_pylist(),
                t.column("value").to_pylist(),
                strict=True,
            )
        )

    def n_samples(self) -> int:
        return sum(e.num_rows for e in self.of("samples"))


async def until(cond: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def running(source: MqttSource) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(source.run())
    try:
        await until(lambda: source.subscribed.is_set() or task.done(), 15, "the subscription")
        if task.done():
            task.result()
        yield task
    finally:
        await source.stop()
        await asyncio.wait_for(task, 20)


def mqtt_source(settings: MqttSourceSettings, broker: BrokerSettings, emit: Emit, **kw: Any) -> MqttSource:
    """An MqttSource with the codec its settings name, from the app's plugin table."""
    return MqttSource(settings, broker, emit, codec=make_codec(settings), **kw)


def publisher(url: str, **kw: Any) -> paho.Client:
    host, port = url.split("://")[1].split(":")
    c = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}", protocol=paho.MQTTv5
    )
    c.connect(host, int(port))
    c.loop_start()
    return c


def plant_source(mqtt: MqttTarget, protocol: str = "5", **kw: Any) -> MqttSourceSettings:
    return MqttSourceSettings(
        name=f"mq{uuid.uuid4().hex[:6]}",
        topics=[mqtt.topic("plant", "#")],
        protocol=protocol,  # type: ignore[arg-type]
        topic_pattern=mqtt.prefix + "/plant/{line}/{machine}/{measure}",
        tag_from_topic="{line}.{machine}.{measure}",
        clean_start=True,
        **kw,
    )


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_json_single_samples_round_trip(mqtt: MqttTarget, protocol: str) -> None:
    plant = Plant(PlantConfig(lines=1, machines=2, seed=3))
    collector = Collector()
    source = mqtt_source(plant_source(mqtt, protocol), BrokerSettings(url=mqtt.url), collector, batch_ms=20)  # type: ignore[call-arg]
    expected = []
    async with running(source):
        pub = JsonPublisher(plant, mqtt.url, prefix=mqtt.topic("plant"), qos=1)
        pub.connect()
        for _ in range(10):
            tick = plant.step()
            pub.publish_tick(tick)
            expected += [
                (t.name, tick.ts_us, float(v))
                for t, v, ok in zip(plant.tags, tick.values, tick.valid, strict=True)
                if ok
            ]
        await until(lambda: collector.n_samples() >= len(expected), what="all samples")
        pub.close()
    assert sorted(collector.rows()) == sorted(expected)
    assert source.counters["acked"] == len(expected)
    assert len({e.batch_id for e in collector.of("samples")}) == len(collector.of("samples"))


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_json_batched_round_trip(mqtt: MqttTarget, protocol: str) -> None:
    plant = Plant(PlantConfig(lines=1, machines=1, seed=4))
    collector = Collector()
    settings = plant_source(mqtt, protocol, samples_path="samples")
    source = mqtt_source(settings, BrokerSettings(url=mqtt.url), collector)  # type: ignore[call-arg]
    async with running(source):
        pub = JsonPublisher(plant, mqtt.url, prefix=mqtt.topic("plant"), batch=25, qos=1)
        pub.connect()
        expected = []
        for _ in range(100):
            tick = plant.step()
            pub.publish_tick(tick)
            expected += [
                (t.name, tick.ts_us, float(v))
                for t, v, ok in zip(plant.tags, tick.values, tick.valid, strict=True)
                if ok
            ]
        pub.flush()
        await until(lambda: collector.n_samples() >= len(expected), what="all samples")
        pub.close()
    assert pub.published == 16  # 4 tags x 100 ticks / 25 a message
    assert sorted(collector.rows()) == sorted(expected)


async def test_undecodable_payloads_are_dead_letters_and_the_stream_goes_on(mqtt: MqttTarget) -> None:
    collector = Collector()
    settings = MqttSourceSettings(
        name="dl", topics=[mqtt.topic("#")], tag_from_topic="{topic}", clean_start=True
    )
    source = mqtt_source(settings, BrokerSettings(url=mqtt.url), collector, batch_ms=20)  # type: ignore[call-arg]
    async with running(source):
        pub = publisher(mqtt.url)
        pub.publish(mqtt.topic("a"), b"\x00not json", qos=1)
        pub.publish(mqtt.topic("a"), b'{"ts": 1772366400000, "value": "abc"}', qos=1)
        pub.publish(mqtt.topic("a"), b'{"ts": 1772366400000, "value": 1}', qos=1).wait_for_publish(5)
        await until(
            lambda: collector.n_samples() == 1 and sum(e.num_rows for e in collector.of("dead_letters")) == 2
        )
        pub.loop_stop()
    dl = pa.Table.from_batches([e.batch for e in collector.of("dead_letters")])
    assert sorted(dl.column("reason").to_pylist()) == ["type_coercion", "undecodable"]
    assert b"\x00not json" in dl.column("payload").to_pylist()
    assert source.counters["dead_letter:undecodable"] == 1
    assert source.counters["acked"] == 3  # dead letters are acknowledged once they are stored, too


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_persistent_session_redelivers_what_was_not_acknowledged(
    mqtt: MqttTarget, protocol: str
) -> None:
    client_id = f"fe-test-{uuid.uuid4().hex[:10]}"
    topic = mqtt.topic("m", "temp")

    def settings() -> MqttSourceSettings:
        return MqttSourceSettings(
            name="persist",
            topics=[mqtt.topic("m", "#")],
            client_id=client_id,
            protocol=protocol,  # type: ignore[arg-type]
            clean_start=False,
            session_expiry_s=300,
            qos=1,
        )

    broker = BrokerSettings(url=mqtt.url)  # type: ignore[call-arg]
    # 1: receive, but the batch is never committed (no ack): a crash between receipt and write
    first = Collector(auto_ack=False)
    source = mqtt_source(settings(), broker, first, batch_ms=20, ack_wait_s=0.1)
    pub = publisher(mqtt.url)
    async with running(source):
        for i in range(20):
            pub.publish(topic, orjson.dumps({"ts": 1772366400000 + i, "value": i}), qos=1)
        await until(lambda: first.n_samples() == 20, what="the first delivery")
    assert source.counters["acked"] == 0
    # messages published while the appliance is away are kept by the broker too
    for i in range(20, 25):
        pub.publish(topic, orjson.dumps({"ts": 1772366400000 + i, "value": i}), qos=1).wait_for_publish(5)
    # 2: the same client id again: the broker delivers the 20 again, and the 5 new ones; now acknowledged
    second = Collector(auto_ack=True)
    source2 = mqtt_source(settings(), broker, second, batch_ms=20)
    async with running(source2):
        await until(lambda: second.n_samples() >= 25, what="the redelivery")
        await asyncio.sleep(0.3)
    assert sorted(v for _, _, v in second.rows()) == [float(i) for i in range(25)]
    assert source2.counters["acked"] == 25
    # 3: everything was acknowledged: nothing comes again
    third = Collector()
    source3 = mqtt_source(settings(), broker, third, batch_ms=20)
    async with running(source3):
        await asyncio.sleep(1.0)
    assert third.n_samples() == 0
    pub.loop_stop()


async def test_batch_id_is_stable_for_the_same_messages(mqtt: MqttTarget) -> None:
    ids = []
    for _ in range(2):
        collector = Collector()
        source = mqtt_source(
            MqttSourceSettings(name="same", topics=[mqtt.topic("x")], clean_start=True),
            BrokerSettings(url=mqtt.url),  # type: ignore[call-arg]
            collector,
            batch_rows=5,
            batch_ms=5000,
        )
        async with running(source):
            pub = publisher(mqtt.url)
            for i in range(5):
                pub.publish(mqtt.topic("x"), orjson.dumps({"ts": 1772366400000 + i, "value": i}), qos=1)
            await until(lambda c=collector: c.n_samples() == 5)  # type: ignore[misc]
            pub.loop_stop()
        ids.append([e.batch_id for e in collector.of("samples")])
    assert ids[0] == ids[1] and len(ids[0]) == 1


async def test_shared_subscription_splits_the_stream(mqtt: MqttTarget) -> None:
    group = f"g{uuid.uuid4().hex[:6]}"
    collectors = [Collector(), Collector()]
    sources = [
        mqtt_source(
            MqttSourceSettings(
                name=f"share{i}", topics=[mqtt.topic("s", "#")], shared_group=group, clean_start=True
            ),
            BrokerSettings(url=mqtt.url),  # type: ignore[call-arg]
            c,
            batch_ms=20,
        )
        for i, c in enumerate(collectors)
    ]
    async with running(sources[0]), running(sources[1]):
        pub = publisher(mqtt.url)
        for i in range(200):
            pub.publish(
                mqtt.topic("s", f"t{i % 7}"), orjson.dumps({"ts": 1772366400000 + i, "value": i}), qos=1
            )
        await until(lambda: sum(c.n_samples() for c in collectors) >= 200, what="all messages")
        await asyncio.sleep(0.3)
        pub.loop_stop()
    a = {v for _, _, v in collectors[0].rows()}
    b = {v for _, _, v in collectors[1].rows()}
    assert a and b and not (a & b)
    assert a | b == {float(i) for i in range(200)}


# -- TLS and authentication on a broker of our own ---------------------------------------------------------


@pytest.fixture
def broker_dir() -> Iterator[Path]:
    """A folder the broker can read after it drops root privileges (pytest's tmp_path is private to root)."""
    d = Path(tempfile.mkdtemp(prefix="fe-mqtt-auth-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _make_certs(d: Path) -> None:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def write(name: str, k: ec.EllipticCurvePrivateKey, c: x509.Certificate) -> None:
        (d / f"{name}.key").write_bytes(
            k.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        (d / f"{name}.crt").write_bytes(c.public_bytes(serialization.Encoding.PEM))

    ca_key = key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fe-test-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    write("ca", ca_key, ca)
    for f in d.iterdir():
        f.chmod(0o644)
    for name, san in (("server", True), ("client", False)):
        k = key()
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name)
            .public_key(k.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
        )
        if san:
            b = b.add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            )
        write(name, k, b.sign(ca_key, hashes.SHA256()))
    for f in d.iterdir():
        f.chmod(0o644)  # test keys: the broker runs as its own user


async def test_tls_with_ca_and_client_certificate(broker_dir: Path) -> None:
    tmp_path = broker_dir
    _make_certs(tmp_path)
    tls_port = free_port()
    broker = MosquittoProcess(
        extra_conf=(
            f"listener {tls_port} 127.0.0.1\ncafile {tmp_path}/ca.crt\ncertfile {tmp_path}/server.crt\n"
            f"keyfile {tmp_path}/server.key\nrequire_certificate true\n"
        )
    ).start()
    try:
        wait_port("127.0.0.1", tls_port)
        tls = TlsSettings(
            ca_file=tmp_path / "ca.crt", cert_file=tmp_path / "client.crt", key_file=tmp_path / "client.key"
        )
        collector = Collector()
        source = mqtt_source(
            MqttSourceSettings(
                name="tls", topics=["t/#"], url=f"mqtts://127.0.0.1:{tls_port}", tls=tls, clean_start=True
            ),
            BrokerSettings(),  # type: ignore[call-arg]
            collector,
            batch_ms=20,
        )
        async with running(source):
            pub = publisher(broker.url)  # the plain listener of the same broker
            pub.publish("t/x", b'{"ts": 1772366400000, "value": 42}', qos=1).wait_for_publish(5)
            await until(lambda: collector.n_samples() == 1)
            pub.loop_stop()
        assert collector.rows() == [("t/x", 1772366400000000, 42.0)]
        # without the client certificate the broker refuses the handshake: never subscribed
        refused = mqtt_source(
            MqttSourceSettings(
                name="tls2",
                topics=["t/#"],
                url=f"mqtts://127.0.0.1:{tls_port}",
                tls=TlsSettings(ca_file=tmp_path / "ca.crt"),
                clean_start=True,
            ),
            BrokerSettings(),  # type: ignore[call-arg]
            Collector(),
        )
        task = asyncio.create_task(refused.run())
        await asyncio.sleep(1.5)
        assert not refused.subscribed.is_set()
        await refused.stop()
        await asyncio.wait_for(task, 10)
    finally:
        broker.cleanup()


async def test_username_and_password(broker_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pwfile = broker_dir / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(pwfile), "alice", "s3cret"], check=True)
    pwfile.chmod(0o644)
    broker = MosquittoProcess(extra_conf=f"allow_anonymous false\npassword_file {pwfile}\n").start()
    try:
        monkeypatch.setenv("FE_TEST_MQTT_PW", "s3cret")
        collector = Collector()
        good = mqtt_source(
            MqttSourceSettings(
                name="auth",
                topics=["a/#"],
                username="alice",
                password=SecretRef(env="FE_TEST_MQTT_PW"),
                clean_start=True,
            ),
            BrokerSettings(url=broker.url),  # type: ignore[call-arg]
            collector,
            batch_ms=20,
        )
        async with running(good):
            pub = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
            pub.username_pw_set("alice", "s3cret")
            pub.connect("127.0.0.1", broker.port)
            pub.loop_start()
            pub.publish("a/b", b'{"ts": 1772366400000, "value": 1}', qos=1).wait_for_publish(5)
            await until(lambda: collector.n_samples() == 1)
            pub.loop_stop()
        monkeypatch.setenv("FE_TEST_MQTT_PW", "wrong")
        bad = mqtt_source(
            MqttSourceSettings(
                name="auth2",
                topics=["a/#"],
                username="alice",
                password=SecretRef(env="FE_TEST_MQTT_PW"),
                clean_start=True,
            ),
            BrokerSettings(url=broker.url),  # type: ignore[call-arg]
            Collector(),
        )
        task = asyncio.create_task(bad.run())
        await until(lambda: bad.counters["connect_failures"] >= 1, what="a refused connection")
        assert not bad.subscribed.is_set()
        await bad.stop()
        await asyncio.wait_for(task, 10)
    finally:
        broker.cleanup()


# -- Sparkplug B end to end ------------------------------------------------------------------------------


async def test_sparkplug_edge_node_rebirth_after_a_lost_message_and_death(mqtt: MqttTarget) -> None:
    group = f"fe{uuid.uuid4().hex[:8]}"
    host = f"host{uuid.uuid4().hex[:6]}"
    plant = Plant(PlantConfig(lines=1, machines=2, seed=5))
    collector = Collector()
    settings = MqttSourceSettings(
        name="sp",
        topics=[f"spBv1.0/{group}/#"],
        codec="sparkplug",
        clean_start=True,
        sparkplug_host_id=host,
        sparkplug_rebirth_interval_s=0.0,
    )
    source = mqtt_source(settings, BrokerSettings(url=mqtt.url), collector, batch_ms=20)  # type: ignore[call-arg]
    states: list[dict[str, Any]] = []
    watcher = publisher(mqtt.url)
    watcher.on_message = lambda c, u, m: states.append(orjson.loads(m.payload))
    watcher.subscribe(f"spBv1.0/STATE/{host}", qos=1)
    node = SparkplugEdgeNode(plant, mqtt.url, group=group, node="edge1", bdseq=3)
    async with running(source):
        await until(lambda: bool(states) and states[-1]["online"] is True, what="STATE online")
        node.connect()
        for _ in range(5):
            node.publish_tick(plant.step())
        await until(lambda: collector.n_samples() >= 8 + 5 * 8, what="births and data")
        tags = set(collector.samples().column("tag").cast(pa.string()).to_pylist())
        assert tags == {f"{group}/edge1/{t.machine}/{t.measure}" for t in plant.tags}
        # one DDATA is lost: the host asks for a rebirth, the node is born again, data flows on
        node.lose_next()
        node.publish_tick(plant.step())
        await until(lambda: node.rebirths == 1, what="the rebirth")
        before = collector.n_samples()
        tick = plant.step()
        node.publish_tick(tick)
        await until(lambda: collector.n_samples() >= before + 8, what="data after the rebirth")
        await asyncio.sleep(0.2)
        assert source.counters["commands_published"] == 1
        assert not any(e.kind == "dead_letters" for e in collector.envelopes)
        last = {r[0]: r for r in collector.rows()}
        for t, v in zip(plant.tags, tick.values, strict=True):
            assert last[f"{group}/edge1/{t.machine}/{t.measure}"][2] == float(v)
        # the node dies: its tags are stale
        node.close(graceful=True)
        await until(
            lambda: any(f == 8 for f in collector.samples().column("flags").to_pylist()), what="stale"
        )
        t = collector.samples()
        stale = [
            r
            for r, f in zip(
                t.column("tag").cast(pa.string()).to_pylist(), t.column("flags").to_pylist(), strict=True
            )
            if f == 8
        ]
        assert len(stale) == 8
        events = (
            pa.Table.from_batches([e.batch for e in collector.of("events")]).column("message").to_pylist()
        )
        assert any("sequence gap" in m for m in events) and any("died" in m for m in events)
    await until(lambda: states[-1]["online"] is False, what="STATE offline")
    assert states[0]["timestamp"] == states[-1]["timestamp"]
    watcher.loop_stop()
    assert np.isfinite(t.column("value").to_numpy()).all()


async def test_cut_journal_gives_redelivered_batches_their_old_ids(mqtt: MqttTarget, tmp_path: Path) -> None:
    """A crash between commit and acknowledgement: the broker delivers again, the journal cuts alike."""
    client_id = f"fe-test-{uuid.uuid4().hex[:10]}"
    journal = tmp_path / "cuts"

    def source(collector: Collector) -> MqttSource:
        settings = MqttSourceSettings(name="cuts", topics=[mqtt.topic("c", "#")], client_id=client_id,
                                      clean_start=False, session_expiry_s=300, qos=1, cut_journal=journal)
        return mqtt_source(settings, BrokerSettings(url=mqtt.url), collector, batch_rows=7, batch_ms=30,  # type: ignore[call-arg]
                          ack_wait_s=0.1)

    first = Collector(auto_ack=False)  # "committed" (we keep the ids) but never acknowledged
    pub = publisher(mqtt.url)
    src = source(first)
    async with running(src):
        for i in range(60):
            payload = orjson.dumps({"ts": 1772366400000 + i, "value": i})
            pub.publish(mqtt.topic("c", f"t{i % 3}"), payload, qos=1)
            if i % 9 == 0:
                await asyncio.sleep(0.2)  # some batches are cut by time, some by size
        await until(lambda: first.n_samples() == 60, what="the first delivery")
    ids_before = [e.batch_id for e in first.of("samples")]
    assert len(ids_before) > 3
    second = Collector()
    src2 = source(second)
    async with running(src2):
        await until(lambda: second.n_samples() >= 60, what="the redelivery")
    assert [e.batch_id for e in second.of("samples")] == ids_before
    assert src2.counters["cuts_replayed"] == len(ids_before)
    assert src2.counters["acked"] == 60
    pub.loop_stop()


def ack_cut_short(src: MqttSource, envelopes: list[Envelope], k: int) -> None:
    """Acknowledge ``envelopes`` (a batch's samples and the events that travel with them) as if the process
    died after sending ``k`` of their PUBACKs."""
    client = src._client
    assert client is not None
    real_ack, sent = client.ack, []

    def ack_until_the_crash(mid: int, qos: int) -> None:
        if len(sent) < k:
            sent.append(mid)
            real_ack(mid, qos)

    client.ack = ack_until_the_crash  # type: ignore[method-assign]
    for env in envelopes:
        env.acknowledge()
    assert len(sent) == k


@pytest.mark.parametrize("decode_workers", [0, 1])
async def test_cut_journal_after_a_crash_halfway_through_the_acknowledgements(
    mqtt: MqttTarget, tmp_path: Path, decode_workers: int
) -> None:
    """The process dies while it acknowledges a committed batch: only some PUBACKs reached the broker. The
    broker delivers the rest again; they must come back under the committed batch's id (the historian's
    ledger then drops them), not as a new batch that would duplicate rows."""
    client_id = f"fe-test-{uuid.uuid4().hex[:10]}"
    journal = tmp_path / "cuts"

    def source(collector: Collector) -> MqttSource:
        settings = MqttSourceSettings(name="cuts", topics=[mqtt.topic("h", "#")], client_id=client_id,
                                      clean_start=False, session_expiry_s=300, qos=1, cut_journal=journal,
                                      decode_workers=decode_workers)
        return mqtt_source(settings, BrokerSettings(url=mqtt.url), collector, batch_rows=7, batch_ms=30,  # type: ignore[call-arg]
                          ack_wait_s=0.1)

    first = Collector(auto_ack=False)
    pub = publisher(mqtt.url)
    src = source(first)
    n, k = 21, 2
    async with running(src):
        for i in range(n):
            payload = orjson.dumps({"ts": 1772366400000 + i, "value": i})
            pub.publish(mqtt.topic("h", f"t{i % 3}"), payload, qos=1)
        await until(lambda: first.n_samples() == n, what="the first delivery")
        batches = first.of("samples")
        sizes = [e.num_rows for e in batches]
        crashed = sizes.index(max(sizes))
        assert sizes[crashed] > k
        # that batch is "committed"; its acknowledgement is cut short after k of its PUBACKs
        ack_cut_short(src, [batches[crashed], *(e for e in first.envelopes if e.kind != "samples")], k)
        await asyncio.sleep(0.5)  # the PUBACKs reach the broker
    second = Collector()
    src2 = source(second)
    async with running(src2):
        await until(lambda: second.n_samples() >= n - k, what="the redelivery")
        await asyncio.sleep(0.3)  # nothing more arrives
    again = second.of("samples")
    # every batch comes back under its committed id; of the partly acknowledged one, only its beginning
    assert [e.batch_id for e in again] == [e.batch_id for e in batches]
    assert [e.num_rows for e in again] == [s - k if i == crashed else s for i, s in enumerate(sizes)]
    values = [b.column("value").to_pylist() for b in (e.batch for e in batches)]
    values[crashed] = values[crashed][:-k]
    assert [e.batch.column("value").to_pylist() for e in again] == values
    assert src2.counters["cuts_replayed"] == len(batches)
    pub.loop_stop()


async def test_messages_received_but_not_cut_are_not_taken_into_a_replayed_cut(
    mqtt: MqttTarget, tmp_path: Path
) -> None:
    """The process dies halfway through acknowledging its last committed batch, while the next batch is
    still being gathered. The broker delivers both again, all marked as redeliveries: the replayed cut must
    end where the committed batch's unacknowledged beginning ends, and the messages that were never cut
    must come as a batch of their own (a replayed cut is dropped by the ledger: taken into it, they were
    lost)."""
    client_id = f"fe-test-{uuid.uuid4().hex[:10]}"
    journal = tmp_path / "cuts"

    def source(collector: Collector) -> MqttSource:
        settings = MqttSourceSettings(name="cuts", topics=[mqtt.topic("g", "#")], client_id=client_id,
                                      clean_start=False, session_expiry_s=300, qos=1, cut_journal=journal)
        return mqtt_source(settings, BrokerSettings(url=mqtt.url), collector, batch_rows=7, batch_ms=30,  # type: ignore[call-arg]
                          ack_wait_s=0.1)

    def publish(i: int) -> None:
        pub.publish(mqtt.topic("g", f"t{i % 3}"), orjson.dumps({"ts": 1772366400000 + i, "value": i}), qos=1)

    first = Collector(auto_ack=False)
    pub = publisher(mqtt.url)
    src = source(first)
    n, k, uncut = 21, 2, 3
    async with running(src):
        for i in range(n):
            publish(i)
        await until(lambda: first.n_samples() == n, what="the first delivery")
        batches = first.of("samples")
        sizes = [e.num_rows for e in batches]
        assert sizes[-1] > k
        # from here the process gathers but cuts nothing, as if it died before its next cut
        src._after_loop = lambda hand_over, force=False: None  # type: ignore[method-assign]
        for i in range(n, n + uncut):
            publish(i)
        await until(lambda: src._cur.n_msgs == uncut, what="the uncut messages received")
        ack_cut_short(src, [batches[-1], *(e for e in first.envelopes if e.kind != "samples")], k)
        await asyncio.sleep(0.5)
    second = Collector()
    src2 = source(second)
    async with running(src2):
        await until(lambda: second.n_samples() >= n - k + uncut, what="the redelivery")
        await asyncio.sleep(0.3)
    again = second.of("samples")
    assert [e.batch_id for e in again[:len(batches)]] == [e.batch_id for e in batches]
    assert [e.num_rows for e in again] == [*sizes[:-1], sizes[-1] - k, uncut]
    assert again[-1].batch_id not in {e.batch_id for e in batches}
    assert again[-1].batch.column("value").to_pylist() == [float(i) for i in range(n, n + uncut)]
    pub.loop_stop()


async def test_reconnects_and_resubscribes_after_a_broker_restart(own_mosquitto: MosquittoProcess) -> None:
    collector = Collector()
    settings = MqttSourceSettings(name="restart", topics=["r/#"], clean_start=True, qos=1)
    source = mqtt_source(settings, BrokerSettings(url=own_mosquitto.url), collector, batch_ms=20,  # type: ignore[call-arg]
                        reconnect_min_s=0.2, reconnect_max_s=1.0)
    async with running(source):
        pub = publisher(own_mosquitto.url)
        pub.publish("r/a", b'{"ts": 1772366400000, "value": 1}', qos=1).wait_for_publish(5)
        await until(lambda: collector.n_samples() == 1)
        pub.loop_stop()
        await asyncio.to_thread(own_mosquitto.stop)
        await until(lambda: not source.connected.is_set(), what="the disconnect")
        await asyncio.to_thread(own_mosquitto.start)
        await until(lambda: source.subscribed.is_set(), 20, "a new subscription")  # subscribed again
        pub = publisher(own_mosquitto.url)
        pub.publish("r/a", b'{"ts": 1772366400001, "value": 2}', qos=1).wait_for_publish(5)
        await until(lambda: collector.n_samples() == 2)
        pub.loop_stop()
    assert source.counters["connects"] == 2 and source.counters["disconnects"] >= 1
    events = pa.Table.from_batches([e.batch for e in collector.of("events")]).column("message").to_pylist()
    assert any("disconnected" in m for m in events)


async def test_stop_while_the_broker_is_unreachable() -> None:
    settings = MqttSourceSettings(name="nobroker", topics=["x"], clean_start=True)
    collector = Collector()
    source = mqtt_source(settings, BrokerSettings(url=f"mqtt://127.0.0.1:{free_port()}"), collector,  # type: ignore[call-arg]
                        reconnect_min_s=0.1, reconnect_max_s=0.2, ack_wait_s=0.2)
    task = asyncio.create_task(source.run())
    await until(lambda: source.counters["connect_errors"] >= 2, what="connect attempts")
    await source.stop()
    await asyncio.wait_for(task, 10)
    events = pa.Table.from_batches([e.batch for e in collector.of("events")]).column("message").to_pylist()
    assert any("connect failed" in m for m in events)


async def test_sparkplug_will_carries_the_bdseq_and_the_node_comes_back(mqtt: MqttTarget) -> None:
    import socket

    from ingest.codecs.sparkplug.codec import SparkplugCodec

    group = f"fe{uuid.uuid4().hex[:8]}"
    plant = Plant(PlantConfig(lines=1, machines=1, seed=6))
    collector = Collector()
    settings = MqttSourceSettings(name="spw", topics=[f"spBv1.0/{group}/#"], codec="sparkplug",
                                  clean_start=True)
    source = mqtt_source(settings, BrokerSettings(url=mqtt.url), collector, batch_ms=20)  # type: ignore[call-arg]
    node = SparkplugEdgeNode(plant, mqtt.url, group=group, node="edge1", bdseq=7)
    async with running(source):
        node.connect()
        node.publish_tick(plant.step())
        await until(lambda: collector.n_samples() >= 8, what="birth and data")
        codec = source.codec
        assert isinstance(codec, SparkplugCodec)
        assert codec.nodes[(group, "edge1")].bdseq == 7
        sock = node.client.socket()
        assert sock is not None
        sock.shutdown(socket.SHUT_RDWR)  # type: ignore[attr-defined]  # the connection breaks without DISCONNECT: the broker sends the will
        await until(lambda: 8 in collector.samples().column("flags").to_pylist(), what="stale from the will")
        await until(lambda: node.births == 2, what="the node's next session")
        await until(lambda: codec.nodes[(group, "edge1")].bdseq == 8 and codec.nodes[(group, "edge1")].online,
                    what="the new birth")
        tick = plant.step()
        node.publish_tick(tick)
        n = collector.n_samples()
        await until(lambda: collector.n_samples() >= n + 4, what="data of the new session")
        assert collector.samples().column("flags").to_pylist()[-4:] == [0, 0, 0, 0]
        node.close()
