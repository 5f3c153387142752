"""edge.core.mqtt.HighRateClient: paho's client with buffered reads and a cheaper MQTT 5 PUBLISH, no
properties.

The fast PUBLISH path is compared with paho's own on the same packets (hypothesis); the buffered reads on a
real mosquitto, with messages larger than the buffer, with and without properties, QoS 0 and 1.
"""

from __future__ import annotations

import struct
import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as paho
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.core.mqtt import HighRateClient, make_client
from edge.core.settings import BrokerSettings
from tests.conftest import MqttTarget


def _publish_packet(topic: bytes, payload: bytes, qos: int, mid: int, props: Properties | None) -> bytes:
    """The variable header and payload of an MQTT 5 PUBLISH (what paho keeps as ``_in_packet["packet"]``)."""
    out = struct.pack("!H", len(topic)) + topic
    if qos:
        out += struct.pack("!H", mid)
    out += props.pack() if props is not None else b"\x00"  # type: ignore[no-untyped-call]
    return out + payload


def _handled(client: HighRateClient, header: int, packet: bytes, fast: bool) -> tuple[Any, ...]:
    got: list[paho.MQTTMessage] = []
    client.on_message = lambda c, u, m: got.append(m)
    client._fast_publish = fast
    client._in_packet = {"command": header, "packet": packet}
    try:
        rc = client._handle_publish()
    except Exception as exc:  # paho's MalformedPacket, say: the same on both paths
        return ("raised", type(exc).__name__, str(exc), len(got))
    if not got:
        return (rc,)
    m = got[0]
    props = m.properties
    return (rc, m.mid, m.topic, m.payload, m.qos, m.dup, m.retain, type(props),
            props.packetType if props else None, props.json() if props else None,  # type: ignore[no-untyped-call]
            str(props))


def _client() -> HighRateClient:
    c = HighRateClient(paho.CallbackAPIVersion.VERSION2, client_id="t", protocol=paho.MQTTv5)
    c.manual_ack_set(True)  # nothing to send: no connection here
    return c


_props = st.one_of(
    st.none(),
    st.builds(lambda: Properties(PacketTypes.PUBLISH)),  # type: ignore[no-untyped-call]
    st.tuples(st.integers(0, 2**32 - 1), st.text(max_size=8), st.integers(1, 10)).map(
        lambda a: _with(MessageExpiryInterval=a[0], ContentType=a[1], TopicAlias=a[2])),
    st.tuples(st.text(max_size=5), st.text(max_size=5)).map(lambda kv: _with(UserProperty=[kv])),
)


def _with(**kw: Any) -> Properties:
    p = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    for k, v in kw.items():
        setattr(p, k, v)
    return p


@settings(max_examples=300, deadline=None)
@given(topic=st.text(max_size=30).map(str.encode), payload=st.binary(max_size=300), qos=st.integers(0, 1),
       mid=st.integers(1, 65535), dup=st.booleans(), retain=st.booleans(), props=_props)
def test_fast_publish_gives_what_paho_gives(topic: bytes, payload: bytes, qos: int, mid: int, dup: bool,
                                            retain: bool, props: Properties | None) -> None:
    header = 0x30 | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    packet = _publish_packet(topic, payload, qos, mid, props)
    c = _client()
    assert _handled(c, header, packet, fast=True) == _handled(c, header, packet, fast=False)


def test_fast_publish_hands_properties_and_short_packets_to_paho(monkeypatch: pytest.MonkeyPatch) -> None:
    c = _client()
    calls: list[int] = []
    orig = paho.Client._handle_publish

    def counting(self: paho.Client) -> MQTTErrorCode:  # paho's own, counted (not replaced)
        calls.append(1)
        return orig(self)

    monkeypatch.setattr(paho.Client, "_handle_publish", counting)
    _handled(c, 0x30, _publish_packet(b"a/b", b"x", 0, 0, None), fast=True)
    assert calls == []  # the fast path
    _handled(c, 0x30, _publish_packet(b"a/b", b"x", 0, 0, _with(ContentType="j")), fast=True)
    assert calls == [1]
    _handled(c, 0x32, b"\x00\x03a/b\x00", fast=True)  # QoS 1 without room for properties
    assert calls == [1, 1]
    monkeypatch.undo()
    # the empty properties are paho's class, packet type and content, a new object each time
    a, b = c.empty_publish_properties(), c.empty_publish_properties()
    assert a is not b and a.packetType == PacketTypes.PUBLISH and a.json() == {}  # type: ignore[no-untyped-call]
    a.ContentType = "x"
    assert b.json() == {} and c.empty_publish_properties().json() == {}  # type: ignore[no-untyped-call]


def _drive(client: HighRateClient, until: threading.Event, timeout: float) -> None:
    """The loop MqttSource runs: loop_read while bytes wait in the buffer, else paho's select loop."""
    deadline = time.monotonic() + timeout
    while not until.is_set() and time.monotonic() < deadline:
        if client.buffered():
            rc = client.loop_read()
            if rc == MQTTErrorCode.MQTT_ERR_SUCCESS and client.want_write():
                client.loop_write()
        else:
            client.loop(timeout=0.05)


def test_buffered_reads_on_a_real_broker_in_order_and_whole(mqtt: MqttTarget) -> None:
    sizes = [0, 1, 100, 70_000, 300_000, 5, 2_000_000, 10] + [200] * 3000  # some larger than the buffer
    topic = mqtt.topic("hr", "x")
    sub, address, props = make_client(BrokerSettings(url=mqtt.url), client_id=f"hr-{uuid.uuid4().hex[:6]}",
                                      high_rate=True)
    assert isinstance(sub, HighRateClient)
    got: list[tuple[bytes, int, Any]] = []
    subscribed, done = threading.Event(), threading.Event()

    def on_message(c: paho.Client, u: Any, m: paho.MQTTMessage) -> None:
        got.append((m.payload, m.qos, m.properties.json() if m.properties else None))  # type: ignore[no-untyped-call]
        if len(got) == len(sizes):
            done.set()

    sub.on_message = on_message
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
    sub.connect(address.host, address.port, properties=props)
    _drive(sub, subscribed, 10)
    assert subscribed.is_set()
    pub = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    pub.connect(address.host, address.port)
    pub.loop_start()
    expected = []
    for i, n in enumerate(sizes):
        payload = bytes([i % 251]) * n
        p = _with(UserProperty=[("i", str(i))]) if i % 7 == 0 else None
        pub.publish(topic, payload, qos=i % 2, properties=p)
        expected.append((payload, i % 2, {"UserProperty": [("i", str(i))]} if p else {}))
    _drive(sub, done, 60)
    pub.disconnect()
    pub.loop_stop()
    sub.disconnect()
    assert len(got) == len(expected)
    for qos in (0, 1):  # in order within a QoS (the publisher's QoS 0 may overtake its queued QoS 1)
        assert [m for m in got if m[1] == qos] == [m for m in expected if m[1] == qos]
