"""The models screen's lifecycle panels against a real historian: an engineer lifts a suppression from the
list of active ones (a reason is required, the lift is audited like `edge models suppress lift`, and repeats
alarm again), and retraining runs show with their state, start, lookback window, windows used and result,
as `edge models list` shows them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from textual.widgets import DataTable, Input, Static

from edge.app.cli import main as edge_main
from inference.retrain_progress import latest, record, tracked
from tests.fixtures.tui_support import FIXED_NOW, MODEL, Historian, loaded, make_historian, wait_until
from tests.inference.suppression_support import Row, flags, write_insights
from tests.tui.test_app import make_app
from tui.screens.models import ModelsScreen
from tui.widgets.lift_dialog import LiftDialog

ASSET = "acme/plant1/area1/line2/press2"
LEAD = ["current_rms", "temperature_mean", "vibration_rms"]


@pytest.fixture
def historian(pg_dsn: str) -> Historian:
    return make_historian(pg_dsn)


def suppress(dsn: str, hours: float = 4.0) -> tuple[int, str]:
    """A false alarm labelled by dora, its repeats suppressed; (suppression id, labelled insight)."""
    (iid,) = write_insights(dsn, [Row(FIXED_NOW - timedelta(seconds=1), LEAD, asset=ASSET, model=MODEL)])
    with psycopg.connect(dsn, autocommit=True) as conn:
        fb = conn.execute("SELECT record_operator_feedback(%s, 'dora', 'false_alarm', '')", (iid,)).fetchone()
        assert fb is not None
        sid = conn.execute("SELECT record_alarm_suppression(%s, 'dora', %s, 'splash')",
                           (fb[0], hours)).fetchone()
    assert sid is not None
    return int(sid[0]), iid


async def test_lift_a_suppression_from_the_models_screen(historian: Historian,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    sid, _ = suppress(historian.admin_dsn)
    (kept,) = write_insights(historian.admin_dsn, [Row(FIXED_NOW + timedelta(minutes=1), LEAD, asset=ASSET,
                                                       model=MODEL)])
    assert flags(historian.admin_dsn, [kept])[kept][0] is True  # suppressed before the lift
    app = make_app(historian.reader_dsn)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("3")
        screen = await loaded(pilot, ModelsScreen)
        assert isinstance(screen, ModelsScreen)
        table = screen.query_one("#sup-table", DataTable)
        assert not table.display
        await pilot.press("s")
        await wait_until(pilot, lambda: table.display and table.row_count == 1)
        cells = [str(c) for c in table.get_row(str(sid))]
        assert cells[0] == f"#{sid}" and cells[2] == MODEL and cells[3] == ", ".join(LEAD)
        assert cells[5] == "dora" and cells[6] == "1"  # one repeat kept from MES so far

        await pilot.press("l")
        await wait_until(pilot, lambda: isinstance(app.screen, LiftDialog))
        dialog = app.screen
        await pilot.press("enter")  # no reason: refused in place
        await wait_until(pilot, lambda: "say why" in str(dialog.query_one("#lift-error", Static).render()))
        assert isinstance(app.screen, LiftDialog)
        dialog.query_one("#lift-reason", Input).value = "coolant fixed"
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.suppressions_lifted == 1)  # type: ignore[attr-defined]
        await wait_until(pilot, lambda: isinstance(app.screen, ModelsScreen) and table.row_count == 0)
        await wait_until(pilot, lambda: str(screen.query_one("#model-table", DataTable)
                                            .get_row(f"{ASSET}|{MODEL}")[12]) == "0")  # sup column

        await pilot.press("l")  # nothing left to lift: nothing asked
        await pilot.pause(0.2)
        assert isinstance(app.screen, ModelsScreen)

    with psycopg.connect(historian.admin_dsn) as conn:
        row = conn.execute("SELECT lifted_by, lift_reason, lifted_at IS NOT NULL FROM alarm_suppressions "
                           "WHERE id = %s", (sid,)).fetchone()
        assert row == ("alice", "coolant fixed", True)
        ev = conn.execute("SELECT detail->>'action', detail->>'who', detail->>'comment', detail->>'db_role' "
                          "FROM events WHERE kind = 'suppression' ORDER BY ts").fetchall()
        assert ev[1:] == [("lifted", "alice", "coolant fixed", "edge_reader")]  # as the reader, named
        assert ev[0][:3] == ("created", "dora", "splash")
    (again,) = write_insights(historian.admin_dsn, [Row(FIXED_NOW + timedelta(minutes=2), LEAD, asset=ASSET,
                                                        model=MODEL)])
    assert flags(historian.admin_dsn, [again])[again] == (False, None, True)  # alarms and is queued again
    assert edge_main(["models", "suppress", "list", "--all", "--dsn", historian.admin_dsn]) == 0
    assert f"#{sid} lifted" in capsys.readouterr().out


async def test_retraining_runs_on_the_models_screen_and_in_edge_models_list(
        historian: Historian, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dsn = historian.admin_dsn
    start = FIXED_NOW - timedelta(minutes=10)

    class Pkg:
        version = "1.3.0"

    done = tracked(dsn, lambda: Pkg(), model=MODEL, scope=ASSET, trigger="drift", who="ops",
                   based_on="1.2.0", now=start, lookback_s=3600.0,
                   result=lambda p: {"version": p.version, "windows": 1234, "seconds": 12.5})
    assert done.version == "1.3.0"

    def boom() -> Pkg:
        raise RuntimeError("training data too small for press: 3 good windows")

    with pytest.raises(RuntimeError):
        tracked(dsn, boom, model="other", scope="all", trigger="manual", who="ops", based_on="2.0.0",
                now=start, lookback_s=600.0, result=lambda p: {})
    record(dsn, run_id="still-running", state="running", model=MODEL, scope="all", trigger="schedule",
           since=FIXED_NOW - timedelta(hours=1), until=FIXED_NOW)
    runs = {r["model"] + r["state"]: r for r in latest(dsn)}
    assert set(runs) == {f"{MODEL}done", "otherfailed", f"{MODEL}running"}
    assert runs[f"{MODEL}done"]["windows"] == 1234 and runs[f"{MODEL}done"]["version"] == "1.3.0"
    assert runs["otherfailed"]["error"].startswith("training data too small")

    with psycopg.connect(dsn, autocommit=True) as conn:  # in the screen's (fixed) clock: started before it
        conn.execute("UPDATE model_retrains SET ts = %s - (max_id - id) * interval '1 s' FROM "
                     "(SELECT max(id) AS max_id FROM model_retrains) m", (FIXED_NOW - timedelta(minutes=1),))
    app = make_app(historian.reader_dsn)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("3")
        screen = await loaded(pilot, ModelsScreen)
        assert isinstance(screen, ModelsScreen)
        panel = screen.query_one("#model-retrains", Static)
        await wait_until(pilot, lambda: panel.display)
        text = str(panel.render())
        lines = text.splitlines()
        assert "running" in lines[1] and "schedule" in lines[1]  # newest first
        assert "failed" in lines[2] and "training data too small" in lines[2]
        assert "done" in lines[3] and "v1.3.0 from 1234 windows in 12.5 s" in lines[3]
        assert "lookback" in lines[3] and "based on v1.2.0" in lines[3]

    models_dir = str(tmp_path)
    assert edge_main(["models", "list", "--models-dir", models_dir, "--dsn", dsn]) == 0
    out = capsys.readouterr().out
    assert f"retrain {MODEL} ({ASSET}, drift) done" in out and "v1.3.0 from 1234 windows" in out
    assert "retrain other (all, manual) failed" in out and f"retrain {MODEL} (all, schedule) running" in out
