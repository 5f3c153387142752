"""``edge tui`` in a real terminal (tmux): joins the "demo" through the demo state file, shows the plant,
takes keys, and writes an acknowledgement into the historian. The screen is read back with capture-pane.

Needs tmux (apt-get install -y tmux).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import MqttTarget
from tests.fixtures.tui_support import feedback_rows, fill_historian, prepare_historian
from tests.tui.workbench_support import add_workbench_rows

# .ci/run installs tmux; without it this test fails rather than skipping silently.
EDGE = str(Path(sys.executable).with_name("edge"))


class Tmux:
    def __init__(self, tmp: Path) -> None:
        self.socket = f"fe-tui-{uuid.uuid4().hex[:8]}"
        self.session = "tui"
        self.tmp = tmp

    def run(self, *args: str) -> str:
        out = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10)
        return out.stdout

    def start(self, command: str, env: dict[str, str], size: tuple[int, int] = (100, 30)) -> None:
        script = self.tmp / "run.sh"
        exports = "".join(f"export {k}={json.dumps(v)}\n" for k, v in env.items())
        # Textual draws on stderr: leave it on the terminal
        script.write_text(f"#!/bin/sh\n{exports}{command}\necho EXITED $?\nsleep 30\n")
        script.chmod(0o755)
        self.run("new-session", "-d", "-s", self.session, "-x", str(size[0]), "-y", str(size[1]), str(script))

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.session)

    def keys(self, *keys: str) -> None:
        for k in keys:
            self.run("send-keys", "-t", self.session, k)
            time.sleep(0.15)

    def type(self, text: str) -> None:
        """``text`` typed as it is (tmux ``send-keys -l``)."""
        self.run("send-keys", "-t", self.session, "-l", text)
        time.sleep(0.3)

    def wait_for(self, cond: Callable[[str], bool], timeout: float = 45.0) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.screen()
            if cond(text):
                return text
            time.sleep(0.2)
        raise AssertionError(f"screen never matched; last screen:\n{text}")

    def kill(self) -> None:
        self.run("kill-server")


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    t = Tmux(tmp_path)
    try:
        yield t
    finally:
        t.kill()


def test_edge_tui_in_tmux_joins_the_demo(pg_dsn: str, mqtt: MqttTarget, tmux: Tmux, tmp_path: Path) -> None:
    reader = prepare_historian(pg_dsn)
    fill_historian(pg_dsn, now=datetime.now(UTC))
    state = tmp_path / "demo.json"
    state.write_text(json.dumps({"dsn": reader, "mqtt_url": mqtt.url}))
    env = {"FE_DEMO_STATE": str(state), "TERM": "xterm-256color", "PATH": os.environ.get("PATH", "")}
    tmux.start(f"{EDGE} tui --user tmuxtester --poll 1", env)

    screen = tmux.wait_for(lambda s: "historian connected" in s and "press2" in s)
    assert "broker up" in screen
    assert "line2" in screen and "! warn" in screen
    tmux.keys("/")
    tmux.wait_for(lambda s: "find an asset" in s)
    tmux.keys("l", "i", "n", "e", "2", "/", "p", "r", "e", "s", "s", "1")
    tmux.wait_for(lambda s: "line2/press1" in s)
    tmux.keys("Enter")
    tmux.wait_for(lambda s: "find an asset" not in s and "enter: open the equipment" in s)
    tmux.keys("Enter")
    tmux.wait_for(lambda s: "MES context now" in s and "WO-2002" in s and "line2.press1.vibration" in s)

    tmux.keys("Escape")
    tmux.wait_for(lambda s: "MES context now" not in s)
    tmux.keys("2")
    tmux.wait_for(lambda s: "filter" in s and "iforest 1.2.0" in s)
    tmux.keys("a")
    tmux.wait_for(lambda s: "ack saved" in s)
    rows = feedback_rows(pg_dsn)
    assert [(r[1], r[2]) for r in rows] == [("tmuxtester", "ack")]

    tmux.keys("q")
    tmux.wait_for(lambda s: "EXITED 0" in s)


def test_edge_tui_without_demo_or_dsn_is_a_usage_error(tmp_path: Path) -> None:
    env = dict(os.environ, FE_DEMO_STATE=str(tmp_path / "absent.json"))
    out = subprocess.run([EDGE, "tui"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 2
    assert "edge demo" in out.stderr


def test_edge_tui_in_tmux_explains_an_alarm_labels_it_and_reports(pg_dsn: str, tmux: Tmux,
                                                                   tmp_path: Path) -> None:
    reader = prepare_historian(pg_dsn)
    now = datetime.now(UTC)
    fill_historian(pg_dsn, now=now)
    newest, _ = add_workbench_rows(pg_dsn, now=now)
    env = {"TERM": "xterm-256color", "PATH": os.environ.get("PATH", ""),
           "FE_DEMO_STATE": str(tmp_path / "absent.json")}
    tmux.start(f"{EDGE} tui --dsn {reader} --user tmuxtester --poll 1", env, size=(120, 50))
    tmux.wait_for(lambda s: "historian connected" in s and "press2" in s)
    tmux.keys("2")
    tmux.wait_for(lambda s: "iforest 1.2.0" in s)
    tmux.keys("s", "s", "s")  # alarms only
    tmux.wait_for(lambda s: "severity alarm+" in s)
    tmux.keys("/")
    tmux.type("line2/press2")
    tmux.keys("Enter")
    tmux.wait_for(lambda s: "asset line2/press2" in s)
    tmux.keys("Enter")  # the newest alarm of the troubled press: why?
    screen = tmux.wait_for(lambda s: "Why: the leading features" in s and "follows a product change" in s)
    assert "baseline 41.5 ± 1.5" in screen and "P-HINGE-B → P-HINGE-C" in screen
    tmux.keys("f")
    tmux.wait_for(lambda s: "comment" in s.lower())
    tmux.type("after the changeover")
    tmux.keys("Enter")
    tmux.wait_for(lambda s: "false_alarm saved" in s)
    rows = feedback_rows(pg_dsn)
    assert (newest, "tmuxtester", "false_alarm", "after the changeover") in [r[:4] for r in rows]
    tmux.keys(":")
    tmux.wait_for(lambda s: ":report [LINE]" in s)
    tmux.type("report line2")
    tmux.keys("Enter")
    tmux.wait_for(lambda s: "Shift report: acme/plant1/area1/line2" in s and "false-alarm rate" in s)
    tmux.keys("q")
    tmux.wait_for(lambda s: "EXITED 0" in s)
