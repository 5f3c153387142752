"""The fleet screen (key 6) with Textual's pilot: real heartbeats through a real nats-server, the desired
state rendered from a real config folder, a migrated historian in PostgreSQL beside it."""

from __future__ import annotations

from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from edge.app.config import load_config
from edge.app.fleet.info import app_info
from edge.app.fleet.status import fleet_watch
from edge.core.supervisor import Supervisor
from edge.sinks.jetstream.heartbeat import Heartbeat
from edge.sinks.jetstream.settings import JetStreamSettings
from tests.edge.sinks.jetstream.conftest import free_port, nats_url  # noqa: F401  (the fixture)
from tests.fixtures.tui_support import prepare_historian, wait_until
from tui.app import EdgeTui
from tui.fleet_source import FleetSource
from tui.historian_source import HistorianSource
from tui.screens.fleet import FleetScreen

INTERVAL_S = 0.5  # box-c's heartbeat interval: silent after 3 of them
WAIT_S = 30.0  # the cores are shared: a generous bound on each wait (not a timing assertion)


def _config_dir(root: Path, batch_rows: int = 100) -> Path:
    d = root / "cfg"
    (d / "sites").mkdir(parents=True)
    (d / "boxes").mkdir()
    (d / "base.toml").write_text('[box]\nsite = "s1"\n')
    (d / "sites" / "s1.toml").write_text("")
    for box in ("box-a", "box-b", "box-c", "box-d"):
        (d / "boxes" / f"{box}.toml").write_text(f"[pipeline]\nbatch_rows = {batch_rows}\n")
    return d


def _heartbeat(url: str, cfg: Path, box: str, interval_s: float = 5.0) -> Heartbeat:
    loaded = load_config(cfg, box)
    settings = JetStreamSettings.model_validate({"servers": [url], "replicas": 1,
                                                 "heartbeat_interval_s": interval_s})
    hb = Heartbeat(settings, box=box, site=None)
    hb.attach_app(app_info(loaded.config, Supervisor(), {}))
    return hb


def _app(dsn: str, fleet: FleetSource | None) -> EdgeTui:
    return EdgeTui(HistorianSource(dsn, timeout_s=2.0, connect_timeout_s=2.0, fleet=fleet), operator="alice",
                   poll_s=0.3)


async def _fleet_screen(pilot: Pilot[None]) -> FleetScreen:
    await pilot.press("6")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, FleetScreen), timeout=WAIT_S)
    screen = pilot.app.screen
    assert isinstance(screen, FleetScreen)
    start = screen.loads
    await wait_until(pilot, lambda: screen.loads > start, timeout=WAIT_S)
    return screen


def _states(screen: FleetScreen) -> dict[str, str]:
    return {b.box: b.state for b in screen.boxes}


def _table_text(screen: FleetScreen) -> dict[str, list[str]]:
    table = screen.query_one("#fleet-table", DataTable)
    return {str(key.value): [str(c) for c in table.get_row(key)] for key in table.rows}


async def test_fleet_screen_lists_boxes_flags_silent_and_drifted_then_back(
        tmp_path: Path, pg_dsn: str, nats_url: str) -> None:  # noqa: F811
    cfg = _config_dir(tmp_path)
    changed = _config_dir(tmp_path / "changed", batch_rows=200)  # box-b was started from another config
    beats = {"box-a": _heartbeat(nats_url, cfg, "box-a"), "box-b": _heartbeat(nats_url, changed, "box-b"),
             "box-c": _heartbeat(nats_url, cfg, "box-c", INTERVAL_S)}
    try:
        for hb in beats.values():
            assert await hb.beat()
        watch = fleet_watch(cfg, servers=[nats_url], expect_all=True)
        app = _app(prepare_historian(pg_dsn), FleetSource(watch))
        async with app.run_test(size=(160, 30)) as pilot:
            screen = await _fleet_screen(pilot)
            await wait_until(pilot, lambda: _states(screen).get("box-c") == "silent", timeout=WAIT_S)
            states = _states(screen)
            assert states["box-a"] == "ok"
            assert states["box-b"] == "drift"
            assert states["box-d"] == "missing"  # in the config folder, never heard from
            rows = _table_text(screen)
            assert set(rows) == {"box-a", "box-b", "box-c", "box-d"}
            assert rows["box-a"][1] == "✓ ok" and rows["box-b"][1] == "! drift"
            assert rows["box-c"][1] == "▲ silent" and rows["box-d"][1] == "▲ missing"
            desired_b = load_config(cfg, "box-b").sha256()
            assert rows["box-b"][5] == load_config(changed, "box-b").sha256()[:12]
            assert rows["box-b"][6] == desired_b[:12] != rows["box-b"][5]
            summary = str(screen.query_one("#fleet-summary", Static).render())
            assert "4 boxes, 2 silent, 1 drifted" in summary

            await pilot.press("p")  # problems only
            assert set(_table_text(screen)) == {"box-b", "box-c", "box-d"}
            await pilot.press("p")
            assert set(_table_text(screen)) == {"box-a", "box-b", "box-c", "box-d"}

            assert await beats["box-c"].beat()  # box-c is back
            await wait_until(pilot, lambda: _states(screen).get("box-c") == "ok", timeout=WAIT_S)
            assert _table_text(screen)["box-c"][1] == "✓ ok"
            assert _states(screen)["box-c"] == "ok" and int(_table_text(screen)["box-c"][3]) == 2
    finally:
        for hb in beats.values():
            if hb.nc is not None:
                await hb.nc.close()


async def test_fleet_screen_says_when_nats_does_not_answer(tmp_path: Path, pg_dsn: str) -> None:
    cfg = _config_dir(tmp_path)
    dead = f"nats://127.0.0.1:{free_port()}"  # nothing listens there
    app = _app(prepare_historian(pg_dsn), FleetSource(fleet_watch(cfg, servers=[dead]), timeout_s=0.5))
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await _fleet_screen(pilot)
        await wait_until(pilot, lambda: screen.error is not None, timeout=WAIT_S)
        assert dead in (screen.error or "")
        text = str(screen.query_one("#fleet-error", Static).render())
        assert "retrying" in text and dead in text
        assert screen.boxes == []
        await wait_until(pilot, lambda: app.connected, timeout=WAIT_S)  # NATS down: the historian is fine
        assert app.last_error is None


async def test_fleet_screen_without_nats_says_how_to_turn_it_on(pg_dsn: str) -> None:
    app = _app(prepare_historian(pg_dsn), None)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await _fleet_screen(pilot)
        await wait_until(pilot, lambda: screen.error is not None, timeout=WAIT_S)
        assert "edge tui --nats" in (screen.error or "")
