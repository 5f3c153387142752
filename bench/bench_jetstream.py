"""JetStream benchmark: samples/s through one box's JetStream sink into a 3-node R3 stream and on into the
central historian, against a bare nats-py publisher of the same bytes in the same run; latency box → central.

    flock /tmp/fe-cpu.lock .venv/bin/python bench/bench_jetstream.py [--dsn DSN] [--batches 1500] \
        [--rows 1000] [--rounds 3] [--rate 20000]

Starts its own 3-node nats-server cluster (free loopback ports, temp store dirs; streams R3, file storage).
Per round, alternating: **bare**: the payloads already encoded (Arrow IPC, LZ4, as the sink sends them)
published with ``js.publish`` and a ``Nats-Msg-Id`` header, ``in_flight`` at once, awaiting every PubAck;
**sink**: the same envelopes through ``JetStreamSink.inbox``, timed until every envelope is acknowledged
(encoding included). Then **central**: the sink's stream drained by one ``SiteHistorian`` into PostgreSQL
(``--dsn``: superuser; database ``fe_bench_jetstream`` created and dropped), rows/s; and **latency**: the sink
fed at ``--rate`` rows/s while a site historian consumes; per batch, time from ``inbox.put`` to the commit
in the central historian (p50/p99). One process: sink, consumer and the bench share its event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.core.datamodel import samples_from_arrays
from edge.core.envelope import Envelope
from edge.core.metrics import Metrics
from edge.core.settings import SpoolSettings
from edge.sinks.jetstream.codec import data_subject, encode
from edge.sinks.jetstream.publisher import JetStreamSink
from edge.sinks.jetstream.settings import JetStreamSettings, SiteHistorianSettings
from edge.sinks.jetstream.streams import connect, ensure_streams_when_ready

T0 = 1_700_000_000_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_cluster(root: Path) -> tuple[list[subprocess.Popen[bytes]], list[str]]:
    exe = shutil.which("nats-server") or "/usr/sbin/nats-server"
    ports = [free_port() for _ in range(3)]
    cports = [free_port() for _ in range(3)]
    procs = []
    for i in range(3):
        routes = ",".join(f"nats://127.0.0.1:{c}" for j, c in enumerate(cports) if j != i)
        procs.append(subprocess.Popen(
            [exe, "-a", "127.0.0.1", "-p", str(ports[i]), "-n", f"b{i}", "-js", "-sd", str(root / f"s{i}"),
             "--cluster_name", "fe-bench", "--cluster", f"nats://127.0.0.1:{cports[i]}", "--routes", routes],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return procs, [f"nats://127.0.0.1:{p}" for p in ports]


def envelopes(box: str, n: int, rows: int, offset: int = 0) -> list[Envelope]:
    out = []
    for seq in range(offset, offset + n):
        ts = T0 + seq * rows + np.arange(rows)
        batch = samples_from_arrays(ts, [f"{box}.t{i % 50}" for i in range(rows)],
                                    np.random.default_rng(seq).random(rows), source="bench")
        out.append(Envelope("samples", batch, f"{box}-{seq}"))
    return out


async def ready(urls: list[str], sites: list[str]) -> None:
    await ensure_streams_when_ready(urls, sites, timeout_s=60, replicas=3, max_age_s=3600, max_bytes=-1,
                                    duplicate_window_s=120)


async def bare(urls: list[str], site: str, payloads: list[tuple[bytes, dict[str, str]]], rows: int,
               in_flight: int) -> float:
    nc = await connect(urls, name="bench-bare")
    js = nc.jetstream(timeout=10)
    subject = data_subject(site, "line", "bare", "samples")
    sem = asyncio.Semaphore(in_flight)

    async def one(p: bytes, h: dict[str, str]) -> None:
        try:
            await js.publish(subject, p, headers=h, timeout=10)
        finally:
            sem.release()

    t = time.perf_counter()
    tasks = []
    for p, h in payloads:
        await sem.acquire()
        tasks.append(asyncio.create_task(one(p, h)))
    await asyncio.gather(*tasks)
    dt = time.perf_counter() - t
    await nc.close()
    return len(payloads) * rows / dt


COMPRESSION = "lz4"


def make_sink(urls: list[str], site: str, box: str, spool: Path) -> JetStreamSink:
    settings = JetStreamSettings.model_validate({"servers": urls, "site": site, "replicas": 3,
                                                 "compression": COMPRESSION})
    spool_settings = SpoolSettings.model_validate({"dir": str(spool)})
    return JetStreamSink(settings, box=box, site=site, spool=spool_settings, metrics=Metrics())


async def through_sink(urls: list[str], site: str, box: str, envs: list[Envelope], rows: int,
                       spool: Path) -> float:
    sink = make_sink(urls, site, box, spool)
    task = asyncio.create_task(sink.run())
    while not sink.up:
        await asyncio.sleep(0.01)
    done = asyncio.Event()
    left = [len(envs)]

    def ack() -> None:
        left[0] -= 1
        if left[0] == 0:
            done.set()

    t = time.perf_counter()
    for e in envs:
        await sink.inbox.put(Envelope(e.kind, e.batch, e.batch_id, [ack]))
    await done.wait()
    dt = time.perf_counter() - t
    await sink.stop()
    await task
    return len(envs) * rows / dt


class TimedWriter:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.committed: dict[str, float] = {}

    async def write(self, env: Envelope) -> bool:
        fresh = await self.inner.write(env)
        self.committed[env.batch_id] = time.perf_counter()
        return bool(fresh)

    async def close(self) -> None:
        await self.inner.close()


async def central(urls: list[str], site: str, dsn: str, expect_batches: int, rows: int) -> float:
    from edge.sinks.historian.writer import HistorianWriter
    from edge.sinks.jetstream.site_historian import SiteHistorian

    writer = TimedWriter(HistorianWriter(dsn=dsn))
    settings = SiteHistorianSettings.model_validate({"servers": urls, "site": site, "fetch_batch": 64})
    sh = SiteHistorian(settings, writer, site=site, metrics=Metrics())
    t = time.perf_counter()
    task = asyncio.create_task(sh.run())
    while sh.committed + sh.duplicates < expect_batches:
        await asyncio.sleep(0.01)
    dt = time.perf_counter() - t
    await sh.stop()
    await task
    return expect_batches * rows / dt


async def latency(urls: list[str], site: str, dsn: str, rows: int, rate: float, seconds: float,
                  spool: Path) -> dict[str, float]:
    from edge.sinks.historian.writer import HistorianWriter
    from edge.sinks.jetstream.site_historian import SiteHistorian

    writer = TimedWriter(HistorianWriter(dsn=dsn))
    settings = SiteHistorianSettings.model_validate({"servers": urls, "site": site})
    sh = SiteHistorian(settings, writer, site=site, metrics=Metrics())
    sink = make_sink(urls, site, "lat", spool)
    tasks = [asyncio.create_task(sink.run()), asyncio.create_task(sh.run())]
    while not sink.up:
        await asyncio.sleep(0.01)
    await asyncio.sleep(1.0)
    n = int(seconds * rate / rows)
    envs = envelopes("lat", n, rows, offset=10_000_000)
    put: dict[str, float] = {}
    start = time.perf_counter()
    for i, e in enumerate(envs):
        delay = start + i * rows / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        put[f"lat.{e.batch_id}"] = time.perf_counter()
        await sink.inbox.put(e)
    while len(writer.committed) < n:
        await asyncio.sleep(0.01)
    await sink.stop()
    await sh.stop()
    await asyncio.gather(*tasks)
    lat = sorted((writer.committed[k] - put[k]) * 1000 for k in put)
    return {"batches": n, "p50_ms": round(lat[len(lat) // 2], 2),
            "p99_ms": round(lat[int(len(lat) * 0.99)], 2), "max_ms": round(lat[-1], 2)}


def bench_db(dsn: str) -> str:
    import psycopg

    from edge.sinks.historian.admin import init_historian
    from edge.sinks.historian.settings import HistorianSettings

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS fe_bench_jetstream WITH (FORCE)")
        conn.execute("CREATE DATABASE fe_bench_jetstream")
    u = urlparse(dsn)
    db = urlunparse(u._replace(path="/fe_bench_jetstream"))
    with psycopg.connect(db, autocommit=True) as conn:
        init_historian(conn, HistorianSettings.model_validate({}))
    return db


async def main(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="fe-bench-js-"))
    procs, urls = start_cluster(root)
    db = bench_db(args.dsn)
    try:
        sites = [f"bare{r}" for r in range(args.rounds)] + [f"sink{r}" for r in range(args.rounds)] + ["lat"]
        await ready(urls, sites)
        envs = envelopes("box", args.batches, args.rows)
        payloads = [encode(e, "bare", compression=COMPRESSION) for e in envs]
        mb = sum(len(p) for p, _ in payloads) / 1e6
        bare_r, sink_r, central_r = [], [], []
        for r in range(args.rounds):
            bare_r.append(await bare(urls, f"bare{r}", payloads, args.rows, 32))
            sink_r.append(await through_sink(urls, f"sink{r}", "box", envs, args.rows, root / f"spool{r}"))
            central_r.append(await central(urls, f"sink{r}", db, args.batches, args.rows))
        lat = await latency(urls, "lat", db, args.rows, args.rate, args.seconds, root / "spool-lat")
        med = statistics.median
        return {
            "rows_per_batch": args.rows, "batches": args.batches, "payload_mb": round(mb, 1),
            "bytes_per_sample": round(mb * 1e6 / (args.batches * args.rows), 2),
            "bare_rows_s": [round(x) for x in bare_r], "sink_rows_s": [round(x) for x in sink_r],
            "central_rows_s": [round(x) for x in central_r],
            "bare_median": round(med(bare_r)), "sink_median": round(med(sink_r)),
            "central_median": round(med(central_r)), "ratio_sink_bare": round(med(sink_r) / med(bare_r), 3),
            "latency": {"rate_rows_s": args.rate, **lat}, "cpus": os.cpu_count(),
        }
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
        shutil.rmtree(root, ignore_errors=True)
        import psycopg

        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS fe_bench_jetstream WITH (FORCE)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", default=os.environ.get("FE_BENCH_PG_DSN",
                                                    "postgresql://postgres@127.0.0.1:5432/postgres"))
    ap.add_argument("--batches", type=int, default=1500)
    ap.add_argument("--compression", choices=["none", "lz4", "zstd"], default="lz4")
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rate", type=float, default=20_000.0, help="latency phase: rows/s fed to the sink")
    ap.add_argument("--seconds", type=float, default=10.0, help="latency phase length")
    parsed = ap.parse_args()
    COMPRESSION = parsed.compression
    print(json.dumps({"compression": COMPRESSION, **asyncio.run(main(parsed))}, indent=2))
