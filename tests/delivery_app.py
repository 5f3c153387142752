"""A minimal appliance for the SIGKILL test: the MQTT source (QoS 1, persistent session, manual ack) into the
historian sink (with its spool), under the supervisor. Prints ``ready`` once subscribed.

    python -m tests.delivery_app DSN BROKER_URL TOPIC SPOOL_DIR CLIENT_ID
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from edge.envelope import Envelope
from edge.historian.settings import HistorianSettings
from edge.historian.writer import HistorianWriter
from edge.metrics import Metrics
from edge.settings import BrokerSettings, SpoolSettings
from edge.sinks.historian_sink import HistorianSink
from edge.spool import Spool
from edge.stages import queue_emit
from edge.supervisor import Supervisor
from ingest.mqtt.source import MqttSource
from ingest.settings import MqttSourceSettings


def make_source(url: str, topic: str, client_id: str, inbox: asyncio.Queue[Envelope],
                cut_journal: Path | None = None) -> MqttSource:
    settings = MqttSourceSettings(name="mqtt-test", topics=[topic], samples_path="samples",
                                  ts_format="epoch_us", client_id=client_id, batch_ms=50, batch_rows=5000)
    return MqttSource(settings, BrokerSettings(url=url, session_expiry_s=3600), queue_emit(inbox),
                      cut_journal=cut_journal)


async def main(dsn: str, url: str, topic: str, spool_dir: str, client_id: str) -> None:
    inbox: asyncio.Queue[Envelope] = asyncio.Queue(16)
    metrics = Metrics()
    writer = HistorianWriter(HistorianSettings(dsn=dsn, write_timeout_s=5), dsn=dsn)
    sink = HistorianSink(inbox, writer, Spool(SpoolSettings(dir=Path(spool_dir)), metrics=metrics),
                         metrics=metrics, retry_interval_s=0.3)
    # The cut journal lives beside the spool, as in the appliance: a redelivery after a crash is batched as
    # before, so the ledger recognises what was committed before the kill.
    source = make_source(url, topic, client_id, inbox, cut_journal=Path(spool_dir) / "mqtt-test.cuts")
    sup = Supervisor()
    sup.add(source)
    sup.add(sink)
    task = asyncio.create_task(sup.run())
    while not source.subscribed.is_set():
        await asyncio.sleep(0.02)
    print("ready", flush=True)
    await task


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
