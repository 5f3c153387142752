"""``edge tui`` option handling and the demo state file contract (no services needed)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from edge.app.cli import build_parser
from edge.app.commands.tui_cmd import demo_state_path, read_demo_state, resolve


def args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["tui", *argv])


def test_demo_state_path_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("FE_DEMO_STATE", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert demo_state_path() == tmp_path / "factory-edge" / "demo.json"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert demo_state_path().name == "demo.json"
    monkeypatch.setenv("FE_DEMO_STATE", str(tmp_path / "x.json"))
    assert demo_state_path() == tmp_path / "x.json"


def test_resolve_from_demo_state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    state = tmp_path / "demo.json"
    monkeypatch.setenv("FE_DEMO_STATE", str(state))
    with pytest.raises(ValueError, match="edge demo"):
        resolve(args())
    assert resolve(args("--dsn", "postgresql://edge_reader@h/db")).dsn == "postgresql://edge_reader@h/db"
    state.write_text(json.dumps({"dsn": "postgresql://edge_reader@demo/fe", "mqtt_url": "mqtt://127.0.0.1:1",
                                 "metrics": "127.0.0.1:9464", "pid": 1}))
    t = resolve(args())
    assert (t.dsn, t.mqtt_url, t.metrics, t.stats_file) == (
        "postgresql://edge_reader@demo/fe", "mqtt://127.0.0.1:1", "127.0.0.1:9464", None)
    t = resolve(args("--mqtt", "mqtt://other:1883"))
    assert t.mqtt_url == "mqtt://other:1883" and t.dsn == "postgresql://edge_reader@demo/fe"
    t = resolve(args("--dsn", "postgresql://edge_reader@elsewhere/db"))  # another historian: no demo mix-in
    assert (t.mqtt_url, t.metrics) == (None, None)


def test_broken_demo_state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    state = tmp_path / "demo.json"
    monkeypatch.setenv("FE_DEMO_STATE", str(state))
    state.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read"):
        read_demo_state()
    with pytest.raises(ValueError):
        resolve(args())
    assert resolve(args("--dsn", "postgresql://x@h/db")).dsn == "postgresql://x@h/db"
    state.write_text(json.dumps({"mqtt_url": "mqtt://h"}))
    with pytest.raises(ValueError, match="no 'dsn'"):
        read_demo_state()


def test_cli_rejects_bad_numbers() -> None:
    from edge.app.cli import main

    assert main(["tui", "--dsn", "postgresql://x@h/db", "--poll", "0"]) == 2
