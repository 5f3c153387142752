"""MES intake on the real broker and historian: events applied and stored, a malformed payload dead-lettered
while intake goes on, a late event relabels stored samples, and a restarted intake restores the context."""

from __future__ import annotations

import asyncio
import contextlib

import paho.mqtt.client as paho
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from contextualize.mes_events import dt_to_us
from contextualize.mes_intake import MesIntake
from contextualize.settings import MesSettings
from edge.core.settings import BrokerSettings
from tests.conftest import MqttTarget
from tests.fixtures.mes import EQ1, at, insert_samples, migrate, payload


def _publish(target: MqttTarget, topic: str, payloads: list[bytes]) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    client.connect(target.host, target.port)
    client.loop_start()
    try:
        for p in payloads:
            client.publish(topic, p, qos=1).wait_for_publish(5)
    finally:
        client.loop_stop()
        client.disconnect()


async def _until(cond: object, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def _intake(target: MqttTarget, dsn: str) -> MesIntake:
    settings = MesSettings(topic=target.topic("mes", "#"), relabel_settle_s=0)
    broker = BrokerSettings.model_validate({"url": target.url, "protocol": "3.1.1"})
    return MesIntake(settings, broker, dsn)


async def _run(intake: MesIntake) -> asyncio.Task[None]:
    task = asyncio.create_task(intake.run())
    await asyncio.wait_for(intake.subscribed.wait(), 10)
    return task


async def _stop(intake: MesIntake, task: asyncio.Task[None]) -> None:
    await intake.stop()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)


async def test_intake_applies_dead_letters_relabels_and_restores(mqtt: MqttTarget, pg_dsn: str) -> None:
    migrate(pg_dsn)
    insert_samples(pg_dsn, [(EQ1, m) for m in range(0, 60)])
    topic = mqtt.topic("mes", "line2")
    intake = _intake(mqtt, pg_dsn)
    task = await _run(intake)
    _publish(
        mqtt,
        topic,
        [
            payload("work_order_started", 10, work_order="WO-1", product="P1", batch="B1"),
            b"{not json",
            payload("work_order_started", 20, work_order=None),  # missing work_order
            payload("shift_change", 0, scope="acme/plant1"),  # missing shift
            payload("teleport", 0, work_order="x"),
            payload("work_order_started", 40, work_order="WO-2", product="P2"),
        ],
    )
    await _until(lambda: intake.stats.applied + intake.stats.dead_lettered >= 6)
    assert intake.stats.dead_lettered == 4
    assert intake.stats.applied == 2
    with psycopg.connect(pg_dsn) as conn:
        reasons = sorted(r[0] for r in conn.execute("SELECT reason FROM dead_letters").fetchall())
        mes_events = conn.execute("SELECT count(*) FROM events WHERE kind = 'mes_context'").fetchone()
        wo = [r[0] for r in conn.execute("SELECT work_order FROM samples ORDER BY ts").fetchall()]
    assert reasons == ["bad_json", "missing_field", "missing_field", "unknown_type"]
    assert mes_events is not None and mes_events[0] == 2
    assert wo == [None] * 10 + ["WO-1"] * 30 + ["WO-2"] * 20
    await _stop(intake, task)

    # restart: a new intake (new store) restores the open intervals from the historian
    again = _intake(mqtt, pg_dsn)
    task = await _run(again)
    assert again.loaded.is_set()
    ctx = again.store.context_at(EQ1, dt_to_us(at(50)))
    assert ctx["work_order"] == "WO-2" and ctx["product"] == "P2" and ctx["batch"] == "B1"
    # a late booking: WO-1 was in fact completed at 30 min; relabel exactly [30, 40)
    _publish(mqtt, topic, [payload("work_order_completed", 30, work_order="WO-1")])
    await _until(lambda: again.stats.applied >= 1)
    with psycopg.connect(pg_dsn) as conn:
        wo = [r[0] for r in conn.execute("SELECT work_order FROM samples ORDER BY ts").fetchall()]
        audit = conn.execute("SELECT count(*) FROM events WHERE kind = 'audit'").fetchone()
    assert wo == [None] * 10 + ["WO-1"] * 20 + [None] * 10 + ["WO-2"] * 20
    assert audit is not None and audit[0] >= 1
    await _stop(again, task)


async def test_settle_pass_relabels_rows_committed_after_the_event(mqtt: MqttTarget, pg_dsn: str) -> None:
    """A batch contextualized before the event arrived but committed after it is fixed by the second pass."""
    migrate(pg_dsn)
    settings = MesSettings(topic=mqtt.topic("mes", "#"), relabel_settle_s=0.3)
    broker = BrokerSettings.model_validate({"url": mqtt.url, "protocol": "3.1.1"})
    intake = MesIntake(settings, broker, pg_dsn)
    task = await _run(intake)
    _publish(mqtt, mqtt.topic("mes", "l2"), [payload("work_order_started", 10, work_order="WO-7")])
    await _until(lambda: intake.stats.applied >= 1)
    insert_samples(pg_dsn, [(EQ1, 12)])  # stored just after the event, without its work order
    await _until(lambda: intake.stats.samples_relabelled >= 1)
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute("SELECT work_order FROM samples").fetchone()
    assert row == ("WO-7",)
    await _stop(intake, task)


async def test_events_published_while_intake_is_down_arrive_after_restart(
    mqtt: MqttTarget, pg_dsn: str
) -> None:
    """With a stable client id the broker keeps a persistent session: QoS 1 events sent while the intake was
    away are delivered when it comes back (MQTT 5)."""
    import uuid

    migrate(pg_dsn)
    settings = MesSettings(topic=mqtt.topic("mes", "#"), relabel_settle_s=0)
    broker = BrokerSettings.model_validate({"url": mqtt.url, "protocol": "5"})
    cid = f"fe-test-mes-{uuid.uuid4().hex[:8]}"
    intake = MesIntake(settings, broker, pg_dsn, client_id=cid)
    task = await _run(intake)
    await _stop(intake, task)
    _publish(mqtt, mqtt.topic("mes", "l2"), [payload("work_order_started", 10, work_order="WO-9")])
    again = MesIntake(settings, broker, pg_dsn, client_id=cid)
    task = await _run(again)
    await _until(lambda: again.stats.applied >= 1)
    assert again.store.context_at(EQ1, dt_to_us(at(11)))["work_order"] == "WO-9"
    await _stop(again, task)
