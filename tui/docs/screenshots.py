"""Regenerate the README screenshots: ``.venv/bin/python -m tui.docs.screenshots`` from the repository root.

Needs PostgreSQL (``FE_TEST_PG_DSN``, default postgresql://postgres@127.0.0.1:5432/postgres): it makes a
scratch database, fills it like the tests do (tests/fixtures/tui_support.py), and saves SVGs next to this
file: the overview and the insights feed, then (with the workbench's rows of tests/tui/workbench_support.py:
explanations, MES changes, labelled past alarms) an alarm's detail, the ``:`` command line and the shift
report.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Any

import psycopg

HERE = Path(__file__).parent


async def settle(app: Any, pilot: Any) -> None:
    """Wait until the current screen has loaded twice more: what it shows is its data, not a first paint."""
    from tests.fixtures.tui_support import wait_until
    from tui.screens.base import EdgeScreen

    await wait_until(pilot, lambda: isinstance(app.screen, EdgeScreen) and app.screen.loads > 0)
    screen = app.screen
    assert isinstance(screen, EdgeScreen)
    n = screen.loads
    await wait_until(pilot, lambda: screen.loads >= n + 2)
    await pilot.pause(0.2)


async def shoot(reader_dsn: str) -> None:
    from tests.fixtures.tui_support import fixed_clock, wait_until
    from tui.app import EdgeTui
    from tui.historian_source import HistorianSource

    app = EdgeTui(HistorianSource(reader_dsn), clock=fixed_clock, operator="alice", poll_s=0.3)
    async with app.run_test(size=(110, 30)) as pilot:
        await settle(app, pilot)
        await pilot.press("down", "down", "down", "down")
        await settle(app, pilot)
        app.save_screenshot("overview.svg", str(HERE))
        await pilot.press("2")
        await wait_until(pilot, lambda: app.screen.id == "insights")
        await settle(app, pilot)
        await pilot.press("down", "t", *"bearing noise", "enter")
        await wait_until(pilot, lambda: app.feedback_saved == 1)
        await pilot.press("down", "a")
        await wait_until(pilot, lambda: app.feedback_saved == 2)
        await pilot.pause(5.5)  # let the toasts go
        await settle(app, pilot)
        app.save_screenshot("insights.svg", str(HERE))


async def shoot_workbench(reader_dsn: str, alarm_id: str) -> None:
    from tests.fixtures.tui_support import fixed_clock, wait_until
    from tui.app import EdgeTui
    from tui.historian_source import HistorianSource
    from tui.messages import OpenAlarm
    from tui.screens.report import ShiftReportScreen
    from tui.widgets.command_line import CommandLine

    app = EdgeTui(HistorianSource(reader_dsn), clock=fixed_clock, operator="alice", poll_s=0.3)
    async with app.run_test(size=(120, 56)) as pilot:
        await settle(app, pilot)
        await pilot.press("2")
        await wait_until(pilot, lambda: app.screen.id == "insights")
        await settle(app, pilot)
        app.post_message(OpenAlarm(alarm_id))
        await wait_until(pilot, lambda: app.screen.id == "alarm")
        await settle(app, pilot)
        app.save_screenshot("alarm.svg", str(HERE))
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen.id == "insights")
        await pilot.press("colon")
        await wait_until(pilot, lambda: isinstance(app.screen, CommandLine))
        await pilot.press(*"report line2")
        await pilot.pause(0.3)
        app.save_screenshot("command-line.svg", str(HERE))
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ShiftReportScreen))
        await settle(app, pilot)
        app.save_screenshot("report.svg", str(HERE))


def main() -> None:
    from tests.fixtures.tui_support import fill_historian, prepare_historian
    from tests.tui.workbench_support import add_workbench_rows

    server = os.environ.get("FE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"fe_shots_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = server.rsplit("/", 1)[0] + f"/{name}"
    try:
        reader = prepare_historian(dsn)
        fill_historian(dsn)
        asyncio.run(shoot(reader))
        newest, _ = add_workbench_rows(dsn)
        asyncio.run(shoot_workbench(reader, newest))
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
