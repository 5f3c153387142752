"""Helpers for the site-cluster test: a 3-node NATS cluster, the site's config folder, the boxes' MQTT
sessions and databases, the fleet command, and the row-by-row count in the central historian.

Each box is a real ``edge run`` with its own layered config, spool and local historian database. It takes
numbered JSON messages over MQTT (``NumberedPublisher``: message ``k`` holds ``N`` samples with
``ts = k * N + j`` microseconds past a fixed epoch, on topic ``<prefix>/dev{k % 5}``, and the topic is the
tag), so what the central historian must hold is known exactly from the message numbers sent.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as paho
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.fixtures.delivery_helpers import expected_rows, historian_rows, mqtt_topic
from tests.fixtures.services import free_port, port_open

# Retention as ``edge historian init`` sets it: long, or a restarted box's maintenance deletes the test's
# fixed-epoch rows from its own historian as expired.
HISTORIAN_INIT = {"retention": "36500 days"}


def wait_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not port_open("127.0.0.1", port):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on {port}")
        time.sleep(0.05)


class Cluster:
    """Three ``nats-server`` processes with JetStream, routed to each other (free ports, temp stores)."""

    def __init__(self, root: Path) -> None:
        self.exe = shutil.which("nats-server") or "/usr/sbin/nats-server"
        self.ports = [free_port() for _ in range(3)]
        self.cports = [free_port() for _ in range(3)]
        self.root = root
        self.procs: list[subprocess.Popen[bytes] | None] = [None, None, None]

    @property
    def urls(self) -> list[str]:
        return [f"nats://127.0.0.1:{p}" for p in self.ports]

    def start(self, i: int) -> None:
        routes = ",".join(f"nats://127.0.0.1:{c}" for j, c in enumerate(self.cports) if j != i)
        log = (self.root / f"nats-{i}.log").open("ab")
        self.procs[i] = subprocess.Popen(
            [self.exe, "-a", "127.0.0.1", "-p", str(self.ports[i]), "-n", f"n{i}", "-js",
             "-sd", str(self.root / f"store-{i}"), "--cluster_name", "fe-test",
             "--cluster", f"nats://127.0.0.1:{self.cports[i]}", "--routes", routes],
            stdout=log, stderr=log)
        wait_port(self.ports[i])

    def kill(self, i: int) -> None:
        proc = self.procs[i]
        if proc is not None:
            proc.kill()
            proc.wait(10)

    def stop(self) -> None:
        for p in self.procs:
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(10)


@dataclass(frozen=True)
class Box:
    """One appliance of the site: its MQTT topics and session, and its local historian database."""

    name: str
    prefix: str  # every topic (and so every tag) of this box starts with it
    client_id: str  # the MQTT source's stable id: its persistent session outlives a SIGKILL
    dsn: str  # the box's own historian

    @property
    def topic_filter(self) -> str:
        return f"{self.prefix}/#"


def make_boxes(names: tuple[str, ...], db_dsn: Any) -> list[Box]:
    run = uuid.uuid4().hex[:8]
    return [Box(n, f"fe-test/{run}/{n}", f"fe-{run}-{n}", db_dsn(n)) for n in names]


def open_sessions(boxes: list[Box], port: int, protocol_qos: int = 1) -> None:
    """Create each box's persistent MQTT session with its subscription before anything is published, so
    the first messages wait in the broker for the box instead of going nowhere while it starts."""
    for box in boxes:
        done = {"sub": False}
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=box.client_id, protocol=paho.MQTTv5)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600

        def on_subscribe(c: paho.Client, u: Any, mid: int, reasons: Any, p: Any, d: dict[str, bool] = done
                         ) -> None:
            d["sub"] = True

        client.on_subscribe = on_subscribe
        client.connect("127.0.0.1", port, keepalive=10, clean_start=False, properties=props)
        client.loop_start()
        client.subscribe(box.topic_filter, qos=protocol_qos)
        deadline = time.monotonic() + 10
        while not done["sub"]:
            assert time.monotonic() < deadline, f"no SUBACK for {box.name}"
            time.sleep(0.02)
        client.disconnect()
        client.loop_stop()


def write_config(d: Path, cluster: Cluster, central_dsn: str, tmp: Path, boxes: list[Box], broker_url: str,
                 changed_box: str | None = None) -> Path:
    """The site's config folder: base and site layers, a layer per box and per site historian.
    ``changed_box`` gets a smaller ``batch_rows``: the folder the fleet reads then no longer renders it."""
    (d / "sites").mkdir(parents=True)
    (d / "boxes").mkdir()
    servers = json.dumps(cluster.urls)
    (d / "base.toml").write_text(f'[box]\nsite = "s1"\n[jetstream]\nservers = {servers}\n')
    # Old timestamps on purpose (a fixed epoch makes the expected rows exact): the gate's age rule is off
    # (and every historian is initialised with ``HISTORIAN_INIT``'s long retention).
    (d / "sites" / "s1.toml").write_text("[inference]\nenabled = false\n[mes]\nenabled = false\n"
                                         "[metrics]\nenabled = false\n[quality]\naccept_past = true\n")
    for box in boxes:
        rows = 500 if box.name == changed_box else 1000
        (d / "boxes" / f"{box.name}.toml").write_text(f'''
[pipeline]
batch_rows = {rows}
batch_ms = 100
[historian]
dsn = "{box.dsn}"
maintenance_interval_s = 3600
[broker]
url = "{broker_url}"
session_expiry_s = 3600
[spool]
dir = "{tmp / box.name / "spool"}"
[[sources.mqtt]]
name = "plant"
topics = ["{box.topic_filter}"]
client_id = "{box.client_id}"
samples_path = "samples"
ts_format = "epoch_us"
decode_workers = 0
[jetstream]
enabled = true
line = "l1"
heartbeat_interval_s = 1.0
retry_interval_s = 0.3
publish_timeout_s = 2.0
''')
    for i in (1, 2):
        (d / "boxes" / f"site-historian-{i}.toml").write_text(f'''
[historian]
dsn = "{central_dsn}"
maintenance_interval_s = 3600
[broker]
url = "mqtt://127.0.0.1:{free_port()}"
[spool]
dir = "{tmp / f"sh{i}" / "spool"}"
[site_historian]
enabled = true
servers = {servers}
ack_wait_s = 3.0
fetch_batch = 8
''')
    return d


def wait_streams(urls: list[str], timeout_s: float = 30.0) -> None:
    """The site streams exist (R3) once the cluster has a leader."""
    from edge.sinks.jetstream.streams import ensure_streams_when_ready

    asyncio.run(ensure_streams_when_ready(urls, ["s1"], timeout_s=timeout_s, replicas=3, max_age_s=3600,
                                          max_bytes=-1, duplicate_window_s=120))


def fleet(cfg: Path, cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.app.cli", "fleet", *args, "--dir", str(cfg),
                           "--site", "s1", "--servers", ",".join(cluster.urls)],
                          capture_output=True, text=True, timeout=60)


def states(cfg: Path, cluster: Cluster) -> dict[str, str]:
    out = fleet(cfg, cluster, "status", "--json", "--silent-after", "3")
    assert out.returncode == 0, out.stderr
    return {b["box"]: b["state"] for b in json.loads(out.stdout)["boxes"]}


def wait_states(cfg: Path, cluster: Cluster, want: dict[str, str], timeout_s: float) -> dict[str, str]:
    """Poll ``edge fleet status`` until every box in ``want`` shows its state at once (or time runs out):
    a live box may miss a heartbeat while its NATS node is failed over, so one reading is not the answer."""
    deadline = time.monotonic() + timeout_s
    while True:
        now = states(cfg, cluster)
        if all(now.get(b) == s for b, s in want.items()) or time.monotonic() > deadline:
            return now
        time.sleep(0.5)


def rows_per_box(dsn: str, boxes: list[Box]) -> dict[str, int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        got: dict[str, int] = dict(conn.execute("SELECT split_part(tag::text, '/', 3), count(*) FROM samples "
                                "GROUP BY 1").fetchall())
    return {b.name: int(got.get(b.name, 0)) for b in boxes}


def check_rows(dsn: str, boxes: list[Box], count: int, n: int) -> dict[str, dict[str, int]]:
    """Row by row, by (tag, ts): per box, how many of the rows it was sent are missing, duplicated or
    unexpected in the historian at ``dsn``, and how many it holds."""
    ts, tags, _ = historian_rows(dsn)
    tag_arr = np.array(tags, dtype=object)
    want_ts, _ = expected_rows(list(range(count)), n)
    base = want_ts[0]
    out: dict[str, dict[str, int]] = {}
    for box in boxes:
        mine = (np.char.startswith(tag_arr.astype(str), box.prefix + "/") if len(tag_arr)
                else np.zeros(0, bool))
        got = [f"{t}|{s}" for t, s in zip(tag_arr[mine].tolist(), ts[mine].tolist(), strict=True)]
        want = {f"{mqtt_topic(box.prefix, int((s - base) // n))}|{s}" for s in want_ts.tolist()}
        unique = set(got)
        out[box.name] = {"stored": len(got), "missing": len(want - unique),
                         "duplicated": len(got) - len(unique), "unexpected": len(unique - want)}
    return out
