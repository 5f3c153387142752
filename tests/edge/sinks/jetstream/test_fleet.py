"""Heartbeat and drift logic (pure), and a heartbeat through a real nats-server into ``edge fleet``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.app.config import load_config
from edge.app.fleet.status import desired_from_dir
from edge.sinks.jetstream.fleet_table import diff, rows, table
from edge.sinks.jetstream.heartbeat import AppInfo, Heartbeat
from edge.sinks.jetstream.settings import JetStreamSettings


def _hb(box: str, sha: str, ts: float, **kw: object) -> dict[str, object]:
    return {"box": box, "site": "s1", "version": "0.1.0", "ts": ts, "seq": 3, "interval_s": 2.0,
            "config_sha256": sha, "components": {"historian": {"healthy": True}, "src": {"healthy": False}},
            "spool": {"historian": {"rows": 5}, "jetstream": {"rows": 7}}, **kw}


def _desired(box: str) -> tuple[str | None, str | None, str | None]:
    return {"a": ("h-a", '{"x": 1}', None), "b": ("h-b", '{"x": 2}', None)}.get(box, (None, None, "unknown"))


def test_silent_drifted_unknown_and_missing_boxes() -> None:
    beats = [_hb("a", "h-a", 100.0), _hb("b", "other", 94.0), _hb("z", "h-z", 99.0)]
    got = {r.box: r for r in rows(beats, _desired, now=101.0, silent_after=3, expected=["a", "b", "c"])}
    assert got["a"].state == "ok" and got["a"].age_s == 1.0
    assert got["b"].state == "silent,drift"  # 7 s > 3 x 2 s, and its hash differs
    assert got["z"].state == "unknown"
    assert got["c"].state == "missing"
    assert got["a"].spool_rows == 12 and got["a"].unhealthy == ["src"]
    text = table(list(got.values()))
    assert text.splitlines()[0].startswith("BOX") and "silent,drift" in text


def test_a_box_back_after_silence_is_ok_again() -> None:
    assert rows([_hb("a", "h-a", 100.0)], _desired, now=107.0)[0].state == "silent"
    assert rows([_hb("a", "h-a", 106.5)], _desired, now=107.0)[0].state == "ok"


def test_diff_shows_the_changed_key() -> None:
    out = diff("a", json.dumps({"pipeline": {"batch_rows": 10}}),
               json.dumps({"pipeline": {"batch_rows": 20}}))
    assert '-    "batch_rows": 10' in out and '+    "batch_rows": 20' in out
    assert "no config body" in diff("a", "{}", None)


def _config_dir(tmp_path: Path, batch_rows: int = 100) -> Path:
    d = tmp_path / "cfg"
    (d / "sites").mkdir(parents=True, exist_ok=True)
    (d / "boxes").mkdir(exist_ok=True)
    (d / "base.toml").write_text("[box]\nsite = \"s1\"\n")
    (d / "sites" / "s1.toml").write_text("")
    (d / "boxes" / "box-1.toml").write_text(f"[pipeline]\nbatch_rows = {batch_rows}\n")
    return d


def test_desired_state_is_load_config_sha256(tmp_path: Path) -> None:
    d = _config_dir(tmp_path)
    sha, body, problem = desired_from_dir(d)("box-1")
    assert problem is None and sha == load_config(d, "box-1").sha256()
    assert body is not None and json.loads(body)["pipeline"]["batch_rows"] == 100
    assert desired_from_dir(d)("nope")[2] == "unknown"


async def test_heartbeat_through_nats_reads_back_ok_then_drifted(tmp_path: Path, nats_url: str) -> None:
    from edge.app.fleet.info import app_info
    from edge.core.supervisor import Supervisor
    from edge.sinks.jetstream.fleet_read import heartbeats

    d = _config_dir(tmp_path)
    loaded = load_config(d, "box-1")
    info = app_info(loaded.config, Supervisor(), {})
    assert info.config_sha256 == loaded.sha256() and info.site == "s1"
    settings = JetStreamSettings.model_validate({"servers": [nats_url], "replicas": 1})
    hb = Heartbeat(settings, box="box-1", site=None)
    hb.attach_app(info)
    assert await hb.beat() and await hb.beat()
    assert hb.nc is not None
    await hb.nc.close()
    beats = await heartbeats([nats_url], "s1")
    assert len(beats) == 1 and beats[0]["seq"] == 2  # the last one only
    import time

    assert rows(beats, desired_from_dir(d), now=time.time())[0].state == "ok"
    d2 = _config_dir(tmp_path / "changed", batch_rows=200)  # the desired state moves on
    row = rows(beats, desired_from_dir(d2), now=time.time())[0]
    assert row.state == "drift"
    _, body, _ = desired_from_dir(d2)("box-1")
    assert '"batch_rows": 100' in diff("box-1", body, beats[0]["config_body"])


def test_app_info_lists_supervisor_health() -> None:
    from edge.app.config import AppConfig
    from edge.app.fleet.info import app_info
    from edge.core.component import Role
    from edge.core.supervisor import Supervisor

    class C:
        name = "x"
        role: Role = "sink"

        async def run(self) -> None: ...

        async def stop(self) -> None: ...

    sup = Supervisor()
    sup.add(C())
    info: AppInfo = app_info(AppConfig.model_validate({}), sup, {})
    assert info.components() == {"x": {"healthy": False, "restarts": 0, "last_error": None}}


async def test_reading_from_a_cluster_that_does_not_answer_gives_up_and_says_so() -> None:
    from edge.sinks.jetstream.fleet_read import heartbeats
    from tests.edge.sinks.jetstream.conftest import free_port

    dead = f"nats://127.0.0.1:{free_port()}"
    with pytest.raises(ConnectionError, match="no NATS server answered"):
        await heartbeats([dead], "s1", timeout_s=0.5)
