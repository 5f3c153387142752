"""The demo's embedded services: the amqtt stand-in broker, and `edge demo` with nothing given."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge.app.embedded.services import start_mqtt_broker

REPO = Path(__file__).resolve().parents[2]


def test_amqtt_stand_in_broker_carries_qos1_messages() -> None:
    broker = start_mqtt_broker(prefer="amqtt")
    try:
        assert broker.protocol == "3.1.1"
        got: list[bytes] = []
        done = threading.Event()

        def on_message(_c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
            got.append(msg.payload)
            if len(got) == 20:
                done.set()

        sub = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        sub.on_message = on_message
        sub.connect("127.0.0.1", broker.port)
        sub.subscribe("fe/#", qos=1)
        sub.loop_start()
        pub = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        import time

        time.sleep(0.5)
        infos = [pub.publish("fe/x", str(i).encode(), qos=1) for i in range(20)]
        for info in infos:
            info.wait_for_publish(5)
        assert done.wait(10), got
        assert got == [str(i).encode() for i in range(20)]
        pub.loop_stop()
        sub.loop_stop()
    finally:
        broker.stop()


def test_demo_with_embedded_postgres_and_the_amqtt_broker(tmp_path: Path) -> None:
    """The quick start on a machine with no PostgreSQL or broker given: both embedded, MQTT 3.1.1."""
    state = tmp_path / "demo.json"
    proc = subprocess.run(
        [sys.executable, "-m", "edge.app.cli", "--log-format", "json", "demo", "--duration", "20",
         "--data-dir", str(tmp_path / "demo"), "--baseline-minutes", "10"],
        cwd=REPO, capture_output=True, text=True, timeout=240,
        env={"FE_DEMO_STATE": str(state), "FE_DEMO_BROKER": "amqtt", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "embedded PostgreSQL" in proc.stdout and "(MQTT 3.1.1)" in proc.stdout
    summary = proc.stdout.split("— summary —", 1)[1]
    assert "tags with samples: 24" in summary
    rows = next(line for line in summary.splitlines() if line.startswith("historian rows: "))
    counts = {k: int(v.replace(",", "")) for k, v in re.findall(r"(\w+) ([\d,]+\d|\d)", rows)}
    assert counts["samples"] > 24 * 100 and counts["insights"] > 0, rows
    assert not state.exists()
