"""The read queries of edge.sinks.historian.queries give the same answers on plain PostgreSQL and
TimescaleDB."""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pytest

from edge.core.datamodel import samples_from_arrays
from edge.core.envelope import Envelope
from edge.sinks.historian import queries
from edge.sinks.historian.admin import refresh_aggregates
from edge.sinks.historian.settings import HistorianSettings
from edge.sinks.historian.writer import HistorianWriter
from tests.fixtures.historian_helpers import T0, dead_letters_batch, events_batch, insights_batch, us

MINUTE = 60_000_000
BASE = T0 - 20_000_000  # 22:13:00, on a minute boundary


def _load(conn: psycopg.Connection[Any], flavor: str) -> None:
    w = HistorianWriter(HistorianSettings.model_validate({}), conn=conn)
    n = 600
    ts = BASE + np.arange(n, dtype=np.int64) * 1_000_000  # one sample a second for 10 minutes
    tags = np.array(["line1/temp", "line1/vib", "line2/temp"])[np.arange(n) % 3]
    values = np.arange(n, dtype=np.float64) * 0.5
    batch = samples_from_arrays(ts, pa.array(tags), values, source="sim", quality=np.arange(n) % 2)
    value = pa.compute.if_else(pa.array(np.arange(n) == n - 1), pa.scalar(None, pa.float64()),
                               batch.column("value"))
    batch = batch.set_column(3, "value", value)
    assert w.write_sync(Envelope("samples", batch, "q-samples"))
    assert w.write_sync(Envelope("insights", insights_batch(6), "q-ins"))
    assert w.write_sync(Envelope("events", events_batch(), "q-ev"))
    assert w.write_sync(Envelope("dead_letters", dead_letters_batch(), "q-dl"))
    refresh_aggregates(conn, flavor)  # type: ignore[arg-type]


def _answers(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    start, end = us(BASE), us(BASE + 10 * MINUTE)
    return {
        "latest": queries.latest_values(conn),
        "latest_some": queries.latest_values(conn, ["line1/vib"], since=us(BASE + 5 * MINUTE)),
        "range": queries.samples_range(conn, "line2/temp", us(BASE + 60_000_000), us(BASE + 90_000_000)),
        "range_limit": queries.samples_range(conn, "line1/temp", start, end, limit=3),
        "agg_1m": queries.aggregates(conn, None, start, end, "1m"),
        "agg_1h": queries.aggregates(conn, ["line1/temp"], us(BASE - 3_600_000_000), end, "1h"),
        "insights": queries.recent_insights(conn, limit=4),
        "insights_line1": queries.recent_insights(conn, asset="site/line1"),
        "events": queries.recent_events(conn),
        "events_dq": queries.recent_events(conn, kind="data_quality"),
        "dead": queries.dead_letter_counts(conn),
        "dead_since": queries.dead_letter_counts(conn, since=us(T0 + 2)),
    }


def _check(ans: dict[str, Any]) -> None:
    latest = {v.tag: v for v in ans["latest"]}
    assert set(latest) == {"line1/temp", "line1/vib", "line2/temp"}
    assert latest["line2/temp"].value is None  # the newest sample, whose value is NULL
    assert latest["line2/temp"].ts == us(BASE + 599_000_000)
    assert [v.tag for v in ans["latest_some"]] == ["line1/vib"]
    assert [p.ts for p in ans["range"]] == [us(BASE + s * 1_000_000) for s in range(62, 90, 3)]
    assert len(ans["range_limit"]) == 3
    agg = ans["agg_1m"]
    assert len(agg) == 30  # 3 tags x 10 minutes
    assert sum(a.n for a in agg) == 599  # count(value): the NULL is not counted
    first = agg[0]
    assert (first.tag, first.n) == ("line1/temp", 20)
    assert first.min_value == 0.0 and first.max_value == 28.5
    assert ans["agg_1h"][0].n == 200
    assert [i.insight_id for i in ans["insights"]] == ["ins-5", "ins-4", "ins-3", "ins-2"]
    assert {i.asset for i in ans["insights_line1"]} == {"site/line1/m1"}
    assert ans["insights"][0].top_features == [{"feature": "rms", "contribution": 5.5}]
    assert [e.message for e in ans["events"]] == ["init ✓", "stuck", "lost"]
    assert ans["events"][0].detail == {"nested": {"a": [1, 2]}}
    assert [e.kind for e in ans["events_dq"]] == ["data_quality"]
    assert ans["dead"] == {"decode": 2, "range": 1}
    assert ans["dead_since"] == {"decode": 1, "range": 1}


@pytest.mark.timescale
def test_same_answers_on_both_flavors(pg_dsn: str, timescale_conn: psycopg.Connection[Any]) -> None:
    from edge.sinks.historian.admin import init_historian

    settings = HistorianSettings.model_validate({})
    with psycopg.connect(pg_dsn, autocommit=True) as pg:
        init_historian(pg, settings, flavor="postgres")
        _load(pg, "postgres")
        on_pg = _answers(pg)
    init_historian(timescale_conn, settings, flavor="timescaledb")
    _load(timescale_conn, "timescaledb")
    on_ts = _answers(timescale_conn)
    _check(on_pg)
    _check(on_ts)
    assert on_pg == on_ts


def test_answers_on_plain_postgres(pg_dsn: str) -> None:
    from edge.sinks.historian.admin import init_historian

    with psycopg.connect(pg_dsn, autocommit=True) as pg:
        init_historian(pg, HistorianSettings.model_validate({}))
        _load(pg, "postgres")
        _check(_answers(pg))
        with pytest.raises(ValueError, match="resolution"):
            queries.aggregates(pg, None, us(T0), us(T0), "5m")  # type: ignore[arg-type]
