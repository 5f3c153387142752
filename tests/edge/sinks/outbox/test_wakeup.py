"""The outbox publisher is woken by the commit of insights (LISTEN/NOTIFY), not by its poll: with a poll of an
hour, insights the historian writer commits while the publisher waits still reach MES, in order."""

from __future__ import annotations

import asyncio

import psycopg

from edge.core.datamodel import INSIGHTS, batch_from_rows
from edge.core.envelope import Envelope
from edge.core.metrics import Metrics
from edge.core.settings import BrokerSettings
from edge.sinks.historian.migrate import migrate
from edge.sinks.historian.settings import HistorianSettings
from edge.sinks.historian.writer import HistorianWriter
from edge.sinks.outbox.publisher import OutboxPublisher
from tests.conftest import MqttTarget
from tests.edge.sinks.outbox.test_publisher import MesSubscriber, insight_rows
from tests.fixtures.delivery_helpers import async_wait_until

HOUR = 3600.0


async def test_committed_insights_wake_the_publisher(pg_dsn: str, mqtt: MqttTarget) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        migrate(conn)
    writer = HistorianWriter(HistorianSettings.model_validate({"dsn": pg_dsn}), dsn=pg_dsn)
    mes = MesSubscriber(mqtt.port, f"{mqtt.prefix}/#")
    metrics = Metrics()
    broker = BrokerSettings.model_validate({"url": mqtt.url, "topic_prefix": mqtt.prefix})
    pub = OutboxPublisher(pg_dsn, broker, metrics=metrics, poll_interval_s=HOUR)
    task = asyncio.create_task(pub.run())
    try:
        # before any notification: the session's first read publishes what is there already
        await writer.write(Envelope("insights", batch_from_rows(insight_rows(["eq1"], 0), INSIGHTS), "i0"))
        await async_wait_until(lambda: pub.listening.is_set() and mes.ids() == ["eq1-00000"], 30,
                               "the first insight and the LISTEN connection")
        await async_wait_until(lambda: metrics.get("outbox-publisher", "published") >= 1, 30, "its mark")
        # now the loop waits for its hour; each commit below must wake it
        for i in (1, 2, 3):
            batch = batch_from_rows(insight_rows(["eq1", "eq2"], i), INSIGHTS)
            await writer.write(Envelope("insights", batch, f"i{i}"))
        await async_wait_until(lambda: len(mes.ids()) >= 7, 30, "the insights committed after the first read")
        assert pub.notifications >= 1
    finally:
        await pub.stop()
        await asyncio.wait_for(task, 30)
        await writer.close()
        mes.close()
    assert mes.ids() == ["eq1-00000"] + [f"{eq}-{i:05d}" for i in (1, 2, 3) for eq in ("eq1", "eq2")]


async def test_without_listen_the_poll_still_publishes(pg_dsn: str, mqtt: MqttTarget) -> None:
    """The fallback: no LISTEN connection, rows found by the poll (here a short one)."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        migrate(conn)
    writer = HistorianWriter(HistorianSettings.model_validate({"dsn": pg_dsn}), dsn=pg_dsn)
    mes = MesSubscriber(mqtt.port, f"{mqtt.prefix}/#")
    broker = BrokerSettings.model_validate({"url": mqtt.url, "topic_prefix": mqtt.prefix})
    pub = OutboxPublisher(pg_dsn, broker, metrics=Metrics(), poll_interval_s=0.1, listen=False)
    task = asyncio.create_task(pub.run())
    try:
        await async_wait_until(lambda: pub.connected, 30, "the publisher's broker session")
        await writer.write(Envelope("insights", batch_from_rows(insight_rows(["eq1"], 5), INSIGHTS), "i5"))
        await async_wait_until(lambda: mes.ids() == ["eq1-00005"], 30, "the polled insight")
        assert pub.notifications == 0 and not pub.listening.is_set()
    finally:
        await pub.stop()
        await asyncio.wait_for(task, 30)
        await writer.close()
        mes.close()
