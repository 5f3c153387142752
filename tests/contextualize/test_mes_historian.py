"""MES context in the historian (real PostgreSQL): late events relabel exactly their rows, corrections,
a restart restores the intervals, the views answer MES questions."""

from __future__ import annotations

import psycopg

from contextualize.mes_events import dt_to_us
from contextualize.mes_intake import apply_event
from contextualize.mes_store import MesContextStore
from contextualize.mes_store_sql import load_store
from tests.fixtures.mes import EQ1, EQ2, LINE, OTHER, at, event, insert_insights, insert_samples, migrate


def _rows(dsn: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT asset, ts, work_order, product, batch, shift FROM samples ORDER BY asset, ts"
        ).fetchall()


def _insights(dsn: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT insight_id, context->>'work_order', context->>'batch', revised, revision FROM insights "
            "ORDER BY insight_id"
        ).fetchall()


def test_late_work_order_relabels_exactly_its_range(pg_dsn: str) -> None:
    migrate(pg_dsn)
    minutes = [m * 0.5 for m in range(0, 240)]  # 0..119.5 min
    insert_samples(pg_dsn, [(a, m) for a in (EQ1, EQ2, OTHER) for m in minutes])
    insert_insights(pg_dsn, [(a, m) for a in (EQ1, OTHER) for m in (5, 30, 45, 59.5, 60, 90)])
    store = MesContextStore()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        apply_event(
            conn,
            store,
            event("work_order_started", 0, work_order="WO-1", product="P1", batch="B1"),
            source="test",
        )
        apply_event(
            conn, store, event("work_order_started", 60, work_order="WO-2", product="P2"), source="test"
        )
        # everything was stored before the MES said a word: now label it as it would have been
    before = _rows(pg_dsn)
    ins_before = _insights(pg_dsn)
    # WO-1 was booked with a wrong start; MES books the late "WO-1b" started at 30 min (before WO-2 at 60)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        res = apply_event(
            conn, store, event("work_order_started", 30, work_order="WO-1b", batch="B2"), source="test"
        )
    after = _rows(pg_dsn)
    lo, hi = at(30), at(60)
    changed = 0
    for b, a in zip(before, after, strict=True):
        asset, ts = b[0], b[1]
        assert a[:2] == b[:2]
        in_range = asset in (EQ1, EQ2) and lo <= ts < hi  # type: ignore[operator]
        if in_range:
            assert a[2:] == ("WO-1b", "P1", "B2", None), a
            changed += 1
        elif asset in (EQ1, EQ2) and ts >= hi:  # type: ignore[operator]
            assert a[2:] == ("WO-2", "P2", "B2", None), a  # WO-2 sets no batch: B2 goes on (MES said so)
        else:
            assert a == b, (b, a)
    assert changed == 2 * 60
    # rows of the batch from 60 on changed too (B1 -> B2): exactly those, counted per change
    by_key = {(c["key"], c["valid_from"]): c for c in res.report.changes}
    assert by_key[("work_order", at(30).isoformat())]["samples_updated"] == 120
    assert res.report.samples == sum(c["samples_updated"] for c in res.report.changes)
    ins_after = dict((r[0], r[1:]) for r in _insights(pg_dsn))
    for r in ins_before:
        iid = r[0]
        new = ins_after[iid]
        if iid in ("i1", "i2", "i3"):  # EQ1 at 30, 45, 59.5: two keys changed, one revision more
            assert new == ("WO-1b", "B2", True, r[4] + 1), (iid, r, new)  # type: ignore[operator]
        elif iid in ("i4", "i5"):  # EQ1 at 60, 90: batch B1 -> B2, work order unchanged
            assert new == ("WO-2", "B2", True, r[4] + 1), (iid, r, new)  # type: ignore[operator]
        else:
            assert new == r[1:], (iid, r, new)
    with psycopg.connect(pg_dsn) as conn:
        audits = conn.execute("SELECT asset, detail FROM events WHERE kind = 'audit'").fetchall()
        kinds = conn.execute("SELECT count(*) FROM events WHERE kind = 'mes_context'").fetchone()
    assert kinds is not None and kinds[0] == 3
    wo = [d for s, d in audits if d["key"] == "work_order"]
    assert any(
        d["old"] == "WO-1"
        and d["new"] == "WO-1b"
        and d["samples_updated"] == 120
        and d["insights_updated"] == 3
        for d in wo
    ), audits
    assert all(s == LINE for s, _ in audits)


def test_correction_replaces_batch_of_a_work_order(pg_dsn: str) -> None:
    migrate(pg_dsn)
    insert_samples(pg_dsn, [(EQ1, m) for m in range(0, 40)])
    store = MesContextStore()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        apply_event(conn, store, event("work_order_started", 10, work_order="WO-1", batch="B-7"), source="t")
        apply_event(conn, store, event("work_order_completed", 20, work_order="WO-1"), source="t")
        apply_event(conn, store, event("batch", 25, batch="B-8"), source="t")
        res = apply_event(conn, store, event("correction", 26, work_order="WO-1", batch="B-77"), source="t")
    assert [(c["old"], c["new"]) for c in res.report.changes] == [("B-7", "B-77")]
    rows = _rows(pg_dsn)
    assert [r[4] for r in rows] == [None] * 10 + ["B-77"] * 10 + [None] * 5 + ["B-8"] * 15
    # the same event id again with new content replaces what it set
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        ev = event("shift_change", 5, shift="A", event_id="s-1")
        apply_event(conn, store, ev, source="t")
        apply_event(conn, store, event("shift_change", 15, shift="B", event_id="s-1"), source="t")
    assert [r[5] for r in _rows(pg_dsn)] == [None] * 15 + ["B"] * 25


def test_restart_restores_open_intervals_and_ignores_redelivery(pg_dsn: str) -> None:
    migrate(pg_dsn)
    store = MesContextStore()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for ev in [
            event("work_order_started", 0, work_order="WO-1", product="P1", batch="B1"),
            event("shift_change", 0, scope="acme/plant1", shift="A"),
            event("work_order_started", 30, work_order="WO-2", product="P2"),
            event("work_order_held", 40, work_order="WO-2"),
            event("work_order_started", 10, scope=EQ2, work_order="WO-9"),
        ]:
            apply_event(conn, store, ev, source="t")
    with psycopg.connect(pg_dsn) as conn:
        restored = load_store(conn, history_days=100000)
        open_rows = conn.execute(
            "SELECT scope, key, value FROM mes_context WHERE valid_to IS NULL ORDER BY 1, 2"
        ).fetchall()
    assert sorted((iv.scope, iv.key, iv.value) for iv in restored.open_intervals()) == sorted(open_rows)
    assert (LINE, "work_order_state", "held") in open_rows
    assert restored.intervals() == store.intervals()
    t = dt_to_us(at(35))
    assert restored.context_at(EQ1, t) == store.context_at(EQ1, t)
    assert restored.context_at(EQ1, t)["work_order"] == "WO-2"
    assert restored.context_at(EQ2, t)["work_order"] == "WO-9"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:  # a redelivery after the restart changes nothing
        res = apply_event(
            conn, restored, event("work_order_started", 30, work_order="WO-2", product="P2"), source="t"
        )
    assert res.changes == []


def test_views_answer_batch_work_order_and_product_questions(pg_dsn: str) -> None:
    migrate(pg_dsn)
    insert_samples(pg_dsn, [(EQ1, m) for m in range(0, 40)])
    insert_insights(pg_dsn, [(EQ1, m) for m in (5, 15, 25, 35)])
    store = MesContextStore()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        apply_event(
            conn,
            store,
            event("work_order_started", 10, work_order="WO-1", product="P1", batch="B1"),
            source="t",
        )
        apply_event(
            conn,
            store,
            event("work_order_started", 20, work_order="WO-2", product="P2", batch="B2"),
            source="t",
        )
        n = conn.execute("SELECT count(*) FROM mes_batch_samples WHERE batch = 'B1'").fetchone()
        ins = conn.execute(
            "SELECT insight_id FROM mes_batch_insights WHERE batch = 'B2' ORDER BY 1"
        ).fetchall()
        wo = conn.execute(
            "SELECT work_order, insights, revised FROM mes_work_order_insights ORDER BY 1"
        ).fetchall()
        stats = conn.execute("SELECT product, n, mean FROM mes_product_stats('temperature') ").fetchall()
        view = conn.execute(
            "SELECT product, n FROM mes_product_measure_stats WHERE measure = 'temperature' ORDER BY 1"
        ).fetchall()
    assert n is not None and n[0] == 10
    assert ins == [("i2",), ("i3",)]
    assert wo == [("WO-1", 1, 1), ("WO-2", 2, 2)]
    assert stats == [("P1", 10, 14.5), ("P2", 20, 29.5)]
    assert view == [("P1", 10), ("P2", 20)]


def test_writer_role_can_apply_and_relabel(pg_dsn: str) -> None:
    """At run time the intake is edge_writer, not a superuser: its grants cover store, relabel and audit."""
    from edge.sinks.historian.admin import init_historian

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        init_historian(conn, flavor="postgres")
    insert_samples(pg_dsn, [(EQ1, m) for m in range(0, 20)])
    insert_insights(pg_dsn, [(EQ1, 15)])
    store = MesContextStore()
    with psycopg.connect(pg_dsn, user="edge_writer", autocommit=True) as conn:
        apply_event(conn, store, event("work_order_started", 10, work_order="WO-1"), source="t")
        apply_event(conn, store, event("work_order_started", 5, work_order="WO-0"), source="t")  # late
        apply_event(conn, store, event("correction", 6, work_order="WO-0", batch="B"), source="t")
        assert load_store(conn, history_days=100000).intervals() == store.intervals()
    assert [r[2] for r in _rows(pg_dsn)] == [None] * 5 + ["WO-0"] * 5 + ["WO-1"] * 10
    assert _insights(pg_dsn)[0][1:] == ("WO-1", None, True, 1)


def test_late_event_older_than_the_history_loaded_at_start(pg_dsn: str) -> None:
    """After a restart the store holds open intervals and recent history only; a late event from before
    that reads the older intervals back first, so nothing stored is lost or mislabelled."""
    migrate(pg_dsn)
    insert_samples(pg_dsn, [(EQ1, m) for m in range(0, 40)])
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        store = MesContextStore()
        for ev in [event("work_order_started", 0, work_order="WO-1", batch="B1"),
                   event("work_order_completed", 20, work_order="WO-1"),
                   event("work_order_started", 30, work_order="WO-2")]:
            apply_event(conn, store, ev, source="t")
        restored = load_store(conn, history_days=1)  # the test's plant time is months ago: open ones only
        assert restored.horizon is not None
        assert {iv.value for iv in restored.intervals(key="work_order")} == {"WO-2"}
        res = apply_event(conn, restored, event("work_order_completed", 10, work_order="WO-1"), source="t")
        assert res.report.samples == 20  # work order and batch of minutes 10-19
        assert restored.horizon == dt_to_us(at(10))
        full = load_store(conn, history_days=100000)
        wo = [(iv.value, iv.valid_from, iv.valid_to) for iv in full.intervals(key="work_order")]
        corr = apply_event(conn, restored, event("correction", 35, work_order="WO-1", batch="B9"), source="t")
    assert wo == [("WO-1", dt_to_us(at(0)), dt_to_us(at(10))), ("WO-2", dt_to_us(at(30)), None)]
    assert [(c["old"], c["new"]) for c in corr.report.changes] == [("B1", "B9")]
    rows = _rows(pg_dsn)
    assert [r[2] for r in rows] == ["WO-1"] * 10 + [None] * 20 + ["WO-2"] * 10
    assert [r[4] for r in rows] == ["B9"] * 10 + [None] * 30
