"""The lifecycle in the terminal UI, against a real historian: a false-alarm label given in the dialog
suppresses repeats (stored flagged, kept from MES), the models screen counts the labels per model and
equipment, and its compare panel shows the figures of ``edge models compare``."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from textual.widgets import DataTable, Input, Static

from inference.compare import compare
from tests.fixtures.tui_support import (
    FIXED_NOW,
    MODEL,
    Historian,
    fixed_clock,
    loaded,
    make_historian,
    wait_until,
)
from tests.inference.suppression_support import Row, flags, write_insights
from tests.tui.test_app import make_app
from tui.app import EdgeTui
from tui.historian_source import HistorianSource
from tui.screens.insights import InsightsScreen
from tui.screens.models import ModelsScreen
from tui.widgets.feedback_dialog import FeedbackDialog

ASSET = "acme/plant1/area1/line2/press2"


@pytest.fixture
def historian(pg_dsn: str) -> Historian:
    return make_historian(pg_dsn)


def feedback(dsn: str, insight_id: str, action: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT record_operator_feedback(%s, 'dora', %s, '')", (insight_id, action))


async def test_false_alarm_dialog_suppresses_repeats(historian: Historian) -> None:
    lead = ["vibration_rms", "temperature_mean", "current_rms"]
    (fresh,) = write_insights(historian.admin_dsn, [Row(FIXED_NOW - timedelta(seconds=1), lead, asset=ASSET,
                                                         model=MODEL)])
    app = make_app(historian.reader_dsn)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("2")
        screen = await loaded(pilot, InsightsScreen)
        assert isinstance(screen, InsightsScreen)
        assert screen.rows[0].insight_id == fresh
        await pilot.press("t")
        await wait_until(pilot, lambda: isinstance(app.screen, FeedbackDialog))
        assert not app.screen.query("#suppress-hours")  # only a false alarm offers it
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, InsightsScreen))
        await pilot.press("f")
        await wait_until(pilot, lambda: isinstance(app.screen, FeedbackDialog))
        dialog = app.screen
        await pilot.press(*"coolant splash", "tab", *"many", "enter")
        await wait_until(pilot, lambda: "not a number" in str(dialog.query_one("#suppress-error", Static)
                                                              .render()))
        assert isinstance(app.screen, FeedbackDialog) and app.feedback_saved == 0  # refused, still open
        dialog.query_one("#suppress-hours", Input).value = ""
        await pilot.press(*"4h", "enter")
        await wait_until(pilot, lambda: app.feedback_saved == 1)

        with psycopg.connect(historian.admin_dsn) as conn:
            sup = conn.execute(
                "SELECT s.id, s.who, s.db_role, s.asset, s.model, s.features, s.until - s.starts_at, "
                "s.comment, f.action, f.insight_id FROM alarm_suppressions s "
                "JOIN operator_feedback f ON f.id = s.feedback_id").fetchall()
        assert len(sup) == 1
        sid, who, role, asset, model, features, span, comment, action, insight_id = sup[0]
        assert (who, role, asset, model, action, insight_id) == ("alice", "edge_reader", ASSET, MODEL,
                                                                 "false_alarm", fresh)
        assert features == sorted(lead) and span == timedelta(hours=4) and comment == "coolant splash"

        repeat, other = write_insights(historian.admin_dsn, [
            Row(FIXED_NOW + timedelta(minutes=5), lead[::-1], asset=ASSET, model=MODEL),
            Row(FIXED_NOW + timedelta(minutes=5), ["pressure_mean"], asset=ASSET, model=MODEL)])
        got = flags(historian.admin_dsn, [repeat, other])
        assert got[repeat] == (True, sid, False) and got[other] == (False, None, True)

        await pilot.press("3")
        models = await loaded(pilot, ModelsScreen)
        assert isinstance(models, ModelsScreen)
        cells = models.query_one("#model-table", DataTable).get_row(f"{ASSET}|{MODEL}")
        assert [str(c) for c in cells[9:13]] == ["0", "1", "0", "1"]  # TF, FA, ack, active suppressions


async def test_models_screen_counts_labels_and_compares_with_challenger(historian: Historian) -> None:
    ids = historian.filled.insight_ids
    # press1 of line1 has ids[0:10], ..., press2 of line2 ids[30:40] (fill order: sorted assets)
    feedback(historian.admin_dsn, ids[30], "true_fault")
    feedback(historian.admin_dsn, ids[31], "true_fault")
    feedback(historian.admin_dsn, ids[31], "false_alarm")  # relabelled: counts as its latest label
    feedback(historian.admin_dsn, ids[32], "ack")
    feedback(historian.admin_dsn, ids[33], "ack")
    feedback(historian.admin_dsn, ids[33], "true_fault")
    feedback(historian.admin_dsn, ids[0], "false_alarm")
    with psycopg.connect(historian.admin_dsn, autocommit=True) as conn:
        assets: dict[str, str] = dict(conn.execute(
            "SELECT insight_id, asset FROM insights WHERE insight_id = ANY(%s)",
            ([ids[0], ids[30]],)).fetchall())
        # a challenger in shadow on the same windows: alarms at a lower score than the champion
        conn.execute(
            "INSERT INTO insights (insight_id, ts, asset, model, model_version, model_sha256, score, "
            "threshold, severity, window_start, window_end, top_features, context, role) "
            "SELECT insight_id || '-c', ts, asset, model, '2.0.0', 'c', score, threshold, "
            "CASE WHEN score >= 0.8 THEN 'alarm' WHEN score >= 0.6 THEN 'warning' ELSE 'ok' END, "
            "window_start, window_end, top_features, context, 'challenger' FROM insights WHERE model = %s",
            (MODEL,))
        # MES context to slice by: two shifts, a product per line
        conn.execute("UPDATE insights SET context = context::jsonb || jsonb_build_object("
                     "'shift', CASE WHEN extract(second FROM window_start)::int % 2 = 0 "
                     "THEN 'A' ELSE 'B' END, 'product', CASE WHEN asset::text LIKE '%%line1%%' "
                     "THEN 'P-BRACKET-A' ELSE 'P-HINGE-B' END)")
    first, last = assets[ids[0]], assets[ids[30]]
    assert last == ASSET

    source = HistorianSource(historian.reader_dsn, timeout_s=2.0, connect_timeout_s=2.0)
    source.use_comparer(compare)  # as `edge tui` wires it
    app = EdgeTui(source, clock=fixed_clock, operator="alice", poll_s=0.5)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("3")
        screen = await loaded(pilot, ModelsScreen)
        assert isinstance(screen, ModelsScreen)
        table = screen.query_one("#model-table", DataTable)
        assert [str(c) for c in table.get_row(f"{last}|{MODEL}")[9:13]] == ["2", "1", "2", "0"]
        assert [str(c) for c in table.get_row(f"{first}|{MODEL}")[9:13]] == ["0", "1", "0", "0"]
        panel = screen.query_one("#model-compare", Static)
        assert not panel.display

        await pilot.press("c")
        await wait_until(pilot, lambda: screen.comparison is not None)
        view = screen.comparison
        assert view is not None and view.total is not None and panel.display
        text = str(panel.render())
        assert "champion v1.2.0 vs challenger v2.0.0" in text and "agreement" in text

        res = compare(historian.admin_dsn, MODEL, FIXED_NOW - timedelta(hours=24), FIXED_NOW)
        assert view.paired_windows == res["paired_windows"] == 40
        assert view.true_fault_periods == res["true_fault_periods"] == 2
        assert view.total.agreement == pytest.approx(res["agreement"])
        assert 0 < view.total.agreement < 1  # the challenger alarms where the champion does not
        for role in ("champion", "challenger"):
            mine = getattr(view.total, role)
            for key in ("alarm_rate", "precision", "recall"):
                assert getattr(mine, key) == pytest.approx(res[role][key]), (role, key)
        assert view.total.challenger.recall is not None and view.total.challenger.recall > 0
        for key in ("shift", "product", "asset"):
            assert {v: b.agreement for v, b in view.slice(key)} == pytest.approx(
                {v: s["agreement"] for v, s in res["slices"][key].items()}), key
            assert {v: b.challenger.recall for v, b in view.slice(key)} == {
                v: s["challenger"]["recall"] for v, s in res["slices"][key].items()}, key
        assert {v for v, _ in view.slice("shift")} == {"A", "B"}
        assert view.delays("challenger") == tuple(res["detection_delay_s"]["challenger"])
        # each of the two labelled faults counts once, in the shift it began in, its delay shown on that line
        began = {v: len(dict(b.delays_s)["challenger"]) for v, b in view.slice("shift")}
        assert sum(began.values()) == 2
        shown = {line.split(":")[0].strip() for line in text.splitlines() if ", delay " in line}
        assert shown == {v for v, n in began.items() if n}
        assert "by shift" in text and "P-HINGE-B" not in text and "delay" in text

        await pilot.press("v")  # slices: shift -> product
        await wait_until(pilot, lambda: "by product" in str(panel.render()))
        assert "P-HINGE-B" in str(panel.render()) and "P-BRACKET-A" in str(panel.render())

        await pilot.press("p")  # period: 24 h -> 7 d
        await wait_until(pilot, lambda: screen.comparison is not None and "last 7 d" in str(panel.render()))
        assert screen.comparison is not None and screen.comparison.since == FIXED_NOW - timedelta(days=7)
        await pilot.press("p")  # 7 d -> 1 h: the filled history is the last 5 min, so the same windows
        await wait_until(pilot, lambda: screen.comparison is not None and "last 1 h" in str(panel.render()))
        short = compare(historian.admin_dsn, MODEL, FIXED_NOW - timedelta(hours=1), FIXED_NOW)
        assert screen.comparison is not None and screen.comparison.paired_windows == short["paired_windows"]

        await pilot.press("c")  # the same model again closes the panel
        await wait_until(pilot, lambda: not panel.display)


async def test_compare_panel_says_why_there_is_nothing_to_compare(historian: Historian) -> None:
    source = HistorianSource(historian.reader_dsn, timeout_s=2.0, connect_timeout_s=2.0)
    source.use_comparer(compare)
    app = EdgeTui(source, clock=fixed_clock, operator="alice", poll_s=0.5)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("3")
        screen = await loaded(pilot, ModelsScreen)
        assert isinstance(screen, ModelsScreen)
        await pilot.press("c")
        await wait_until(pilot, lambda: screen.comparison is not None)
        text = str(screen.query_one("#model-compare", Static).render())
        assert "needs a challenger in shadow" in text and screen.comparison is not None
        assert screen.comparison.total is None


def test_reader_suppresses_and_lifts_only_through_the_functions(historian: Historian) -> None:
    iid = historian.filled.insight_ids[30]  # an insight with leading features
    with psycopg.connect(historian.reader_dsn, autocommit=True) as conn:
        row = conn.execute("SELECT record_operator_feedback(%s, 'bob', 'false_alarm', '')", (iid,)).fetchone()
        assert row is not None
        for statement in (
            "INSERT INTO alarm_suppressions (who, feedback_id, insight_id, asset, model, features, "
            "starts_at, until) VALUES ('m', 1, 'x', 'a', 'm', '{f}', now(), now() + interval '1 h')",
            "UPDATE alarm_suppressions SET lifted_at = now()",
            "UPDATE insights SET suppressed = true",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("SELECT record_alarm_suppression(%s, 'bob', 1000, '')", (row[0],))
        sid = conn.execute("SELECT record_alarm_suppression(%s, 'bob', 2, '')", (row[0],)).fetchone()
        assert sid is not None
        with pytest.raises(psycopg.errors.CheckViolation):  # who lifts must be named
            conn.execute("SELECT lift_alarm_suppression(%s, ' ', 'x')", (sid[0],))
        conn.execute("SELECT lift_alarm_suppression(%s, 'bob', 'x')", (sid[0],))  # since 0046
        with pytest.raises(psycopg.errors.NoDataFound):  # once
            conn.execute("SELECT lift_alarm_suppression(%s, 'bob', 'x')", (sid[0],))
    with psycopg.connect(historian.admin_dsn) as conn:
        rows = conn.execute("SELECT who, db_role, features, lifted_by FROM alarm_suppressions").fetchall()
        assert rows == [("bob", "edge_reader", ["temperature_mean", "vibration_rms"], "bob")]
        assert conn.execute("SELECT detail->>'action', detail->>'db_role' FROM events "
                            "WHERE kind = 'suppression' ORDER BY ts").fetchall() == [
            ("created", "edge_reader"), ("lifted", "edge_reader")]
