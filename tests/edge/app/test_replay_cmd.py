"""``edge replay`` against the real broker: every row arrives, with its own timestamp."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import MqttTarget


def _csv(tmp_path: Path) -> Path:
    p = tmp_path / "run.csv"
    rows = ["datetime;a;b"] + [f"2024-01-01 00:00:{i:02d};{i};{i * 0.5}" for i in range(20)]
    p.write_text("\n".join(rows) + "\n")
    return p


def _subscribe(mqtt: MqttTarget, topic: str) -> tuple[list[tuple[str, dict]], threading.Event, object]:
    from edge.core.mqtt import connect, make_client
    from edge.core.settings import BrokerSettings

    got: list[tuple[str, dict]] = []
    ready = threading.Event()
    client, address, props = make_client(BrokerSettings.model_validate({}), url=mqtt.url)
    client.on_connect = lambda c, u, f, rc, p=None: c.subscribe(topic, qos=1)
    client.on_subscribe = lambda *a: ready.set()
    client.on_message = lambda c, u, m: got.append((m.topic, json.loads(m.payload)))
    connect(client, address, props)
    client.loop_start()
    assert ready.wait(10), "no subscription"
    return got, ready, client


@pytest.mark.parametrize("batched", [False, True])
def test_replay_every_row_arrives_with_its_timestamp(mqtt: MqttTarget, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch, batched: bool) -> None:
    path = _csv(tmp_path)
    got, _, client = _subscribe(mqtt, mqtt.topic("#"))
    try:
        from edge.app.cli import main

        argv = ["replay", str(path), "--broker", mqtt.url, "--as-fast-as-possible",
                "--topic-template", mqtt.topic("{asset}", "{signal}"), "--asset", "pump1"]
        rc = main([*argv, "--batched"] if batched else argv)
        assert rc == 0
        want = 20 if batched else 40
        deadline = time.monotonic() + 10
        while len(got) < want and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        client.loop_stop()
        client.disconnect()
    samples = []
    for topic, body in got:
        if batched:
            assert topic == mqtt.topic("pump1")
            samples.extend((s["tag"], s["ts"], s["value"]) for s in body["samples"])
        else:
            samples.append((topic.rsplit("/", 1)[1], body["ts"], body["value"]))
    expect = {("a", f"2024-01-01T00:00:{i:02d}.000000Z", float(i)) for i in range(20)}
    expect |= {("b", f"2024-01-01T00:00:{i:02d}.000000Z", i * 0.5) for i in range(20)}
    assert {(t, ts, float(v)) for t, ts, v in samples} == expect
    assert len(samples) == 40


def test_replay_paces_by_speedup(mqtt: MqttTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = _csv(tmp_path)  # 19 s of data at 20x: about 0.95 s
    from edge.app.cli import main

    t0 = time.monotonic()
    rc = main(["replay", str(path), "--broker", mqtt.url, "--speedup", "20",
               "--topic-template", mqtt.topic("{signal}")])
    took = time.monotonic() - t0
    assert rc == 0
    assert 0.9 <= took < 5
    assert "40 acknowledged" in capsys.readouterr().out


def test_replay_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    from edge.app.cli import main

    assert main(["replay", str(tmp_path / "none.csv")]) == 2
    assert "no such file" in capsys.readouterr().err
