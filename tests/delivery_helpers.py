"""Helpers for the delivery fault-injection tests: a private PostgreSQL that a test may stop, and a QoS 1
publisher of numbered sample messages for the MQTT source.

Every message of the test stream carries ``n`` samples of one message number ``k``: ``ts = k * n + j``
microseconds (so every sample has its own ts), ``tag = t{ts % 50}``, ``value = ts * 0.25``. What the
historian must hold is therefore known exactly from the message numbers that were sent.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import paho.mqtt.client as paho
import psycopg
import pyarrow as pa
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.datamodel import samples_from_arrays
from edge.envelope import Envelope, batch_id_for
from tests.services import MosquittoProcess, free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class PrivatePostgres:
    """A PostgreSQL 15 cluster of the test's own (``initdb`` as the ``postgres`` user), on a free port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="fe-pg-"))
        self.data = self.dir / "data"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.dir, "postgres")
        self._run([str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                   "--no-sync", "-E", "UTF8"])

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, cmd: list[str]) -> None:
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self) -> PrivatePostgres:
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c max_connections=50")
        self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", opts, "-w", "-t", "30",
                   "-l", str(self.dir / "log"), "start"])
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"])

    def cleanup(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def queueing_mosquitto() -> Iterator[MosquittoProcess]:
    """A started mosquitto of the test's own whose persistent sessions survive its restart and queue without
    a limit while a client is away (``MosquittoProcess`` lets mosquitto write its persistence file)."""
    broker = MosquittoProcess(extra_conf="max_queued_messages 0").start()
    try:
        yield broker
    finally:
        broker.cleanup()


# -- the test stream -------------------------------------------------------------------------------------


def message_samples(k: int, n: int) -> tuple[np.ndarray, list[str], np.ndarray]:
    ts = np.arange(k * n, (k + 1) * n, dtype=np.int64) + 1_700_000_000_000_000
    tags = [f"t{t % 50}" for t in ts.tolist()]
    return ts, tags, ts.astype(np.float64) * 0.25


def envelope_for_message(k: int, n: int, source: str = "mqtt-test") -> Envelope:
    ts, tags, values = message_samples(k, n)
    batch = samples_from_arrays(ts, tags, values, source=source)
    return Envelope("samples", batch, batch_id_for(source, "msg", k))


def expected_rows(ks: list[int], n: int) -> tuple[np.ndarray, np.ndarray]:
    ts = np.concatenate([message_samples(k, n)[0] for k in sorted(ks)]) if ks else np.zeros(0, np.int64)
    return ts, ts.astype(np.float64) * 0.25


def historian_rows(dsn: str) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(ts in microseconds, tags, values) of every sample row in the historian, in ts order (read with COPY
    and parsed by pyarrow: millions of rows in seconds)."""
    import pyarrow.csv as pacsv

    buf = bytearray()
    query = ("COPY (SELECT (extract(epoch FROM ts) * 1000000)::bigint, value, tag FROM samples "
             "ORDER BY ts, tag) TO STDOUT")
    with psycopg.connect(dsn) as conn, conn.cursor() as cur, cur.copy(query) as copy:
        for chunk in copy:
            buf += chunk
    if not buf:
        return np.zeros(0, np.int64), [], np.zeros(0, np.float64)
    table = pacsv.read_csv(
        pa.py_buffer(bytes(buf)),
        read_options=pacsv.ReadOptions(column_names=["ts", "value", "tag"]),
        parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False),
        convert_options=pacsv.ConvertOptions(
            column_types={"ts": pa.int64(), "value": pa.float64(), "tag": pa.string()},
            null_values=["\\N"], strings_can_be_null=True))
    return (table.column("ts").to_numpy(), table.column("tag").to_pylist(),
            table.column("value").to_numpy(zero_copy_only=False))


def compare_rows(dsn: str, ks: list[int], n: int) -> None:
    """The historian holds exactly the samples of messages ``ks``: row by row, no loss, no duplicate."""
    ts, tags, values = historian_rows(dsn)
    want_ts, want_values = expected_rows(ks, n)
    dup = len(ts) - len(np.unique(ts))
    missing = np.setdiff1d(want_ts, ts)
    extra = np.setdiff1d(ts, want_ts)
    assert dup == 0, f"{dup} duplicated rows"
    assert len(missing) == 0, f"{len(missing)} rows lost, first ts {missing[:5]}"
    assert len(extra) == 0, f"{len(extra)} unexpected rows"
    assert np.array_equal(ts, want_ts)
    assert np.array_equal(values, want_values)
    assert tags == [f"t{t % 50}" for t in want_ts.tolist()]


# -- MQTT streams ----------------------------------------------------------------------------------------


def mqtt_payload(k: int, n: int) -> bytes:
    """Message ``k``: ``n`` samples in the JSON codec's ``samples`` list (ts in epoch microseconds)."""
    ts, _, values = message_samples(k, n)
    rows = [{"ts": int(t), "value": float(v)} for t, v in zip(ts, values, strict=True)]
    return orjson.dumps({"samples": rows})


def mqtt_topic(prefix: str, k: int) -> str:
    return f"{prefix}/dev{k % 5}"


def compare_mqtt_rows(dsn: str, ks: list[int], n: int, prefix: str) -> int:
    """The historian holds every sample of messages ``ks`` with the tag its topic gave, row by row.
    Returns the number of duplicated rows (the caller decides whether any are allowed)."""
    ts, tags, values = historian_rows(dsn)
    want_ts, want_values = expected_rows(ks, n)
    missing = np.setdiff1d(want_ts, ts)
    extra = np.setdiff1d(ts, want_ts)
    assert len(missing) == 0, f"{len(missing)} of {len(want_ts)} rows lost, first ts {missing[:5]}"
    assert len(extra) == 0, f"{len(extra)} unexpected rows"
    uniq, first = np.unique(ts, return_index=True)
    assert np.array_equal(uniq, want_ts)
    assert np.array_equal(values[first], want_values)
    per = (want_ts - message_samples(0, n)[0][0]) // n
    assert [tags[i] for i in first.tolist()] == [mqtt_topic(prefix, int(k)) for k in per.tolist()]
    return int(len(ts) - len(uniq))


class NumberedPublisher:
    """Publishes messages ``k = 0, 1, ...`` (QoS 1, persistent session) at a steady rate in a thread.
    paho resends what the broker did not acknowledge after a reconnect."""

    def __init__(self, port: int, prefix: str, n: int, rate_per_s: float, client_id: str) -> None:
        self.prefix = prefix
        self.n = n
        self.rate = rate_per_s
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(1000)
        self.client.reconnect_delay_set(0.2, 1)  # type: ignore[arg-type]  # paho hints int; seconds as float work
        self.acked: set[int] = set()
        self.sent = 0
        self._mids: dict[int, int] = {}
        self._early: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.connected = threading.Event()
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600

        def on_connect(c: paho.Client, u: Any, f: Any, reason: Any, p: Any) -> None:
            self.connected.set()

        def on_disconnect(c: paho.Client, u: Any, f: Any, reason: Any, p: Any) -> None:
            self.connected.clear()

        def on_publish(c: paho.Client, u: Any, mid: int, reason: Any, p: Any) -> None:
            with self._lock:
                k = self._mids.pop(mid, None)
                if k is not None:
                    self.acked.add(k)
                else:
                    self._early.add(mid)

        self.client.on_connect = on_connect
        self.client.on_disconnect = on_disconnect
        self.client.on_publish = on_publish
        self.client.connect_async("127.0.0.1", port, keepalive=10, clean_start=False, properties=props)
        self.client.loop_start()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self, count: int) -> NumberedPublisher:
        self.count = count
        self.connected.wait(10)
        self._thread.start()
        return self

    def _run(self) -> None:
        t0 = time.monotonic()
        for k in range(self.count):
            if self._stop.is_set():
                return
            delay = t0 + k / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            info = self.client.publish(mqtt_topic(self.prefix, k), mqtt_payload(k, self.n), qos=1)
            with self._lock:  # not held across publish(): paho calls on_publish under its own locks
                if info.mid in self._early:
                    self._early.discard(info.mid)
                    self.acked.add(k)
                else:
                    self._mids[info.mid] = k
            self.sent = k + 1

    def wait_done(self, timeout: float) -> None:
        self._thread.join(timeout)
        deadline = time.monotonic() + timeout
        while len(self.acked) < self.count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.acked) == self.count, f"the broker acknowledged {len(self.acked)} of {self.count}"

    def close(self) -> None:
        self._stop.set()
        self.client.disconnect()
        self.client.loop_stop()


def wait_until(cond: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def async_wait_until(cond: Callable[[], bool], timeout: float, what: str,
                           interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def count_samples(dsn: str) -> int:
    try:
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            row = conn.execute("SELECT count(*) FROM samples").fetchone()
            return int(row[0]) if row else 0
    except psycopg.OperationalError:
        return -1
