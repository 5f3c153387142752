"""docs/tutorial.md as a test: its ``sh`` blocks run in order, in one bash, against the plant simulator, the
real PostgreSQL and Mosquitto, in a temp dir; the test fails when any documented command fails.

Time is compressed only through the tutorial's own variables (step 0): a shorter demo, baseline (6 instead
of 10 minutes: still long enough for the default target false-alarm rate) and evaluation stretch. The
simulator has no faster-than-real-time mode, so this takes about 9 minutes. Blocks that start with
``# not run by the test:`` (installation, the interactive TUI) are skipped.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import pytest

from tests.conftest import MqttTarget
from tests.edge.sinks.jetstream.conftest import free_port

pytestmark = [pytest.mark.slow, pytest.mark.wallclock]

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "tutorial.md"
SKIP = "# not run by the test:"
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)


def blocks(text: str) -> list[str]:
    """The ``sh`` blocks of the tutorial in order, without the ones marked as not run."""
    return [b for b in BLOCK.findall(text) if not b.lstrip().startswith(SKIP)]


def script(parts: list[str]) -> str:
    """One bash script: stop at the first failing command, saying which block it was in."""
    out = ["set -euo pipefail"]
    for i, body in enumerate(parts, 1):
        first = body.strip().splitlines()[0].replace("'", "")[:80]
        out.append(f"echo '@@ block {i}: {first}' >&2")
        out.append(body)
    out.append("echo '@@ done' >&2")
    return "\n".join(out) + "\n"


def test_blocks_are_found_and_the_interactive_ones_skipped() -> None:
    text = TUTORIAL.read_text()
    found = blocks(text)
    assert len(found) >= 10
    assert not any("edge tui" in b and "--help" not in b for b in found)  # interactive: documented, not run
    joined = "\n".join(found)
    for command in ("edge demo", "edge simulate", "edge opcua browse", "edge config validate",
                    "edge config render", "edge historian init", "edge run", "edge stats",
                    "edge models train", "edge models evaluate", "edge models validate",
                    "edge models promote"):
        assert command in joined, command


@pytest.mark.timeout(1500)  # the demo, a compressed baseline and evaluation stretch, a second run: ~9 min
def test_the_tutorial_runs_end_to_end(tmp_path: Path, pg_dsn: str, mqtt: MqttTarget) -> None:
    u = urlparse(pg_dsn)
    env = {
        **os.environ,
        "WORK": str(tmp_path / "first-line"),
        "PG": urlunparse(u._replace(path="", query="")).rstrip("/"),
        "DB": u.path.lstrip("/"),
        "MQTT_URL": mqtt.url,
        "TOPIC_PREFIX": mqtt.prefix + "/",
        "OPCUA_PORT": str(free_port()),
        "METRICS_PORT": str(free_port()),
        "DEMO_S": "10",
        "BASELINE_S": "360",
        "EVAL_S": "100",
        "TARGET_FAR": "0.02",
        "FE_DEMO_STATE": str(tmp_path / "demo.json"),
        "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}",
    }
    path = tmp_path / "tutorial.sh"
    path.write_text(script(blocks(TUTORIAL.read_text())))
    proc = subprocess.Popen(["bash", str(path)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=1200)
    finally:
        with contextlib.suppress(ProcessLookupError):  # the simulator or a run left in the background
            os.killpg(proc.pid, signal.SIGTERM)
    steps = [line for line in out.splitlines() if line.startswith("@@ ")]
    tail = "\n".join(out.splitlines()[-60:])
    assert proc.returncode == 0, f"the tutorial failed in {steps[-1] if steps else '?'}:\n{tail}"
    assert steps[-1] == "@@ done"
    work = tmp_path / "first-line"
    assert (work / "press2-eval.svg").read_text().startswith("<svg")
