"""Suppressed repeats do not leave the box through the JetStream tap either: the sink asks the box's
historian the rule's one question (``insight_suppression_of``, migration 0046) and publishes the insights
batch without the rows the historian's own trigger flags, against a real nats-server and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import nats
import psycopg
import pytest

from edge.core.envelope import Envelope
from edge.core.metrics import Metrics
from edge.core.settings import SpoolSettings
from edge.sinks.historian.admin import init_historian
from edge.sinks.historian.settings import HistorianSettings
from edge.sinks.jetstream.codec import data_stream, decode
from edge.sinks.jetstream.publisher import JetStreamSink
from edge.sinks.jetstream.settings import JetStreamSettings
from edge.sinks.jetstream.shutdown import close_client
from edge.sinks.jetstream.suppressions import HistorianSuppressions
from tests.edge.sinks.jetstream.conftest import free_port
from tests.edge.sinks.jetstream.conftest import until as _until
from tests.inference.suppression_support import Row, flags, insights_batch, label, write_insights

T = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
LEAD = ["vibration_rms", "temperature_mean", "current_rms"]


@pytest.fixture
def historian(pg_dsn: str) -> str:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        init_historian(conn, HistorianSettings.model_validate({}))
    return pg_dsn


def suppress(dsn: str) -> int:
    (first,) = write_insights(dsn, [Row(T, LEAD)])
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT record_alarm_suppression(%s, 'anna', 4, 'splash')",
                           (label(dsn, first),)).fetchone()
    assert row is not None
    return int(row[0])


def _sink(url: str, tmp_path: Path, suppressions: HistorianSuppressions | None) -> JetStreamSink:
    settings = JetStreamSettings.model_validate({"servers": [url], "replicas": 1, "site": "s1",
                                                 "retry_interval_s": 0.2, "publish_timeout_s": 1.0,
                                                 "kinds": ["insights"]})
    spool = SpoolSettings.model_validate({"dir": str(tmp_path / "spool")})
    return JetStreamSink(settings, box="box-1", site="s1", spool=spool, metrics=Metrics(),
                         suppressions=suppressions)


async def _published_ids(url: str) -> list[list[str]]:
    """The insight ids of every message in the site stream, in order."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        n = int((await js.stream_info(data_stream("s1"))).state.messages)
        out = []
        for seq in range(1, n + 1):
            msg = await js.get_msg(data_stream("s1"), seq)
            assert msg.data is not None
            out.append(decode(msg.data).envelope.batch.column("insight_id").to_pylist())
        return out
    finally:
        await close_client(nc, 5.0)


async def _send(sink: JetStreamSink, batches: list[Envelope]) -> list[str]:
    acked: list[str] = []
    task = asyncio.create_task(sink.run())
    for env in batches:
        env.acks.append(partial(acked.append, env.batch_id))
        await sink.inbox.put(env)
    await _until(lambda: len(acked) == len(batches))
    await sink.stop()
    await task
    return acked


async def test_suppressed_repeats_are_not_published_to_the_site(historian: str, nats_url: str,
                                                                tmp_path: Path) -> None:
    sid = suppress(historian)
    rows = [
        Row(T + timedelta(minutes=5), LEAD[::-1]),  # a repeat: same leading features, any order
        Row(T + timedelta(minutes=5), ["pressure_mean"]),  # another alarm: goes out
        Row(T + timedelta(minutes=6), LEAD, severity="ok"),  # an ok row raises nothing: goes out
        Row(T + timedelta(hours=5), LEAD),  # after the suppression's hours: goes out
        Row(T + timedelta(minutes=7), LEAD, asset="acme/plant1/line1/press2"),  # other equipment
    ]
    batch = insights_batch(rows)
    ids = batch.column("insight_id").to_pylist()
    only_repeats = insights_batch([Row(T + timedelta(minutes=8), LEAD)])
    sink = _sink(nats_url, tmp_path, HistorianSuppressions(historian))
    acked = await _send(sink, [Envelope("insights", batch, "i1"), Envelope("insights", only_repeats, "i2")])
    assert sorted(acked) == ["i1", "i2"]  # the emptied batch is acknowledged, not held
    assert await _published_ids(nats_url) == [ids[1:]]
    assert sink.metrics.get("jetstream", "suppressed") == 2

    # the same rows into the historian: its trigger flags exactly the rows the sink kept back
    written = write_insights(historian, [Row(r.ts, r.features, r.severity, r.asset, r.model, i)
                                         for r, i in zip(rows, ids, strict=True)])
    got = flags(historian, written)
    assert [got[i][0] for i in ids] == [True, False, False, False, False]
    assert got[ids[0]][1] == sid


async def test_a_lifted_suppression_lets_repeats_out_again(historian: str, nats_url: str,
                                                           tmp_path: Path) -> None:
    sid = suppress(historian)
    with psycopg.connect(historian, autocommit=True) as conn:
        conn.execute("SELECT lift_alarm_suppression(%s, 'anna', 'fixed')", (sid,))
    batch = insights_batch([Row(T + timedelta(minutes=5), LEAD)])
    sink = _sink(nats_url, tmp_path, HistorianSuppressions(historian))
    await _send(sink, [Envelope("insights", batch, "i1")])
    assert await _published_ids(nats_url) == [batch.column("insight_id").to_pylist()]
    assert sink.metrics.get("jetstream", "suppressed") == 0


async def test_without_an_answer_from_the_historian_insights_go_out_whole(nats_url: str,
                                                                          tmp_path: Path) -> None:
    dead = f"postgresql://nobody@127.0.0.1:{free_port()}/none"  # nothing listens there
    batch = insights_batch([Row(T, LEAD), Row(T, ["pressure_mean"])])
    sink = _sink(nats_url, tmp_path, HistorianSuppressions(dead, timeout_s=1.0))
    await _send(sink, [Envelope("insights", batch, "i1")])
    assert await _published_ids(nats_url) == [batch.column("insight_id").to_pylist()]
    assert sink.metrics.get("jetstream", "suppression_unchecked") == 2
