"""Shadow runs on the real historian and broker: the challenger scores the same windows as the champion in
the inference stage, its insights are stored with their role, none reaches the outbox or MQTT, and
``edge models compare`` reads both back."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import psycopg
import pytest

from edge.app.cli import main as edge_main
from edge.app.plugins import make_runtime
from edge.core.envelope import Envelope
from edge.core.metrics import Metrics
from edge.core.settings import BrokerSettings
from edge.sinks.historian.writer import HistorianWriter
from edge.sinks.outbox.publisher import OutboxPublisher
from inference.history import read_samples
from inference.packages import Registry
from inference.stage import FLUSH_US, InferenceStage
from tests.conftest import MqttTarget
from tests.edge.sinks.outbox.test_publisher import MesSubscriber
from tests.fixtures.delivery_helpers import async_wait_until
from tests.inference.lifecycle_history import (
    Fault,
    at,
    label,
    new_historian,
    settings_for,
    train_package,
    write_history,
)

ASSET = "acme/plant1/line1/press1"
H = 3600.0


async def run_stage_over(dsn: str, reg: Registry, since_s: float, until_s: float) -> list[Envelope]:
    """The history of [since, until) through the inference stage (event clock), its output stored."""
    settings = settings_for(reg.root).model_copy(update={"clock": "event"})
    out: list[Envelope] = []
    stage = InferenceStage(settings, asyncio.Queue(), out.append, make_runtime=make_runtime)
    stage._accept(Envelope("samples", read_samples(dsn, [ASSET], at(since_s), at(until_s)), "replay"))
    await stage.tick(FLUSH_US)
    writer = HistorianWriter(dsn=dsn)
    for env in out:
        writer.write_sync(env)
    writer.close_sync()
    return out


async def test_challenger_in_shadow_is_stored_never_published(
    pg_dsn: str, mqtt: MqttTarget, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new_historian(pg_dsn)
    write_history(pg_dsn, ASSET, 3 * H, seed=3, night_noise=1.6,
                  faults=[Fault(2.5 * H, 2.5 * H + 120, offset=5.0)])
    reg = Registry(tmp_path / "models")
    champ = train_package(reg, pg_dsn, ASSET, at(0), at(2 * H), margin=1.5)
    chall = train_package(reg, pg_dsn, ASSET, at(0), at(2 * H), shift="day", margin=1.5)
    reg.validate("press", champ.version, max_false_alarm_rate=1.0)
    reg.promote("press", champ.version, reason="first")
    reg.set_alias("press", chall.version, "challenger", reason="day-only candidate")

    out = await run_stage_over(pg_dsn, reg, 2 * H, 3 * H)
    insight_envs = [e for e in out if e.kind == "insights"]
    assert len(insight_envs) == 2 and insight_envs[0].batch_id != insight_envs[1].batch_id
    label(pg_dsn, ASSET, at(2.5 * H), at(2.5 * H + 120), "true_fault")

    with psycopg.connect(pg_dsn) as conn:
        by_role = dict(conn.execute(
            "SELECT role, count(*) FROM insights WHERE model = 'press' GROUP BY role").fetchall())
        versions = dict(conn.execute(
            "SELECT role, min(model_version) FROM insights WHERE model = 'press' GROUP BY role").fetchall())
        queued = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE payload->>'role' <> 'champion') FROM insights_outbox "
            "WHERE payload->>'model' = 'press'").fetchone()
    assert by_role["champion"] == by_role["challenger"] > 600  # the same windows, both stored
    assert versions == {"champion": champ.version, "challenger": chall.version}
    assert queued == (by_role["champion"], 0)

    mes = MesSubscriber(mqtt.port, f"{mqtt.prefix}/#")
    metrics = Metrics()
    broker = BrokerSettings.model_validate({"url": mqtt.url, "topic_prefix": mqtt.prefix})
    pub = OutboxPublisher(pg_dsn, broker, metrics=metrics)
    task = asyncio.create_task(pub.run())
    try:
        want = by_role["champion"] + 1  # and the labelled insight
        await async_wait_until(lambda: metrics.get("outbox-publisher", "published") >= want, 60,
                               "every champion insight published")
        await async_wait_until(lambda: len(set(mes.ids())) >= want, 30, "every champion insight received")
    finally:
        await pub.stop()
        await asyncio.wait_for(task, 10)
        mes.close()
    with psycopg.connect(pg_dsn) as conn:
        ids = {role: {r[0] for r in conn.execute(
            "SELECT insight_id FROM insights WHERE model = 'press' AND role = %s", (role,))}
            for role in ("champion", "challenger")}
    got = set(mes.ids())
    assert ids["champion"] <= got and not ids["challenger"] & got

    since, until = at(2 * H).isoformat(), at(3 * H + 60).isoformat()
    md = ["--models-dir", str(reg.root), "--dsn", pg_dsn, "--since", since, "--until", until]
    capsys.readouterr()
    assert edge_main(["models", "compare", "press", "--json", *md]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["paired_windows"] == by_role["champion"]
    assert res["champion_version"] == champ.version and res["challenger_version"] == chall.version
    # the day-only challenger alarms on night shift where the champion does not: they disagree there
    night, day = res["slices"]["shift"]["night"], res["slices"]["shift"]["day"]
    assert night["challenger"]["alarm_rate"] > night["champion"]["alarm_rate"]
    assert night["agreement"] < day["agreement"]
    assert res["true_fault_periods"] == 1 and res["champion"]["recall"] > 0
    assert res["detection_delay_s"]["champion"][0] is not None
    assert set(res["slices"]["asset"]) == {ASSET}
    # the one labelled fault counts in the slices it began in, and nowhere else
    assert res["slices"]["asset"][ASSET]["detection_delay_s"] == res["detection_delay_s"]
    by_shift = [b["detection_delay_s"]["champion"] for b in res["slices"]["shift"].values()]
    assert sorted(len(d) for d in by_shift) == [0] * (len(by_shift) - 1) + [1]


def test_compare_without_a_challenger_says_what_to_do(pg_dsn: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    new_historian(pg_dsn)
    assert edge_main(["models", "compare", "press", "--dsn", pg_dsn, "--since", at(0).isoformat(),
                      "--until", at(60).isoformat(), "--models-dir", str(tmp_path)]) == 1
    assert "edge models alias press VERSION challenger" in capsys.readouterr().err
