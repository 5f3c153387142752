"""The shipped config's contracts: ``edge run`` reads every secret before it starts anything (exit 2 naming
the reference, never a value), and ``edge config validate`` warns when the spool's outage horizon is longer
than what the broker holds for the appliance (limits read from ``firmware-config/mosquitto/``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware-config"

OPCUA_BOX = """[box]
site = "demo-site"
[[sources.opcua]]
name = "secured"
endpoint = "opc.tcp://127.0.0.1:1/"
username = "edge"
password = { env = "FE_TEST_UNSET_OPCUA_PASSWORD" }
nodes = [{ tag = "line1.press1.vibration", node = "nsu=urn:factory-edge:sim;s=line1.press1.vibration" }]
"""

MQTT_BOX = """[box]
site = "demo-site"
[spool]
max_bytes = %d
[[sources.mqtt]]
name = "plant-json"
topics = ["plant/#"]
session_expiry_s = %d
"""


def config_tree(tmp_path: Path, box: str, with_broker_conf: bool = True) -> Path:
    d = tmp_path / "cfg"
    ignore = shutil.ignore_patterns("boxes", *([] if with_broker_conf else ["mosquitto"]))
    shutil.copytree(FIRMWARE, d, ignore=ignore)
    (d / "boxes").mkdir()
    (d / "boxes" / "b1.toml").write_text(box)
    return d


def edge(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FE_TEST_UNSET")}
    return subprocess.run([sys.executable, "-m", "edge.app.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_edge_run_with_a_missing_secret_exits_2_naming_the_reference(tmp_path: Path) -> None:
    d = config_tree(tmp_path, OPCUA_BOX)
    r = edge("run", "--dir", str(d), "--box", "b1", "--duration", "5")
    assert r.returncode == 2, r.stderr
    assert "sources.opcua[0].password" in r.stderr and "FE_TEST_UNSET_OPCUA_PASSWORD" in r.stderr
    assert "Traceback" not in r.stderr


def test_edge_run_does_not_print_a_secret_it_found(tmp_path: Path) -> None:
    d = config_tree(tmp_path, OPCUA_BOX.replace('{ env = "FE_TEST_UNSET_OPCUA_PASSWORD" }',
                                                f'{{ file = "{tmp_path}/nope" }}'))
    r = edge("run", "--dir", str(d), "--box", "b1", "--duration", "5")
    assert r.returncode == 2 and f"{tmp_path}/nope" in r.stderr


@pytest.mark.parametrize(("with_conf", "max_bytes", "expiry", "warned"), [
    (True, 1 << 30, 3600, []),                       # as shipped: the broker holds the spool's horizon
    (False, 1 << 30, 3600, ["max_queued_messages 1000"]),  # Mosquitto's defaults: 0.2 min
    (True, 8 << 30, 3600, ["holds only", "session_expiry_s"]),  # a spool of 8 GiB outlasts the broker
])
def test_validate_warns_when_the_spool_outlasts_the_broker(tmp_path: Path, with_conf: bool, max_bytes: int,
                                                           expiry: int, warned: list[str]) -> None:
    d = config_tree(tmp_path, MQTT_BOX % (max_bytes, expiry), with_broker_conf=with_conf)
    r = edge("config", "validate", "--dir", str(d), "--box", "b1")
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")
                and ("spool" in line or "session" in line or "broker" in line)]
    if not warned:
        assert warnings == [], warnings
    for word in warned:
        assert any(word in w for w in warnings), (word, warnings)
