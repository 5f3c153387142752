"""A site on a 3-node NATS JetStream cluster: three real appliances publish, two site historians store.

Each box is ``edge run`` with its own layered config (``site_support.write_config``), spool and local
historian database on the running PostgreSQL; it takes a steady stream of numbered JSON messages over MQTT
from the running Mosquitto (QoS 1, a persistent session, so a SIGKILLed box gets its backlog again) and
publishes through the ``jetstream`` sink to the cluster (R3). The site historians are ``edge run`` with
``[site_historian]``, into the central historian. Inference is off (two cores; nothing here checks it).

Faults mid-stream: one NATS node SIGKILLed, one box SIGKILLed and restarted, one site historian SIGKILLed.
Then, row by row by (tag, ts): every sample sent to every box is in the central historian exactly once (and
in the box's own historian exactly once); ``edge fleet status`` saw the killed box silent and then back; a box
started from a changed config shows as drifted, and ``edge fleet diff`` shows the key.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import psycopg
import pytest

from tests.e2e.site_support import (
    HISTORIAN_INIT,
    Box,
    Cluster,
    check_rows,
    fleet,
    make_boxes,
    open_sessions,
    rows_per_box,
    states,
    wait_states,
    wait_streams,
    write_config,
)
from tests.fixtures.delivery_helpers import NumberedPublisher
from tests.fixtures.services import mqtt_host_port

pytestmark = pytest.mark.slow

BOXES = ("box-a", "box-b", "box-c")
COUNT, N, RATE = 1125, 40, 25.0  # messages per box, samples a message, messages/s per box (1,000 samples/s)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    if not (shutil.which("nats-server") or Path("/usr/sbin/nats-server").exists()):
        pytest.skip("nats-server not installed")
    c = Cluster(tmp_path)
    for i in range(3):
        c.start(i)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def box_dbs(pg_server_dsn: str) -> Iterator[Callable[[str], str]]:
    """A historian database of its own for each box (created, initialised; dropped afterwards)."""
    from edge.sinks.historian.admin import init_historian
    from edge.sinks.historian.settings import HistorianSettings

    run = uuid.uuid4().hex[:8]
    made: list[str] = []

    def dsn(box: str) -> str:
        name = f"fe_test_{run}_{box.replace('-', '_')}"
        with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        url = urlunparse(urlparse(pg_server_dsn)._replace(path=f"/{name}"))
        with psycopg.connect(url, autocommit=True) as conn:
            init_historian(conn, HistorianSettings.model_validate(HISTORIAN_INIT))
        return url

    try:
        yield dsn
    finally:
        with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
            for name in made:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _wait(cond: Callable[[], bool], timeout_s: float, what: Callable[[], object], every: float = 0.5) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, what()
        time.sleep(every)


def test_site_cluster_survives_node_box_and_consumer_kills(tmp_path: Path, cluster: Cluster, pg_dsn: str,
                                                           box_dbs: Callable[[str], str],
                                                           mqtt_server_url: str) -> None:
    from edge.sinks.historian.admin import init_historian
    from edge.sinks.historian.settings import HistorianSettings

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        init_historian(conn, HistorianSettings.model_validate(HISTORIAN_INIT))
    boxes = make_boxes(BOXES, box_dbs)
    by_name: dict[str, Box] = {b.name: b for b in boxes}
    cfg = write_config(tmp_path / "cfg", cluster, pg_dsn, tmp_path, boxes, mqtt_server_url)
    changed = write_config(tmp_path / "cfg-changed", cluster, pg_dsn, tmp_path, boxes, mqtt_server_url,
                           changed_box="box-c")
    _, mqtt_port = mqtt_host_port(mqtt_server_url)
    wait_streams(cluster.urls)
    open_sessions(boxes, mqtt_port)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    pubs: list[NumberedPublisher] = []

    def start(name: str) -> None:
        log = (tmp_path / f"{name}.log").open("ab")
        d = changed if name == "box-c" else cfg  # box-c runs a config the folder no longer renders
        procs[name] = subprocess.Popen([sys.executable, "-m", "edge.app.cli", "run", "--dir", str(d),
                                        "--box", name], stdout=log, stderr=log, cwd=str(tmp_path))

    def logs() -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(tmp_path.glob("*.log")))

    try:
        for name in ("site-historian-1", "site-historian-2", *BOXES):
            start(name)
        _wait(lambda: set(BOXES) <= set(states(cfg, cluster)), 60, logs)  # every box heartbeats
        t0 = time.monotonic()
        pubs = [NumberedPublisher(mqtt_port, b.prefix, N, RATE, f"pub-{b.client_id}").start(COUNT)
                for b in boxes]
        _wait(lambda: min(rows_per_box(pg_dsn, boxes).values()) > 0, 60, logs)  # a steady stream flows
        cluster.kill(2)  # one NATS node away: R3 keeps a quorum of two
        time.sleep(1.0)
        procs["box-b"].send_signal(signal.SIGKILL)
        procs["box-b"].wait(10)
        sent_at_kill = pubs[1].sent
        assert sent_at_kill < COUNT  # mid-stream: what follows is box-b's backlog in the broker
        want = {"box-a": "ok", "box-b": "silent", "box-c": "drift"}
        seen = wait_states(cfg, cluster, want, 20)
        assert {b: seen.get(b) for b in BOXES} == want, seen
        assert pubs[1].sent > sent_at_kill
        start("box-b")
        procs["site-historian-1"].send_signal(signal.SIGKILL)  # its unacked messages go to the other
        procs["site-historian-1"].wait(10)
        seen = wait_states(cfg, cluster, {"box-b": "ok"}, 30)
        assert seen.get("box-b") == "ok", seen
        for pub in pubs:
            pub.wait_done(120)  # the broker took every message
        full = {b: COUNT * N for b in BOXES}
        _wait(lambda: rows_per_box(pg_dsn, boxes) == full, 90,
              lambda: (rows_per_box(pg_dsn, boxes), logs()))
        elapsed = time.monotonic() - t0
        time.sleep(1.0)  # a late duplicate would land now
        central = check_rows(pg_dsn, boxes, COUNT, N)
        clean = {"stored": COUNT * N, "missing": 0, "duplicated": 0, "unexpected": 0}
        assert central == {b: clean for b in BOXES}, central  # nothing lost, nothing twice
        for box in boxes:  # each appliance's own historian, through the same faults
            assert check_rows(box.dsn, [box], COUNT, N) == {box.name: clean}, box.name
        assert set(states(cfg, cluster)) == set(BOXES)
        print(f"\n{len(BOXES)} boxes x {COUNT * N:,} samples through MQTT, JetStream R3 and two site "
              f"historians in {elapsed:.1f} s; 0 lost, 0 duplicated")
        diff = fleet(cfg, cluster, "diff", by_name["box-c"].name)
        assert diff.returncode == 1, diff.stderr
        assert '-    "batch_rows": 1000' in diff.stdout and '+    "batch_rows": 500' in diff.stdout
    finally:
        for pub in pubs:
            pub.close()
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
        for p in procs.values():
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
