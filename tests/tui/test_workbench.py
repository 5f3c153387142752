"""Pilot tests of the engineer's workbench against a real historian: an alarm's detail with its explanation
and what happened around it, a label given there, the ``:`` command line, ``/`` filters, the shift report."""

from __future__ import annotations

from datetime import timedelta

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from tests.fixtures.tui_support import FIXED_NOW, feedback_rows, fixed_clock, loaded, wait_until
from tests.tui.workbench_support import NEIGHBOUR, TROUBLED, Workbench, make_workbench
from tui.app import EdgeTui
from tui.historian_source import HistorianSource
from tui.screens.alarm import AlarmScreen
from tui.screens.base import EdgeScreen
from tui.screens.equipment import EquipmentScreen
from tui.screens.insights import InsightsScreen
from tui.screens.models import ModelsScreen
from tui.screens.report import ShiftReportScreen
from tui.widgets.command_line import CommandLine
from tui.widgets.feedback_dialog import FeedbackDialog


@pytest.fixture
def workbench(pg_dsn: str) -> Workbench:
    return make_workbench(pg_dsn)


def make_app(dsn: str) -> EdgeTui:
    return EdgeTui(HistorianSource(dsn, timeout_s=2.0, connect_timeout_s=2.0), clock=fixed_clock,
                   operator="alice", poll_s=0.5)


def text_of(screen: EdgeScreen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


def cells(table: DataTable[object]) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(r)] for r in range(table.row_count)]


async def command(pilot: Pilot[None], text: str) -> None:
    app = pilot.app
    assert isinstance(app, EdgeTui)
    await pilot.press("colon")
    await wait_until(pilot, lambda: isinstance(app.screen, CommandLine))
    await pilot.press(*text.removeprefix(":"), "enter")  # the line starts with its ":"
    await wait_until(pilot, lambda: not isinstance(app.screen, CommandLine))


async def test_alarm_detail_explains_and_takes_a_label(workbench: Workbench) -> None:
    app = make_app(workbench.historian.reader_dsn)
    async with app.run_test(size=(130, 60)) as pilot:
        await pilot.press("2")
        feed = await loaded(pilot, InsightsScreen)
        assert isinstance(feed, InsightsScreen)
        index = next(i for i, r in enumerate(feed.rows) if r.insight_id == workbench.newest_alarm)
        feed.query_one("#feed", DataTable).move_cursor(row=index)
        await pilot.press("enter")
        screen = await loaded(pilot, AlarmScreen)
        assert isinstance(screen, AlarmScreen) and screen.detail is not None
        d = screen.detail
        assert d.insight.insight_id == workbench.newest_alarm and d.insight.asset == TROUBLED
        # what the alarm follows comes first: the product change, then the data gap
        head = text_of(screen, "#alarm-headline").splitlines()
        assert head[0].startswith("! follows a product change: P-HINGE-B → P-HINGE-C")
        assert head[1].startswith("! follows a data gap: inference: temperature: gap raised")
        why = text_of(screen, "#alarm-why")
        assert "1. vibration rms" in why and "baseline 1.1 ± 0.2" in why and "mm/s" in why
        assert "2. temperature mean" in why and "baseline 41.5 ± 1.5" in why and "degC" in why
        around = cells(screen.query_one("#alarm-around", DataTable))
        kinds = [row[1] for row in around]
        assert {"MES", "data quality", "neighbour"} <= set(kinds)
        assert any(row[2] == f"alarm on {NEIGHBOUR.rsplit('/', 1)[-1]} (1 windows)" for row in around)
        similar = cells(screen.query_one("#alarm-similar", DataTable))
        labelled = {(action, comment) for action, comment in workbench.labelled.values()}
        assert {(row[4], row[6]) for row in similar[:2]} == labelled  # labelled cases first at equal distance
        plot = text_of(screen, "#alarm-plot")
        assert "temperature degC" in plot and "band 41.5 ± 3" in plot and "━" in plot
        # "/" filters the lists of the alarm
        await pilot.press("slash", *"bearing", "enter")
        await wait_until(pilot, lambda: screen.query_one("#alarm-similar", DataTable).row_count == 1)
        assert cells(screen.query_one("#alarm-similar", DataTable))[0][6] == "bearing noise"
        # a label given on the alarm itself is stored
        await pilot.press("f")
        await wait_until(pilot, lambda: isinstance(app.screen, FeedbackDialog))
        await pilot.press(*"product change transient", "enter")
        await wait_until(pilot, lambda: app.feedback_saved == 1)
        await wait_until(pilot, lambda: screen.detail is not None
                         and screen.detail.insight.feedback == "false_alarm")
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, InsightsScreen))
    rows = feedback_rows(workbench.historian.admin_dsn)
    assert rows[-1] == (workbench.newest_alarm, "alice", "false_alarm", "product change transient",
                        "edge_reader")


async def test_command_line_asset_since_label_and_report(workbench: Workbench) -> None:
    app = make_app(workbench.historian.reader_dsn)
    async with app.run_test(size=(130, 50)) as pilot:
        await command(pilot, ":asset line2/press2")
        eq = await loaded(pilot, EquipmentScreen)
        assert isinstance(eq, EquipmentScreen) and eq.asset == TROUBLED
        await pilot.press("escape")
        await command(pilot, ":since 2m")
        feed = await loaded(pilot, InsightsScreen)
        assert isinstance(feed, InsightsScreen)
        await wait_until(pilot, lambda: bool(feed.rows) and all(
            r.ts > FIXED_NOW - timedelta(minutes=2) for r in feed.rows))
        assert len(feed.rows) < len(workbench.historian.filled.insight_ids)
        assert "since 2m ago" in text_of(feed, "#filters")
        chosen = feed.rows[0]
        await command(pilot, ":label f sensor was cleaned")
        await wait_until(pilot, lambda: app.feedback_saved == 1)
        await command(pilot, ":label t")  # no comment given: the dialog asks for one
        await wait_until(pilot, lambda: isinstance(app.screen, FeedbackDialog))
        await pilot.press(*"seal leak", "enter")
        await wait_until(pilot, lambda: app.feedback_saved == 2)
        ran = app.commands_run
        await command(pilot, ":frobnicate now")  # not a command: said, nothing run
        await command(pilot, ":since soon")
        assert app.commands_run == ran
        await command(pilot, ":since all")
        await wait_until(pilot, lambda: len(feed.rows) == len(workbench.historian.filled.insight_ids))
        await command(pilot, f":report line2 {FIXED_NOW.date().isoformat()}")
        report = await loaded(pilot, ShiftReportScreen)
        assert isinstance(report, ShiftReportScreen)
        await wait_until(pilot, lambda: report.report is not None and report.report.line.endswith("line2"))
        assert report.report is not None
        summary = text_of(report, "#report-summary")
        assert f"Shift report: {report.report.line}, {FIXED_NOW.date().isoformat()}" in summary
        assert "false-alarm rate" in summary
        top = cells(report.query_one("#report-equipment", DataTable))
        assert top[0][0] == TROUBLED
        await pilot.press("slash", *"press1", "enter")
        table = report.query_one("#report-equipment", DataTable)
        await wait_until(pilot, lambda: [r[0] for r in cells(table)] == [NEIGHBOUR])
    rows = feedback_rows(workbench.historian.admin_dsn)
    mine = [(r[0], r[2], r[3]) for r in rows if r[1] == "alice"]
    assert mine == [(chosen.insight_id, "false_alarm", "sensor was cleaned"),
                    (chosen.insight_id, "true_fault", "seal leak")]


async def test_slash_filters_the_models_list(workbench: Workbench) -> None:
    app = make_app(workbench.historian.reader_dsn)
    async with app.run_test(size=(130, 40)) as pilot:
        await pilot.press("3")
        screen = await loaded(pilot, ModelsScreen)
        table = screen.query_one("#model-table", DataTable)
        assert table.row_count == 4
        await pilot.press("slash", *"line2", "enter")
        await wait_until(pilot, lambda: table.row_count == 2)
        assert all("line2" in row[0] for row in cells(table))
        await pilot.press("slash", "enter")  # empty clears
        await wait_until(pilot, lambda: table.row_count == 4)
