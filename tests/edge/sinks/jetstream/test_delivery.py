"""The box sink and the site historian against a real nats-server and PostgreSQL."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import numpy as np
import psycopg
import pytest

from edge.core.datamodel import samples_from_arrays
from edge.core.envelope import Envelope
from edge.core.metrics import Metrics
from edge.core.settings import SpoolSettings
from edge.sinks.historian.settings import HistorianSettings
from edge.sinks.historian.writer import HistorianWriter
from edge.sinks.jetstream.codec import data_stream, data_subject, encode
from edge.sinks.jetstream.publisher import JetStreamSink
from edge.sinks.jetstream.settings import JetStreamSettings, SiteHistorianSettings
from edge.sinks.jetstream.shutdown import close_client
from edge.sinks.jetstream.site_historian import SiteHistorian
from tests.edge.sinks.jetstream.conftest import free_port, wait_port
from tests.edge.sinks.jetstream.conftest import until as _until

T0 = 1_700_000_000_000_000


def _env(box: str, seq: int, acked: list[int], rows: int = 100) -> Envelope:
    ts = T0 + seq * 1_000_000 + np.arange(rows)
    batch = samples_from_arrays(ts, [f"{box}.t{i % 5}" for i in range(rows)], np.arange(rows, dtype=float),
                                source="drv")
    return Envelope("samples", batch, f"b{seq}", [lambda: acked.append(seq)])


def _sink(url: str, tmp_path: Path, **kw: object) -> JetStreamSink:
    settings = JetStreamSettings.model_validate({"servers": [url], "replicas": 1, "site": "s1",
                                                 "retry_interval_s": 0.2, "publish_timeout_s": 1.0, **kw})
    spool = SpoolSettings.model_validate({"dir": str(tmp_path / "spool")})
    return JetStreamSink(settings, box="box-1", site="s1", spool=spool, metrics=Metrics())


async def _stream_msgs(url: str) -> int:
    import nats

    nc = await nats.connect(url)
    try:
        return int((await nc.jetstream().stream_info(data_stream("s1"))).state.messages)
    finally:
        await close_client(nc, 5.0)


async def test_published_once_acked_after_the_publish_and_deduplicated(tmp_path: Path, nats_url: str) -> None:
    sink = _sink(nats_url, tmp_path)
    acked: list[int] = []
    task = asyncio.create_task(sink.run())
    for seq in range(20):
        await sink.inbox.put(_env("box-1", seq, acked))
    await _until(lambda: len(acked) == 20)
    for seq in range(5):  # a source delivering again after a crash: same batch ids
        await sink.inbox.put(_env("box-1", seq, acked))
    await _until(lambda: len(acked) == 25)
    await sink.stop()
    await task
    assert await _stream_msgs(nats_url) == 20
    assert sink.metrics.get("jetstream", "duplicate") == 500
    assert sink.spool.empty()


async def test_kinds_not_forwarded_are_acknowledged_untouched(tmp_path: Path, nats_url: str) -> None:
    sink = _sink(nats_url, tmp_path, kinds=["insights"])
    acked: list[int] = []
    task = asyncio.create_task(sink.run())
    await sink.inbox.put(_env("box-1", 1, acked))
    await _until(lambda: acked == [1])
    await sink.stop()
    await task
    assert sink.published == 0


async def test_the_spool_covers_an_unreachable_cluster(tmp_path: Path) -> None:
    exe = shutil.which("nats-server") or "/usr/sbin/nats-server"
    port = free_port()
    cmd = [exe, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp_path / "js")]
    url = f"nats://127.0.0.1:{port}"
    sink = _sink(url, tmp_path)  # started with no server at all
    acked: list[int] = []
    task = asyncio.create_task(sink.run())
    for seq in range(10):
        await sink.inbox.put(_env("box-1", seq, acked))
    await _until(lambda: len(acked) == 10)  # spooled (fsync), so acknowledged
    assert sink.spool.rows == 1000 and not sink.up
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        await _until(lambda: sink.up and sink.spool.empty(), 15)
        for seq in range(10, 15):
            await sink.inbox.put(_env("box-1", seq, acked))
        await _until(lambda: len(acked) == 15)
        proc.kill()  # and away again, mid-stream
        proc.wait(5)
        for seq in range(15, 20):
            await sink.inbox.put(_env("box-1", seq, acked))
        await _until(lambda: len(acked) == 20)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(port)
        await _until(lambda: sink.up and sink.spool.empty(), 20)
        await sink.stop()
        ended, _ = await asyncio.wait([task], timeout=15)
        assert ended, "the sink did not end within 15 s of stop()"
        assert await _stream_msgs(url) == 20
    finally:
        proc.kill()
        proc.wait(5)


@pytest.fixture
def central(pg_dsn: str) -> str:
    from edge.sinks.historian.admin import init_historian

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        init_historian(conn, HistorianSettings.model_validate({}))
    return pg_dsn


async def test_two_site_historians_share_the_stream_and_store_each_batch_once(
        tmp_path: Path, nats_url: str, central: str) -> None:
    sink = _sink(nats_url, tmp_path)
    acked: list[int] = []
    sink_task = asyncio.create_task(sink.run())
    for seq in range(40):
        await sink.inbox.put(_env("box-1", seq, acked))
    await _until(lambda: len(acked) == 40)
    # a late redelivery beyond the de-duplication window: same batch, new message id
    import nats

    nc = await nats.connect(nats_url)
    payload, headers = encode(_env("box-1", 3, []), "box-1")
    await nc.jetstream().publish(data_subject("s1", "line", "box-1", "samples"), payload,
                                 headers={**headers, "Nats-Msg-Id": "late-copy"})
    await close_client(nc, 5.0)
    settings = SiteHistorianSettings.model_validate({"servers": [nats_url], "site": "s1", "replicas": 1,
                                                     "fetch_batch": 4, "ack_wait_s": 2})
    metrics = Metrics()
    consumers = [SiteHistorian(settings, HistorianWriter(dsn=central), site="s1", name=f"sh{i}",
                               metrics=metrics) for i in range(2)]
    tasks = [asyncio.create_task(c.run()) for c in consumers]
    await _until(lambda: sum(c.committed + c.duplicates for c in consumers) >= 41, 20)
    for c in consumers:
        await c.stop()
    await asyncio.gather(*tasks)
    await sink.stop()
    await sink_task
    assert all(c.committed > 0 for c in consumers), [c.committed for c in consumers]  # the work was shared
    assert sum(c.committed for c in consumers) == 40 and sum(c.duplicates for c in consumers) == 1
    with psycopg.connect(central) as conn:
        row = conn.execute("SELECT count(*), count(DISTINCT (tag, ts)) FROM samples").fetchone()
        ledger = conn.execute("SELECT count(*) FROM ingest_ledger WHERE batch_id LIKE 'box-1.%'").fetchone()
    assert row == (4000, 4000)
    assert ledger == (40,)


async def test_a_server_without_jetstream_is_retried_without_leaving_clients_behind(tmp_path: Path) -> None:
    import json
    import urllib.request

    exe = shutil.which("nats-server") or "/usr/sbin/nats-server"
    port, monitor = free_port(), free_port()
    proc = subprocess.Popen([exe, "-a", "127.0.0.1", "-p", str(port), "-m", str(monitor)],  # no -js
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        wait_port(monitor)
        sink = _sink(f"nats://127.0.0.1:{port}", tmp_path)
        task = asyncio.create_task(sink.run())
        await asyncio.sleep(3.0)  # a try every 0.2 s: each connects, finds no JetStream, and must close

        def connections() -> int:
            with urllib.request.urlopen(f"http://127.0.0.1:{monitor}/connz", timeout=5) as resp:
                return int(json.loads(resp.read())["num_connections"])

        assert not sink.up and sink.last_error is not None
        assert await asyncio.to_thread(connections) <= 1
        await sink.stop()
        ended, _ = await asyncio.wait([task], timeout=15)
        assert ended, "the sink did not end within 15 s of stop()"
        await _until(lambda: connections() == 0, 5)
    finally:
        proc.kill()
        proc.wait(5)
