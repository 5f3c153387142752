"""A site on a 3-node NATS JetStream cluster: boxes publish, two site historians store centrally.

Boxes here are a small driver process each (``BOX_DRIVER`` below) that runs the real ``jetstream`` sink plugin
from the ``SINKS`` table (publisher + heartbeat, own config and spool) on synthetic samples, with a durable
source cursor like an MQTT persistent session: after a crash it delivers again from the first batch not
acknowledged. Full appliances (OPC-UA, local historian, inference) would triple the load on two cores for
nothing this test checks. The site historians are ``edge run`` with ``[site_historian]``.

Faults mid-stream: one NATS node SIGKILLed, one box SIGKILLed and restarted, one site historian SIGKILLed.
Then: every (tag, ts) in the central historian exactly once; ``edge fleet status`` saw the killed box silent
and then back; a box started from a changed config shows as drifted, and ``edge fleet diff`` shows the key.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.edge.sinks.jetstream.conftest import free_port, wait_port

pytestmark = pytest.mark.slow

BOXES = ("box-a", "box-b", "box-c")
TOTAL = 300  # batches per box
ROWS = 200  # rows per batch
INTERVAL_S = 0.05

BOX_DRIVER = r'''
import asyncio, os, sys, time
from pathlib import Path
import numpy as np
from edge.app.config import load_config
from edge.app.fleet.info import app_info
from edge.app.plugins import SINKS, BuildContext
from edge.core.datamodel import samples_from_arrays
from edge.core.envelope import Envelope
from edge.core.metrics import Metrics
from edge.core.supervisor import Supervisor

cfg_dir, box, state, total, rows, interval = sys.argv[1:7]
total, rows, interval = int(total), int(rows), float(interval)
cfg = load_config(Path(cfg_dir), box).config
state = Path(state)
start = int(state.read_text()) if state.exists() else 0
done: set[int] = set()
cursor = [start]

def acked(seq: int) -> None:
    done.add(seq)
    moved = False
    while cursor[0] in done:
        done.discard(cursor[0]); cursor[0] += 1; moved = True
    if moved:
        tmp = state.with_suffix(".tmp")
        with open(tmp, "w") as fh:
            fh.write(str(cursor[0])); fh.flush(); os.fsync(fh.fileno())
        os.replace(tmp, state)

class Driver:
    name, role = "driver", "source"
    def __init__(self, inbox): self.inbox, self.stopping = inbox, False
    async def run(self):
        t0 = 1_700_000_000_000_000
        for seq in range(start, total):
            if self.stopping: return
            ts = t0 + seq * rows + np.arange(rows)
            batch = samples_from_arrays(ts, [f"{box}.t{i % 5}" for i in range(rows)],
                                        np.full(rows, float(seq)), source="driver")
            await self.inbox.put(Envelope("samples", batch, f"{box}-{seq}", [lambda s=seq: acked(s)]))
            await asyncio.sleep(interval)
        while not self.stopping: await asyncio.sleep(0.2)
    async def stop(self): self.stopping = True

async def main():
    async def nowhere(env): pass
    ctx = BuildContext(box_id=box, historian_dsn="", historian_password=None, broker=cfg.broker,
                       pipeline=cfg.pipeline, spool=cfg.spool, inference=cfg.inference, metrics=Metrics(),
                       on_event=lambda *a: None, emit=nowhere)
    entry = next(p for section, p in SINKS if p.name == "jetstream")
    components = entry.factory(cfg.jetstream, ctx)
    sup = Supervisor()
    info = app_info(cfg, sup, {})
    for c in components:
        c.attach_app(info)
    sup.add(Driver(components[0].inbox))
    for c in components:
        sup.add(c)
    await sup.run()

asyncio.run(main())
'''


class Cluster:
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


def _write_config(d: Path, cluster: Cluster, dsn: str, tmp: Path, changed_box: str | None = None) -> Path:
    (d / "sites").mkdir(parents=True)
    (d / "boxes").mkdir()
    servers = json.dumps(cluster.urls)
    (d / "base.toml").write_text(f'''[box]\nsite = "s1"\n[jetstream]\nservers = {servers}\n''')
    (d / "sites" / "s1.toml").write_text("[inference]\nenabled = false\n[mes]\nenabled = false\n"
                                         "[metrics]\nenabled = false\n")
    for box in BOXES:
        rows = 500 if box == changed_box else 1000
        (d / "boxes" / f"{box}.toml").write_text(f'''
[pipeline]
batch_rows = {rows}
[spool]
dir = "{tmp / box / "spool"}"
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
dsn = "{dsn}"
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


def _wait_streams(urls: list[str], timeout_s: float = 30.0) -> None:
    import asyncio

    from edge.sinks.jetstream.streams import connect, ensure_streams

    async def go() -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                nc = await connect(urls, name="test")
                try:
                    await ensure_streams(nc.jetstream(timeout=5), "s1", replicas=3, max_age_s=3600,
                                         max_bytes=-1, duplicate_window_s=120)
                    return
                finally:
                    await nc.close()
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)

    asyncio.run(go())


def _fleet(cfg: Path, cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.app.cli", "fleet", *args, "--dir", str(cfg),
                           "--site", "s1", "--servers", ",".join(cluster.urls)],
                          capture_output=True, text=True, timeout=60)


def _states(cfg: Path, cluster: Cluster) -> dict[str, str]:
    out = _fleet(cfg, cluster, "status", "--json", "--silent-after", "3")
    assert out.returncode == 0, out.stderr
    return {b["box"]: b["state"] for b in json.loads(out.stdout)["boxes"]}


def _wait_state(cfg: Path, cluster: Cluster, box: str, state: str, timeout_s: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    while True:
        states = _states(cfg, cluster)
        if states.get(box) == state or time.monotonic() > deadline:
            return states
        time.sleep(0.5)


def test_site_cluster_survives_node_box_and_consumer_kills(tmp_path: Path, cluster: Cluster,
                                                           pg_dsn: str) -> None:
    from edge.sinks.historian.admin import init_historian
    from edge.sinks.historian.settings import HistorianSettings

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        init_historian(conn, HistorianSettings.model_validate({}))
    cfg = _write_config(tmp_path / "cfg", cluster, pg_dsn, tmp_path)
    changed = _write_config(tmp_path / "cfg-changed", cluster, pg_dsn, tmp_path, changed_box="box-c")
    driver = tmp_path / "box_driver.py"
    driver.write_text(BOX_DRIVER)
    _wait_streams(cluster.urls)
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(name: str) -> None:
        log = (tmp_path / f"{name}.log").open("ab")
        if name.startswith("site-historian"):
            cmd = [sys.executable, "-m", "edge.app.cli", "run", "--dir", str(cfg), "--box", name]
        else:
            d = changed if name == "box-c" else cfg  # box-c runs a config the folder no longer renders
            cmd = [sys.executable, str(driver), str(d), name, str(tmp_path / f"{name}.cursor"), str(TOTAL),
                   str(ROWS), str(INTERVAL_S)]
        procs[name] = subprocess.Popen(cmd, stdout=log, stderr=log, cwd=str(tmp_path))

    def cursor(box: str) -> int:
        p = tmp_path / f"{box}.cursor"
        return int(p.read_text()) if p.exists() else 0

    try:
        for name in ("site-historian-1", "site-historian-2", *BOXES):
            start(name)
        deadline = time.monotonic() + 30
        while min(cursor(b) for b in BOXES) < 20:  # a steady stream is flowing
            assert time.monotonic() < deadline, "boxes do not get acknowledged"
            time.sleep(0.2)
        cluster.kill(2)  # one NATS node away: R3 keeps a quorum of two
        time.sleep(1.0)
        procs["box-b"].send_signal(signal.SIGKILL)
        procs["box-b"].wait(10)
        before = cursor("box-b")
        states = _wait_state(cfg, cluster, "box-b", "silent", 15)
        assert states["box-b"] == "silent", states
        assert states["box-c"] == "drift", states
        assert states["box-a"] == "ok", states
        start("box-b")
        procs["site-historian-1"].send_signal(signal.SIGKILL)  # its unacked messages go to the other
        procs["site-historian-1"].wait(10)
        states = _wait_state(cfg, cluster, "box-b", "ok", 20)
        assert states["box-b"] == "ok", states
        deadline = time.monotonic() + 60
        while min(cursor(b) for b in BOXES) < TOTAL:
            assert time.monotonic() < deadline, {b: cursor(b) for b in BOXES}
            time.sleep(0.3)
        assert cursor("box-b") >= before
        expected = len(BOXES) * TOTAL * ROWS
        deadline = time.monotonic() + 60
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            while True:
                row = conn.execute("SELECT count(*), count(DISTINCT (tag, ts)) FROM samples").fetchone()
                assert row is not None
                if row[1] >= expected or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            per_box = dict(conn.execute("SELECT split_part(tag::text, '.', 1), count(*) FROM samples "
                                        "GROUP BY 1").fetchall())
        n, distinct = row
        assert distinct == expected, (distinct, expected, per_box)  # nothing lost
        assert n == distinct, (n, distinct)  # nothing twice
        assert per_box == {b: TOTAL * ROWS for b in BOXES}
        diff = _fleet(cfg, cluster, "diff", "box-c")
        assert diff.returncode == 1, diff.stderr
        assert '-    "batch_rows": 1000' in diff.stdout and '+    "batch_rows": 500' in diff.stdout
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
        for p in procs.values():
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()


