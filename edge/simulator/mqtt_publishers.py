"""The simulated plant over MQTT: JSON publishers (a sample or a batch a message) and a Sparkplug B edge node.

Both take their values from a :class:`TickSource` (``edge.simulator.plant.Plant`` is one: ``tags`` and
``step()``), so tests can also drive them with hand-made ticks.

JSON: topic ``<prefix>/<line>/<machine>/<measure>`` (``plant/line1/press1/vibration``), payload
``{"ts": ISO-8601, "value": v, "quality": 0}``; with ``batch > 1`` each message carries ``batch`` samples of
one tag: ``{"samples": [{"ts": ..., "value": ..., "quality": 0}, ...]}``.

Sparkplug B: edge node ``<group>/<node>``, one device per machine (``line1.press1``), one metric per measure.
The NDEATH (with the session's ``bdSeq``) is the MQTT will; on connect the node publishes NBIRTH (``bdSeq``,
``Node Control/Rebirth`` = false, seq 0) and a DBIRTH per machine (metrics with names, aliases and
datatypes), then DDATA with aliases only; ``seq`` runs 0..255 and wraps. An NCMD ``Node Control/Rebirth``
makes it publish the births again (seq starting over, same bdSeq). ``bdSeq`` goes up with every new MQTT
session. ``lose_next()`` skips a sequence number, as if a message were lost.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge.core.mqtt import BrokerAddress
from ingest.codecs.sparkplug.payload import (
    BDSEQ_METRIC,
    NAMESPACE,
    REBIRTH_METRIC,
    DataType,
    make_payload,
    metric_value,
    pb,
)


class SimTagLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def line(self) -> str: ...
    @property
    def machine(self) -> str: ...
    @property
    def measure(self) -> str: ...


class TickLike(Protocol):
    @property
    def ts_us(self) -> int: ...
    @property
    def values(self) -> Any: ...  # float64 array, one per tag
    @property
    def valid(self) -> Any: ...  # bool array


class TickSource(Protocol):
    """What the publishers need of a plant (``edge.simulator.plant.Plant`` fits)."""

    @property
    def tags(self) -> Sequence[SimTagLike]: ...

    def step(self) -> TickLike: ...


def iso_us(ts_us: int) -> str:
    return datetime.fromtimestamp(ts_us // 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S") + \
        f".{ts_us % 1_000_000:06d}Z"


def _client(url: str, client_id: str | None = None) -> tuple[paho.Client, BrokerAddress]:
    address = BrokerAddress.parse(url)
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"fe-sim-{uuid.uuid4().hex[:8]}",
                         protocol=paho.MQTTv5)
    client.max_queued_messages_set(0)
    return client, address


class JsonPublisher:
    """Publishes each tick of ``plant`` as JSON: a sample a message, or ``batch`` samples of one tag."""

    def __init__(self, plant: TickSource, url: str = "mqtt://127.0.0.1:1883", *, prefix: str = "plant",
                 batch: int = 1, qos: int = 0, client_id: str | None = None) -> None:
        self.plant = plant
        self.prefix = prefix.rstrip("/")
        self.batch = max(1, batch)
        self.qos = qos
        self.client, self.address = _client(url, client_id)
        self.topics = [f"{self.prefix}/{t.line}/{t.machine.split('.')[-1]}/{t.measure}" for t in plant.tags]
        self._buf: list[list[dict[str, Any]]] = [[] for _ in self.topics]
        self.published = 0  # messages
        self.samples = 0

    def connect(self, timeout: float = 10.0) -> None:
        self.client.connect(self.address.host, self.address.port)
        self.client.loop_start()
        deadline = time.monotonic() + timeout
        while not self.client.is_connected():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no MQTT connection to {self.address.host}:{self.address.port}")
            time.sleep(0.01)

    def close(self) -> None:
        self.flush()
        self.client.disconnect()
        self.client.loop_stop()

    def publish_tick(self, tick: TickLike) -> None:
        ts = iso_us(int(tick.ts_us))
        valid = np.asarray(tick.valid, dtype=bool)
        values = np.asarray(tick.values, dtype=np.float64)
        for i in np.flatnonzero(valid).tolist():
            sample = {"ts": ts, "value": float(values[i]), "quality": 0}
            if self.batch == 1:
                self.client.publish(self.topics[i], orjson.dumps(sample), qos=self.qos)
                self.published += 1
                self.samples += 1
            else:
                buf = self._buf[i]
                buf.append(sample)
                if len(buf) >= self.batch:
                    self._send(i)

    def _send(self, i: int) -> None:
        buf = self._buf[i]
        if buf:
            self.client.publish(self.topics[i], orjson.dumps({"samples": buf}), qos=self.qos)
            self.published += 1
            self.samples += len(buf)
            self._buf[i] = []

    def flush(self) -> None:
        for i in range(len(self._buf)):
            self._send(i)

    def run(self, ticks: int, *, realtime: bool = False, dt_s: float = 0.1) -> None:
        """Step the plant ``ticks`` times and publish; ``realtime`` paces it at ``dt_s`` a tick."""
        t0 = time.monotonic()
        for k in range(ticks):
            self.publish_tick(self.plant.step())
            if realtime:
                delay = t0 + (k + 1) * dt_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        self.flush()


class SparkplugEdgeNode:
    """A Sparkplug B edge node publishing ``plant``: one device per machine, one metric per measure."""

    def __init__(self, plant: TickSource, url: str = "mqtt://127.0.0.1:1883", *, group: str = "factory",
                 node: str = "edge1", bdseq: int = 0, client_id: str | None = None) -> None:
        self.plant = plant
        self.group, self.node = group, node
        self.url = url
        self.client, self.address = _client(url, client_id)
        self.bdseq = bdseq & 0xFF  # of the current (or next) MQTT session
        self.seq = 0
        self.devices: dict[str, list[int]] = {}  # device -> tag indexes
        for i, t in enumerate(plant.tags):
            self.devices.setdefault(t.machine, []).append(i)
        self._alias = {i: i + 1 for i in range(len(plant.tags))}  # alias per tag index (0 is never used)
        self._last: dict[int, float] = {}
        self._lock = threading.Lock()
        self.births = 0
        self.rebirths = 0
        self.born = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        self._set_will()

    # topics
    def topic(self, mtype: str, device: str | None = None) -> str:
        base = f"{NAMESPACE}/{self.group}/{mtype}/{self.node}"
        return f"{base}/{device}" if device else base

    def _ndeath(self) -> bytes:
        return make_payload([(BDSEQ_METRIC, None, DataType.Int64, self.bdseq)], seq=None)

    def _set_will(self) -> None:
        self.client.will_set(self.topic("NDEATH"), self._ndeath(), qos=1, retain=False)

    def _next_seq(self) -> int:
        s = self.seq
        self.seq = (self.seq + 1) % 256
        return s

    # MQTT
    def connect(self, timeout: float = 10.0) -> None:
        self.client.connect(self.address.host, self.address.port)
        self.client.loop_start()
        if not self.born.wait(timeout):
            raise TimeoutError(f"edge node {self.group}/{self.node}: no connection/birth in {timeout}s")

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            return
        client.subscribe([(self.topic("NCMD"), 1), (f"{NAMESPACE}/{self.group}/DCMD/{self.node}/+", 1)])
        self.publish_births()
        self.born.set()

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.born.clear()
        with self._lock:  # the next session gets the next bdSeq, in its will and its NBIRTH
            self.bdseq = (self.bdseq + 1) % 256
            self._set_will()

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        try:
            p = pb.Payload.FromString(msg.payload)
        except Exception:
            return
        for m in p.metrics:
            if m.name == REBIRTH_METRIC and metric_value(m, DataType.Boolean):
                self.rebirths += 1
                self.publish_births()

    def publish_births(self) -> None:
        with self._lock:
            self.seq = 0
            node_metrics: list[tuple[str | None, int | None, int, Any]] = [
                (BDSEQ_METRIC, None, DataType.Int64, self.bdseq),
                (REBIRTH_METRIC, None, DataType.Boolean, False),
            ]
            self.client.publish(self.topic("NBIRTH"), make_payload(node_metrics, seq=self._next_seq()), qos=0)
            tags = self.plant.tags
            for device, idx in self.devices.items():
                metrics: list[tuple[str | None, int | None, int, Any]] = [
                    (tags[i].measure, self._alias[i], DataType.Double, self._last.get(i, 0.0)) for i in idx]
                self.client.publish(self.topic("DBIRTH", device), make_payload(metrics, seq=self._next_seq()),
                                    qos=0)
            self.births += 1

    def publish_tick(self, tick: TickLike) -> None:
        valid = np.asarray(tick.valid, dtype=bool)
        values = np.asarray(tick.values, dtype=np.float64)
        ts_ms = int(tick.ts_us) // 1000
        with self._lock:
            for device, idx in self.devices.items():
                metrics: list[tuple[str | None, int | None, int, Any]] = []
                for i in idx:
                    if valid[i]:
                        v = float(values[i])
                        self._last[i] = v
                        metrics.append((None, self._alias[i], DataType.Double, v))
                if metrics:
                    payload = make_payload(metrics, seq=self._next_seq(), timestamp_ms=ts_ms)
                    self.client.publish(self.topic("DDATA", device), payload, qos=0)

    def lose_next(self, n: int = 1) -> None:
        """Skip ``n`` sequence numbers, as if ``n`` messages had been lost on the way."""
        with self._lock:
            self.seq = (self.seq + n) % 256

    def run(self, ticks: int, *, realtime: bool = False, dt_s: float = 0.1) -> None:
        t0 = time.monotonic()
        for k in range(ticks):
            self.publish_tick(self.plant.step())
            if realtime:
                delay = t0 + (k + 1) * dt_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)

    def close(self, *, graceful: bool = True) -> None:
        """Disconnect; ``graceful`` publishes the NDEATH first (the will covers an abrupt loss)."""
        if graceful and self.client.is_connected():
            info = self.client.publish(self.topic("NDEATH"), self._ndeath(), qos=1)
            info.wait_for_publish(5.0)
        self.client.disconnect()
        self.client.loop_stop()
