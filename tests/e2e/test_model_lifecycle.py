"""The model lifecycle loop on the real historian and broker, on simulated history with a drift injected
half-way: drift events fire, a retrain is triggered and trained in a child process, the challenger runs in
shadow (stored, never published), the gate decides by the numbers, the managed mode promotes only the better
model, a rollback restores the champion, every step is audited, and the lifecycle messages arrive in order."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as paho
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from edge.app.plugins import make_runtime, model_kind
from edge.core.envelope import Envelope
from edge.core.settings import BrokerSettings
from edge.sinks.historian.writer import HistorianWriter
from inference.history import read_samples
from inference.lifecycle import LifecycleNotifier
from inference.lifecycle_manager import ModelLifecycle
from inference.packages import Registry
from inference.settings import InferenceSettings
from inference.stage import FLUSH_US, InferenceStage
from tests.conftest import MqttTarget
from tests.fixtures.delivery_helpers import wait_until
from tests.inference.lifecycle_history import Fault, at, label, new_historian, train_package, write_history

ASSET = "acme/plant1/line1/press1"
H = 3600.0
DRIFT_AT = 3 * H


class Listener:
    """Every message under a prefix, in arrival order."""

    def __init__(self, mqtt: MqttTarget) -> None:
        self.got: list[tuple[str, dict[str, Any]]] = []
        self.ready = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"ops-{uuid.uuid4().hex[:6]}")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{mqtt.prefix}/#", qos=1)
        self.client.on_subscribe = lambda c, u, mid, rc, p: self.ready.set()
        self.client.on_message = lambda c, u, m: self.got.append((m.topic, orjson.loads(m.payload)))
        self.client.connect(mqtt.host, mqtt.port)
        self.client.loop_start()
        assert self.ready.wait(10)

    def lifecycle(self) -> list[tuple[str, dict[str, Any]]]:
        return [(t, m) for t, m in list(self.got) if m.get("schema") == 1 and "event" in m]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def run_stage(dsn: str, settings: InferenceSettings, since_s: float, until_s: float,
              manager: ModelLifecycle) -> list[Envelope]:
    """[since, until) of the history through a fresh inference stage (it loads the registry's aliases as
    the pipeline does at start), its output stored in the historian, its drift events to the manager."""
    import asyncio

    out: list[Envelope] = []
    stage = InferenceStage(settings, asyncio.Queue(), out.append, make_runtime=make_runtime)
    stage._accept(Envelope("samples", read_samples(dsn, [ASSET], at(since_s), at(until_s)), "replay"))
    asyncio.run(stage.tick(FLUSH_US))
    writer = HistorianWriter(dsn=dsn)
    for env in out:
        writer.write_sync(env)
        if env.kind == "events":
            manager.observe(env.batch)  # as the pipeline hands them over
    writer.close_sync()
    return out


def roles_stored(dsn: str) -> dict[tuple[str, str], tuple[int, int]]:
    """(role, version) -> (insights stored, of them in the MQTT outbox)."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT i.role, i.model_version, count(*), count(o.seq) FROM insights i "
            "LEFT JOIN insights_outbox o ON o.insight_id = i.insight_id AND o.ts = i.ts "
            "WHERE i.model = 'press' GROUP BY 1, 2").fetchall()
    return {(r, v): (n, q) for r, v, n, q in rows}


def test_the_whole_loop(pg_dsn: str, mqtt: MqttTarget, tmp_path: Path) -> None:
    new_historian(pg_dsn)
    write_history(pg_dsn, ASSET, 6 * H, seed=11, drift_from_s=DRIFT_AT,
                  faults=[Fault(4.5 * H, 4.5 * H + 120, offset=5.0)])
    label(pg_dsn, ASSET, at(4.5 * H), at(4.5 * H + 120), "true_fault")
    settings = InferenceSettings.model_validate({
        "models_dir": str(tmp_path / "models"), "providers": ["CPUExecutionProvider"], "clock": "event",
        "lifecycle": {"enabled": True, "mode": "managed", "lookback_s": 1.5 * H, "shadow_s": H,
                      "min_interval_s": H, "false_alarm_labels": 0, "nice": 5, "memory_mb": 4096},
    })
    reg = Registry(settings.models_dir)
    v1 = train_package(reg, pg_dsn, ASSET, at(0), at(2 * H), margin=1.2, settings=settings)
    reg.validate("press", v1.version, max_false_alarm_rate=0.05)
    reg.promote("press", v1.version, reason="commissioning", who="anna")

    broker = BrokerSettings.model_validate({"url": mqtt.url, "topic_prefix": mqtt.prefix})
    ops = Listener(mqtt)
    notifier = LifecycleNotifier(broker)
    manager = ModelLifecycle(settings, pg_dsn, model_kind, make_runtime, notifier)
    try:
        # 1. the champion watches the drift come: a drift episode, in the historian and on MQTT
        run_stage(pg_dsn, settings, 2 * H, 4 * H, manager)
        with psycopg.connect(pg_dsn) as conn:
            drift = conn.execute(
                "SELECT asset, detail FROM events WHERE kind = 'drift' ORDER BY ts").fetchall()
        assert drift and drift[0][0] == ASSET and drift[0][1]["drift"] is True
        assert drift[0][1]["features"][0]["feature"].startswith("a__")  # a's level moved, not b's

        # 2. the drift triggers a retrain (child process) on the lookback window; the candidate is challenger
        did = manager.step(at(4 * H))
        assert did == ["press: v2 retrained (drift), in shadow"], did
        assert reg.deployments("press") == [("all", "champion", "1"), ("all", "challenger", "2")]
        retrained = next(e for e in reg.audit_log() if e["action"] == "retrain")
        assert retrained["detail"]["trigger"] == "drift" and retrained["detail"]["windows"] >= 200
        assert retrained["detail"]["child"]["nice"] == 5
        assert manager.step(at(4 * H)) == []  # shadow period not over, and no second retrain

        # 3. shadow: the challenger scores the same windows, stored with its role, never queued for MQTT
        out = run_stage(pg_dsn, settings, 4 * H, 5 * H, manager)
        rows = {b.column("model_version")[0].as_py(): b.num_rows for b in (e.batch for e in out)
                if b.num_rows and "insight_id" in b.schema.names}
        assert rows["1"] == rows["2"] > 600  # the same windows
        stored = roles_stored(pg_dsn)
        assert stored[("challenger", "2")] == (rows["2"], 0)  # stored, none in the outbox
        n_champ, queued_champ = stored[("champion", "1")]
        assert queued_champ == n_champ

        # 4. managed: after the shadow period the better challenger is promoted on its gate
        did = manager.step(at(5 * H))
        assert did == ["press: v2 promoted"], did
        gate = reg.gate_result("press", "2")
        assert gate is not None and gate["passed"] and gate["detected_periods"] == 1
        promoted = reg.audit_log()[-1]
        assert promoted["action"] == "promote" and promoted["who"] == "lifecycle"
        assert promoted["detail"]["basis"]["kind"] == "gate"

        # 5. a worse challenger (the pre-drift model again) is kept out, with a notice saying why
        v3 = reg.add({k: v for k, v in v1.manifest.items() if k != "version"}, v1.onnx, v1.holdout())
        reg.set_alias("press", v3.version, "challenger", reason="pre-drift model for comparison", who="anna")
        manager._mem["models"]["press"]["challenger_since"] = at(5 * H).isoformat()
        run_stage(pg_dsn, settings, 5 * H, 6 * H, manager)
        did = manager.step(at(6 * H))
        assert did and did[0].startswith("press: v3 kept as challenger"), did
        assert reg.current() == {"press": "2"}
        notice = reg.audit_log()[-1]
        assert notice["action"] == "notice" and "stays challenger" in notice["detail"]["reason"]

        # 6. rollback restores the champion before
        reg.rollback("press", reason="operators prefer the commissioning model", who="anna")
        manager.publish()
        assert reg.current() == {"press": "1"}
    finally:
        sent = list(notifier.sent)
        wait_until(lambda: len(ops.lifecycle()) >= len(sent), 10, "every lifecycle message at the listener")
        ops.close()

    # the audit holds every step
    actions = [e["action"] for e in reg.audit_log()]
    for step in ("register", "validate", "promote", "retrain", "alias", "gate", "notice", "rollback"):
        assert step in actions, (step, actions)
    # MQTT: what was sent arrived, in order, on the documented topics
    got = ops.lifecycle()
    assert [(t, m["event"], m["version"]) for t, m in got] == [
        (t, m["event"], m["version"]) for t, m in sent]
    events = [(m["event"], m["version"]) for _, m in got]
    want = [("drift_started", "1"), ("candidate_ready", "2"), ("gate_passed", "2"), ("promoted", "2"),
            ("gate_failed", "3"), ("notice", "3"), ("rolled_back", "1")]
    it = iter(events)
    assert all(w in it for w in want), events  # in this order (drift episodes may start again between)
    topics = {m["event"]: t for t, m in got}
    assert topics["drift_started"] == f"{mqtt.prefix}/{ASSET}/_events/drift"
    assert topics["promoted"] == f"{mqtt.prefix}/_models/press/lifecycle"
