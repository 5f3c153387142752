"""Pilot tests of the terminal UI against a real, migrated historian filled from the plant simulator."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input

from tests.fixtures.tui_support import (
    Historian,
    feedback_rows,
    fixed_clock,
    loaded,
    make_historian,
    operator_events,
    wait_until,
)
from tui.app import EdgeTui
from tui.historian_source import HistorianSource
from tui.screens.base import EdgeScreen
from tui.screens.equipment import EquipmentScreen
from tui.screens.health import HealthScreen
from tui.screens.help import HelpScreen
from tui.screens.insights import InsightsScreen
from tui.screens.models import ModelsScreen
from tui.screens.overview import OverviewScreen
from tui.widgets.asset_tree import AssetTree
from tui.widgets.feedback_dialog import FeedbackDialog
from tui.widgets.status import StatusBar


@pytest.fixture
def historian(pg_dsn: str) -> Historian:
    return make_historian(pg_dsn)


def make_app(dsn: str, **kw: object) -> EdgeTui:
    return EdgeTui(HistorianSource(dsn, timeout_s=2.0, connect_timeout_s=2.0), clock=fixed_clock,
                   operator="alice", poll_s=0.5, **kw)  # type: ignore[arg-type]


async def test_overview_tree_and_find_then_open_equipment(historian: Historian) -> None:
    app = make_app(historian.reader_dsn)
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, OverviewScreen)
        tree = app.screen.query_one(AssetTree)
        assert set(tree.equipment) == set(historian.filled.assets)
        assert tree.equipment["acme/plant1/area1/line2/press2"].good_fraction is not None
        assert tree.equipment["acme/plant1/area1/line2/press2"].good_fraction < 0.95  # type: ignore[operator]
        # arrow keys: the first lines are groups, the cursor moves down the tree
        await wait_until(pilot, lambda: tree.cursor_line == 0)  # the cursor starts on the first line
        await pilot.press("down", "down")
        assert tree.cursor_line == 2
        # '/' finds an asset; enter jumps there and enter again opens it
        await pilot.press("slash")
        assert app.screen.query_one("#find", Input).has_focus
        await pilot.press(*"line2/press2")
        await pilot.press("enter")
        await wait_until(pilot, lambda: tree.cursor_node is not None
                         and tree.cursor_node.data == "acme/plant1/area1/line2/press2")
        await pilot.press("enter")
        screen = await loaded(pilot, EquipmentScreen)
        assert isinstance(screen, EquipmentScreen)
        assert screen.detail is not None
        assert screen.detail.context.work_order == "WO-2002"
        assert screen.detail.context.batch == "B-8"
        assert {t.tag for t in screen.detail.tags} == {
            f"line2.press2.{m}" for m in ("vibration", "temperature", "current", "pressure")}
        assert all(len(t.values) > 10 for t in screen.detail.tags)
        assert dict(screen.detail.features)["vibration_rms"] == pytest.approx(2.3)
        assert len(screen.detail.insights) == 10
        assert screen.query_one("#equipment-insights", DataTable).row_count == 10
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, OverviewScreen))


async def test_acknowledge_and_label_insights_are_stored(historian: Historian) -> None:
    app = make_app(historian.reader_dsn)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("2")
        screen = await loaded(pilot, InsightsScreen)
        assert isinstance(screen, InsightsScreen)
        assert len(screen.rows) == len(historian.filled.insight_ids)
        assert [r.ts for r in screen.rows] == sorted((r.ts for r in screen.rows), reverse=True)
        newest = screen.rows[0]
        await pilot.press("a")  # acknowledge the newest
        await wait_until(pilot, lambda: app.feedback_saved == 1)
        await pilot.press("down")
        second = screen.rows[1]
        await pilot.press("t")  # true fault, with a comment
        await wait_until(pilot, lambda: isinstance(app.screen, FeedbackDialog))
        await pilot.press(*"bearing noise")
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.feedback_saved == 2)
        await pilot.press("down")
        third = screen.rows[2]
        await pilot.press("f")
        await wait_until(pilot, lambda: isinstance(app.screen, FeedbackDialog))
        await pilot.press("escape")  # cancelled: nothing stored
        await wait_until(pilot, lambda: isinstance(app.screen, InsightsScreen))
        await pilot.press("f")
        await wait_until(pilot, lambda: isinstance(app.screen, FeedbackDialog))
        await pilot.press(*"sensor was cleaned", "enter")
        await wait_until(pilot, lambda: app.feedback_saved == 3)
        # the feed shows the labels once it has read them back
        await wait_until(pilot, lambda: {r.insight_id: r.feedback for r in screen.rows}.get(third.insight_id)
                         == "false_alarm")
    rows = feedback_rows(historian.admin_dsn)
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in rows] == [
        (newest.insight_id, "alice", "ack", "", "edge_reader"),
        (second.insight_id, "alice", "true_fault", "bearing noise", "edge_reader"),
        (third.insight_id, "alice", "false_alarm", "sensor was cleaned", "edge_reader"),
    ]
    events = operator_events(historian.admin_dsn)
    assert [(e[3]["insight_id"], e[3]["action"], e[3]["who"]) for e in events] == [
        (newest.insight_id, "ack", "alice"), (second.insight_id, "true_fault", "alice"),
        (third.insight_id, "false_alarm", "alice")]
    assert events[1][1] == second.asset


async def test_insight_filters(historian: Historian) -> None:
    app = make_app(historian.reader_dsn)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("2")
        screen = await loaded(pilot, InsightsScreen)
        assert isinstance(screen, InsightsScreen)
        total = len(screen.rows)
        await pilot.press("s", "s")  # warning and worse
        await wait_until(pilot, lambda: screen.filter.severity == "warning" and len(screen.rows) < total
                         and all(r.severity in ("warning", "alarm") for r in screen.rows))
        assert screen.rows
        await pilot.press("s")  # alarm only
        await wait_until(pilot, lambda: screen.filter.severity == "alarm"
                         and all(r.severity == "alarm" for r in screen.rows))
        assert screen.rows
        await pilot.press("s")  # back to all
        await wait_until(pilot, lambda: len(screen.rows) == total)
        await pilot.press("slash", *"line1/press2", "enter")
        await wait_until(pilot, lambda: len(screen.rows) == 10
                         and all(r.asset.endswith("line1/press2") for r in screen.rows))
        await pilot.press("m", *"nosuchmodel", "enter")
        await wait_until(pilot, lambda: screen.rows == [])
        await pilot.press("m", "enter")
        await pilot.press("slash", "enter")
        await wait_until(pilot, lambda: len(screen.rows) == total)


async def test_models_health_and_help(historian: Historian, tmp_path: Path) -> None:
    from edge.core.metrics import Metrics, write_state_file

    metrics = Metrics()
    metrics.inc("historian", "committed", 4800)
    metrics.inc("ingest.opcua", "rejected", 5, reason="out_of_range")
    stats = tmp_path / "stats.json"
    write_state_file(metrics, stats)
    app = make_app(historian.reader_dsn, stats_file=stats)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3")
        models = await loaded(pilot, ModelsScreen)
        assert isinstance(models, ModelsScreen)
        first = models.rows[0]
        assert (first.asset.rsplit("/", 2)[-2:], first.model, first.runtime) == (
            ["line1", "press1"], "iforest", "onnxruntime CPU")
        assert models.rows[-1].over_threshold == 10
        await pilot.press("4")
        health = await loaded(pilot, HealthScreen)
        assert isinstance(health, HealthScreen)
        assert health.data is not None
        assert health.data.spool_depth == 3
        reasons = dict(health.data.dead_letter_reasons)
        assert reasons == {"bad_payload": 2, "out_of_range": 2, "unmapped_tag": 1}
        states = {c.name: c.state for c in health.data.connections}
        assert states["mes:mqtt"] == "down" and states["opcua:sim"] == "up" and states["mqtt:broker"] == "up"
        assert states["historian (historian)"] == "up"
        assert "committed 4800" in str(health.query_one("#metrics").render())
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, HealthScreen))
        theme = app.theme
        await pilot.press("ctrl+t")
        assert app.theme != theme


async def test_no_database_shows_disconnected_and_stays_responsive() -> None:
    from tests.fixtures.services import free_port

    app = make_app(f"postgresql://edge_reader@127.0.0.1:{free_port()}/nothing")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, EdgeScreen)
        await wait_until(pilot, lambda: screen.loads >= 1)
        assert not app.connected
        assert "DISCONNECTED" in str(screen.query_one(StatusBar).render())
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))


def test_reader_writes_feedback_only_through_the_function(historian: Historian) -> None:
    import psycopg

    iid = historian.filled.insight_ids[0]
    with psycopg.connect(historian.reader_dsn, autocommit=True) as conn:
        for statement in (
            "INSERT INTO operator_feedback (insight_id, who, action) VALUES ('x', 'mallory', 'ack')",
            "INSERT INTO events (ts, kind, source, message) VALUES (now(), 'operator', 'tui', 'forged')",
            "UPDATE operator_feedback SET who = 'mallory'",
            "DELETE FROM insights",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute("SELECT record_operator_feedback('no-such-insight', 'bob', 'ack', '')")
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("SELECT record_operator_feedback(%s, 'bob', 'delete_everything', '')", (iid,))
        conn.execute("SELECT record_operator_feedback(%s, 'bob', 'false_alarm', 'dust')", (iid,))
    assert feedback_rows(historian.admin_dsn) == [(iid, "bob", "false_alarm", "dust", "edge_reader")]
    assert len(operator_events(historian.admin_dsn)) == 1


async def test_health_reads_the_metrics_endpoint() -> None:
    from edge.core.metrics import Metrics
    from edge.sinks.metrics.server import MetricsServer
    from tests.fixtures.services import free_port
    from tui.screens.health import fetch_metrics, metrics_text

    metrics = Metrics()
    metrics.inc("historian", "committed", 123)
    metrics.inc("ingest.mqtt", "rejected", 2, reason="bad_payload")
    listen = f"127.0.0.1:{free_port()}"
    server = MetricsServer(metrics, listen=listen)
    task = asyncio.ensure_future(server.run())
    try:
        snap = None
        for _ in range(50):
            snap = await fetch_metrics(listen)
            if snap is not None:
                break
            await asyncio.sleep(0.05)
        assert snap is not None
        text = str(metrics_text(snap))
        assert "committed 123" in text and "rejected 2 (bad_payload 2)" in text
    finally:
        await server.stop()
        await asyncio.wait_for(task, 5)
    assert await fetch_metrics(listen) is None  # nothing there now: None, not an error


async def test_uninitialised_historian_is_an_error_not_a_disconnect(pg_dsn: str) -> None:
    from tests.fixtures.tui_support import with_user

    app = make_app(with_user(pg_dsn, "postgres"))  # an empty database: no tables at all
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await loaded(pilot, OverviewScreen)
        assert app.connected
        assert "historian connected" in str(screen.query_one(StatusBar).render())
        await wait_until(pilot, lambda: any("samples" in str(n.message) for n in app._notifications))


async def test_feedback_on_a_vanished_insight_is_refused(historian: Historian) -> None:
    import psycopg

    from tui.models import FeedbackAction

    app = make_app(historian.reader_dsn)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("2")
        screen = await loaded(pilot, InsightsScreen)
        assert isinstance(screen, InsightsScreen)
        row = screen.rows[0]
        with psycopg.connect(historian.admin_dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM insights WHERE insight_id = %s", (row.insight_id,))
        app.give_feedback(row, FeedbackAction.ACK)
        await wait_until(pilot, lambda: any("not saved" in str(n.message) for n in app._notifications))
        assert app.feedback_saved == 0 and app.connected
    assert feedback_rows(historian.admin_dsn) == []


async def test_gated_and_suppressed_insights_read_gap_and_supp(historian: Historian) -> None:
    import psycopg

    from tui.widgets.fmt import severity_text

    with psycopg.connect(historian.admin_dsn) as conn:
        cur = conn.execute(
            """UPDATE insights SET gated = true WHERE insight_id = (
                   SELECT insight_id FROM insights WHERE severity = 'ok' ORDER BY ts DESC LIMIT 1)
               RETURNING insight_id""")
        row = cur.fetchone()
        cur = conn.execute(
            """UPDATE insights SET suppressed = true WHERE insight_id = (
                   SELECT insight_id FROM insights WHERE severity = 'alarm' ORDER BY ts DESC LIMIT 1)
               RETURNING insight_id""")
        sup = cur.fetchone()
    assert row is not None and sup is not None
    gated_id, suppressed_id = str(row[0]), str(sup[0])
    app = make_app(historian.reader_dsn)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("2")
        screen = await loaded(pilot, InsightsScreen)
        assert isinstance(screen, InsightsScreen)
        await wait_until(pilot, lambda: any(r.insight_id == gated_id for r in screen.rows))
        by_id = {r.insight_id: r for r in screen.rows}
        assert by_id[gated_id].gated and by_id[gated_id].severity == "ok"
        assert not any(r.gated for r in screen.rows if r.insight_id != gated_id)
        table = screen.query_one(DataTable)
        shown = [str(table.get_row_at(i)[1]) for i in range(table.row_count)]
        assert shown.count("? gap ") == 1 and "✓ ok " in shown
        assert by_id[suppressed_id].suppressed and shown.count("~ supp") == 1
    assert str(severity_text("alarm", gated=True)).startswith("▲")  # a raised level stays raised
