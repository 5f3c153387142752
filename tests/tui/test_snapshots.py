"""Snapshot tests of every screen at 80x24 and 160x48 (the alarm detail, the shift report and the command line
on the workbench's rows) (pytest-textual-snapshot; SVGs in __snapshots__/).

Deterministic: a fixed clock (tests.fixtures.tui_support.FIXED_NOW), a seeded simulator, generated rows from
a fixed
seed, a fixed operator name. Update after a deliberate change with ``pytest --snapshot-update``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from tests.fixtures.tui_support import fixed_clock, make_historian, wait_until
from tests.tui.workbench_support import make_workbench
from tui.app import EdgeTui
from tui.historian_source import HistorianSource
from tui.messages import OpenAlarm
from tui.screens.base import EdgeScreen
from tui.screens.report import ShiftReportScreen
from tui.widgets.command_line import CommandLine

SIZES = [(80, 24), (160, 48)]
EQUIPMENT = "acme/plant1/area1/line2/press2"


async def _loaded(pilot: Pilot[Any]) -> None:
    app = pilot.app
    await wait_until(pilot, lambda: isinstance(app.screen, EdgeScreen) and app.screen.loads > 0)
    screen = app.screen
    assert isinstance(screen, EdgeScreen)
    n = screen.loads
    await wait_until(pilot, lambda: screen.loads > n)  # a second poll: labels and cursors settled
    await pilot.pause(0.2)


def _steps(screen: str) -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def run_before(pilot: Pilot[Any]) -> None:
        await _loaded(pilot)
        app = pilot.app
        assert isinstance(app, EdgeTui)
        if screen == "equipment":
            app.open_equipment(EQUIPMENT)
            await wait_until(pilot, lambda: app.screen.id == "equipment")
            await _loaded(pilot)
        elif screen in ("insights", "models", "health"):
            await pilot.press({"insights": "2", "models": "3", "health": "4"}[screen])
            await wait_until(pilot, lambda: app.screen.id == screen)
            await _loaded(pilot)
        elif screen == "help":
            await pilot.press("question_mark")
            await pilot.pause(0.3)

    return run_before


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("screen", ["overview", "equipment", "insights", "models", "health", "help"])
def test_screen_snapshot(screen: str, size: tuple[int, int], pg_dsn: str, snap_compare: Any) -> None:
    hist = make_historian(pg_dsn)
    app = EdgeTui(HistorianSource(hist.reader_dsn), clock=fixed_clock, operator="alice", poll_s=0.3)
    assert snap_compare(app, terminal_size=size, run_before=_steps(screen))


WORKBENCH_STEPS = {"alarm", "report", "command-line"}


def _workbench_steps(screen: str, alarm_id: str) -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def run_before(pilot: Pilot[Any]) -> None:
        await _loaded(pilot)
        app = pilot.app
        assert isinstance(app, EdgeTui)
        if screen == "alarm":
            app.post_message(OpenAlarm(alarm_id))
            await wait_until(pilot, lambda: app.screen.id == "alarm")
            await _loaded(pilot)
        elif screen == "report":
            await pilot.press("5")
            await wait_until(pilot, lambda: isinstance(app.screen, ShiftReportScreen))
            report = app.screen
            assert isinstance(report, ShiftReportScreen)
            report.show("line2", None, None)
            await _loaded(pilot)
        elif screen == "command-line":
            await pilot.press("colon")
            await wait_until(pilot, lambda: isinstance(app.screen, CommandLine))
            box = app.screen.query_one("#command-input", Input)
            box.cursor_blink = False  # a blinking cursor is drawn or not by when the shot is taken
            await pilot.press(*"since 2h")
            await wait_until(pilot, lambda: box.value == ":since 2h")
            await pilot.pause(0.1)

    return run_before


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("screen", sorted(WORKBENCH_STEPS))
def test_workbench_snapshot(screen: str, size: tuple[int, int], pg_dsn: str, snap_compare: Any) -> None:
    wb = make_workbench(pg_dsn)
    app = EdgeTui(HistorianSource(wb.historian.reader_dsn), clock=fixed_clock, operator="alice", poll_s=0.3)
    assert snap_compare(app, terminal_size=size, run_before=_workbench_steps(screen, wb.newest_alarm))


def test_overview_snapshot_light_theme(pg_dsn: str, snap_compare: Any) -> None:
    hist = make_historian(pg_dsn)
    app = EdgeTui(HistorianSource(hist.reader_dsn), clock=fixed_clock, operator="alice", poll_s=0.3,
                  theme="light")
    assert snap_compare(app, terminal_size=(80, 24), run_before=_steps("overview"))
