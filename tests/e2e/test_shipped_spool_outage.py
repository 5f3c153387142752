"""PostgreSQL down for longer than the spool holds, for each full-spool policy, under the shipped broker
config.

The MQTT source (QoS 1, persistent session, manual ack) feeds the historian sink through a private
Mosquitto running ``firmware-config/mosquitto/factory-edge.conf`` as shipped; the spool is cut to its
smallest size (1 MiB) so that an outage of seconds outlasts it; everything else is the shipped default.
The private PostgreSQL is stopped until the spool is full and a while more, then started again; sent and
stored are compared row by row, by (tag, ts):

- ``refuse_new`` (the default): the sink holds its queue, the source stops acknowledging, the broker
  keeps the rest (its queue is sized for the spool's horizon): 0 lost, 0 duplicated.
- ``drop_oldest``: the oldest spooled segments go; what is lost is exactly what the spool's event
  ("spool no longer dropping data", ``dropped_rows``) and its ``dropped`` counter say, and nothing else.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any, Literal

import numpy as np
import psycopg
import pytest

from edge.core.envelope import Envelope
from edge.core.metrics import Metrics
from edge.core.settings import SpoolSettings
from edge.sinks.historian.settings import HistorianSettings
from edge.sinks.historian.sink import HistorianSink
from edge.sinks.historian.spool import Spool
from edge.sinks.historian.writer import HistorianWriter
from tests.e2e.test_shipped_delivery import ShippedMosquitto
from tests.e2e.test_shipped_delivery import shipped_mosquitto as shipped_mosquitto  # fixture
from tests.fixtures.delivery_app import make_source
from tests.fixtures.delivery_helpers import (
    NumberedPublisher,
    PrivatePostgres,
    async_wait_until,
    compare_mqtt_rows,
    count_samples,
    expected_rows,
    historian_rows,
)
from tests.fixtures.delivery_helpers import private_pg as private_pg  # fixture

COUNT, N, RATE = 24_000, 10, 800.0  # QoS 1 messages, samples per message, messages/s (8,000 samples/s)
SPOOL_BYTES = 1 << 20  # the smallest spool SpoolSettings allows: about 27,000 samples


def spool_events(dsn: str) -> list[tuple[str, dict[str, Any]]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT message, detail FROM events WHERE kind = 'spool' ORDER BY ts").fetchall()
    return [(str(m), d if isinstance(d, dict) else json.loads(d or "{}")) for m, d in rows]


async def _outage(pg: PrivatePostgres, broker: ShippedMosquitto, tmp_path: Path,
                  policy: Literal["refuse_new", "drop_oldest"]) -> dict[str, Any]:
    metrics = Metrics()
    spool = Spool(SpoolSettings(dir=tmp_path / "spool", max_bytes=SPOOL_BYTES, when_full=policy,
                                segment_bytes=1 << 16), metrics=metrics)
    inbox: asyncio.Queue[Envelope] = asyncio.Queue(16)
    writer = HistorianWriter(HistorianSettings(dsn=pg.dsn, write_timeout_s=5), dsn=pg.dsn)
    sink = HistorianSink(inbox, writer, spool, metrics=metrics, retry_interval_s=0.3)
    prefix = f"fe-test/{uuid.uuid4().hex[:8]}"
    source = make_source(broker.url, f"{prefix}/#", f"app-{uuid.uuid4().hex[:6]}", inbox,
                         cut_journal=tmp_path / "mqtt.cuts")
    tasks = [asyncio.create_task(sink.run()), asyncio.create_task(source.run())]
    pub: NumberedPublisher | None = None
    try:
        await async_wait_until(source.subscribed.is_set, 20, "the source to subscribe")
        pub = NumberedPublisher(broker.port, prefix, N, RATE, f"pub-{uuid.uuid4().hex[:6]}").start(COUNT)
        stream = pub
        await async_wait_until(lambda: stream.sent >= COUNT * 0.15, 60, "the stream to start")
        await asyncio.to_thread(pg.stop)
        t_down = time.monotonic()
        await async_wait_until(lambda: metrics.get("spool", "full") >= 1, 60, "the spool to fill")
        full_after = time.monotonic() - t_down
        await asyncio.sleep(6.0)  # well past the spool's horizon
        spooled_at_restart = metrics.get("spool", "spooled")
        await asyncio.to_thread(pg.start)
        down_s = time.monotonic() - t_down
        await asyncio.to_thread(pub.wait_done, 180)
        final = "spool drained" if policy == "refuse_new" else "spool no longer dropping data"

        def settled() -> bool:
            if not (spool.empty() and inbox.empty() and sink.historian_up):
                return False
            messages = [m for m, _ in spool_events(pg.dsn)]
            want = COUNT * N - metrics.get("spool", "dropped")
            return final in messages and count_samples(pg.dsn) >= want

        await async_wait_until(settled, 180, "the spool to drain and every kept sample to be stored", 0.5)
        await asyncio.sleep(1.0)
    finally:
        await source.stop()
        await sink.stop()
        for t in tasks:
            await asyncio.wait_for(t, 30)
        await writer.close()
        if pub is not None:
            pub.close()
    return {"metrics": metrics, "prefix": prefix, "down_s": down_s, "full_after": full_after,
            "spooled": spooled_at_restart, "events": spool_events(pg.dsn)}


@pytest.mark.slow
async def test_postgres_down_longer_than_the_spool_refuse_new_loses_nothing(
        private_pg: PrivatePostgres, shipped_mosquitto: ShippedMosquitto, tmp_path: Path) -> None:
    r = await _outage(private_pg, shipped_mosquitto, tmp_path, "refuse_new")
    m: Metrics = r["metrics"]
    assert m.get("spool", "full", "refuse_new") >= 1 and m.get("spool", "dropped") == 0
    messages = [msg for msg, _ in r["events"]]
    assert any("refusing new data" in msg for msg in messages)
    dups = compare_mqtt_rows(private_pg.dsn, list(range(COUNT)), N, r["prefix"])  # asserts 0 lost
    print(f"\nrefuse_new: postgres down {r['down_s']:.1f} s (spool of 1 MiB full after "
          f"{r['full_after']:.1f} s, "
          f"{r['spooled']:,.0f} rows spooled); {COUNT * N:,} samples sent, {count_samples(private_pg.dsn):,} "
          f"stored; 0 lost; {dups} duplicated")
    assert dups == 0


@pytest.mark.slow
async def test_postgres_down_longer_than_the_spool_drop_oldest_loses_exactly_what_the_event_says(
        private_pg: PrivatePostgres, shipped_mosquitto: ShippedMosquitto, tmp_path: Path) -> None:
    r = await _outage(private_pg, shipped_mosquitto, tmp_path, "drop_oldest")
    m: Metrics = r["metrics"]
    ends = [d for msg, d in r["events"] if msg == "spool no longer dropping data"]
    assert ends, r["events"]
    in_events = sum(int(d["dropped_rows"]) for d in ends)
    ts, _, _ = historian_rows(private_pg.dsn)
    want_ts, _ = expected_rows(list(range(COUNT)), N)
    lost = np.setdiff1d(want_ts, ts)
    assert len(ts) == len(np.unique(ts)), "duplicated rows"
    assert len(np.setdiff1d(ts, want_ts)) == 0, "rows that were never sent"
    assert len(lost) > 0  # the outage did outlast the spool
    assert len(lost) == in_events == m.get("spool", "dropped")
    # what went is the oldest spooled data: whole messages, one contiguous run of them
    msgs = np.unique((lost - want_ts[0]) // N)
    assert len(lost) == len(msgs) * N and msgs[-1] - msgs[0] + 1 == len(msgs)
    # the rows kept are exactly the rest, with the tag their topic gave
    kept = sorted(set(range(COUNT)) - set(msgs.tolist()))
    assert compare_mqtt_rows(private_pg.dsn, kept, N, r["prefix"]) == 0
    print(f"\ndrop_oldest: postgres down {r['down_s']:.1f} s (spool of 1 MiB full after "
          f"{r['full_after']:.1f} s); "
          f"{COUNT * N:,} samples sent, {len(ts):,} stored, {len(lost):,} lost = {in_events:,} in the "
          f"events ({len(ends)} episode(s)) = {m.get('spool', 'dropped'):,.0f} counted; 0 duplicated")
