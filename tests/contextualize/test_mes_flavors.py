"""The MES migrations, store, relabel and views on both historian flavors (plain PostgreSQL, and
TimescaleDB through the PGlite build: hypertables, one session)."""

from __future__ import annotations

from typing import Any

import psycopg

from contextualize.mes_intake import apply_event
from contextualize.mes_store import MesContextStore
from contextualize.mes_store_sql import load_store
from tests.fixtures.historian_helpers import historian  # noqa: F401  (fixture)
from tests.fixtures.mes import EQ1, OTHER, at, event


def test_relabel_and_views_on_both_flavors(historian: tuple[psycopg.Connection[Any], str]) -> None:  # noqa: F811
    conn, _flavor = historian
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO samples (ts, recv_ts, tag, value, quality, flags, source, asset, measure, unit) "
            "VALUES (%s, %s, 't', %s, 0, 0, 'test', %s, 'temperature', 'degC')",
            [(at(m), at(m), float(m), a) for a in (EQ1, OTHER) for m in range(40)],
        )
        cur.executemany(
            "INSERT INTO insights (insight_id, ts, asset, model, model_version, model_sha256, score, "
            "threshold, severity, window_start, window_end, context, quality_flags, gated) "
            "VALUES (%s, %s, %s, 'm', '1', '', 0.5, 1.0, 'info', %s, %s, '{}', 0, false)",
            [(f"i{m}", at(m), EQ1, at(m - 1), at(m)) for m in (5, 25)],
        )
    store = MesContextStore()
    apply_event(conn, store, event("work_order_started", 0, work_order="WO-1", product="P"), source="t")
    apply_event(conn, store, event("work_order_started", 30, work_order="WO-2", product="P"), source="t")
    res = apply_event(conn, store, event("work_order_started", 20, work_order="WO-L"), source="t")  # late
    assert res.report.samples == 10 and res.report.insights == 1
    rows = conn.execute("SELECT asset, work_order FROM samples ORDER BY asset, ts").fetchall()
    assert [r[1] for r in rows if r[0] == EQ1] == ["WO-1"] * 20 + ["WO-L"] * 10 + ["WO-2"] * 10
    assert all(r[1] is None for r in rows if r[0] == OTHER)
    ins = conn.execute("SELECT insight_id, context->>'work_order', revised, revision FROM insights "
                       "ORDER BY insight_id").fetchall()
    assert ins == [("i25", "WO-L", True, 2), ("i5", "WO-1", True, 1)]
    stats = conn.execute("SELECT product, n FROM mes_product_stats('temperature')").fetchall()
    assert stats == [("P", 40)]
    wo = conn.execute("SELECT work_order, insights FROM mes_work_order_insights ORDER BY 1").fetchall()
    assert wo == [("WO-1", 1), ("WO-L", 1)]
    assert load_store(conn, history_days=100000).intervals() == store.intervals()
