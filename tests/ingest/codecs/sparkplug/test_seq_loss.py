"""Loss upstream is never silent: a Sparkplug B node numbers its messages (``seq`` 0..255, wrapping); the
messages it sent that never reached us are counted from the gaps and recorded as ``data_loss`` events, on a
real Mosquitto (the MQTT source) and in the historian's ``events`` table (a real PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import uuid

import psycopg
import pyarrow as pa

from edge.core.datamodel import EventKind
from edge.core.settings import BrokerSettings
from edge.sinks.historian.migrate import migrate
from edge.sinks.historian.settings import HistorianSettings
from edge.sinks.historian.writer import HistorianWriter
from ingest.codecs.sparkplug.codec import SparkplugCodec
from ingest.codecs.sparkplug.payload import BDSEQ_METRIC, DataType, make_payload
from ingest.settings import MqttSourceSettings
from tests.conftest import MqttTarget
from tests.ingest.sources.mqtt.test_source import Collector, mqtt_source, publisher, running, until

T = 1_772_366_400_000  # ms


def test_every_gap_is_a_data_loss_event_with_its_count_even_while_rebirths_are_paced() -> None:
    from ingest.codecs import Decoded

    codec = SparkplugCodec(rebirth_interval_s=3600)  # one rebirth request only: the events still come
    out = Decoded("sp")
    msgs = [("spBv1.0/g/NBIRTH/n", make_payload([(BDSEQ_METRIC, None, DataType.Int64, 0),
                                                  ("x", 1, DataType.Double, 0.0)], seq=0, timestamp_ms=T))]
    sent = [k for k in range(1, 600) if k not in {5, 6, 7, 255, 256, 257, 400}]
    msgs += [("spBv1.0/g/NDATA/n", make_payload([(None, 1, DataType.Double, float(k))], seq=k % 256,
                                                timestamp_ms=T + k)) for k in sent]
    codec.decode(msgs, 0, out)
    loss = [e for e in out.events if e.kind == EventKind.DATA_LOSS]
    assert [e.detail["lost"] for e in loss] == [3, 3, 1]
    assert codec.counters["seq_lost"] == 7 and codec.nodes[("g", "n")].lost == 7
    assert codec.counters["rebirth_requests"] == 1


async def test_sparkplug_seq_gaps_on_a_real_broker_are_data_loss_events_in_the_historian(
        mqtt: MqttTarget, pg_dsn: str) -> None:
    group = f"fe{uuid.uuid4().hex[:8]}"
    collector = Collector()
    settings = MqttSourceSettings(name="sp-loss", topics=[f"spBv1.0/{group}/#"], codec="sparkplug",
                                  clean_start=True, sparkplug_rebirth_interval_s=3600)
    source = mqtt_source(settings, BrokerSettings(url=mqtt.url), collector, batch_ms=20)  # type: ignore[call-arg]
    dropped = {10, 50, 51, 52, 254, 255, 256, 257, 258}  # 9 messages in 3 gaps, one across the wrap
    total = 400
    async with running(source):
        pub = publisher(mqtt.url)
        topic = f"spBv1.0/{group}/NDATA/edge1"
        pub.publish(f"spBv1.0/{group}/NBIRTH/edge1",
                    make_payload([(BDSEQ_METRIC, None, DataType.Int64, 1), ("v", 1, DataType.Double, 0.0)],
                                 seq=0, timestamp_ms=T), qos=1).wait_for_publish(5)
        infos = [pub.publish(topic, make_payload([(None, 1, DataType.Double, float(k))], seq=k % 256,
                                                 timestamp_ms=T + k), qos=1)
                 for k in range(1, total + 1) if k not in dropped]
        for info in infos:
            info.wait_for_publish(10)
        await until(lambda: collector.n_samples() >= 1 + total - len(dropped), 20, "every message sent")
        await asyncio.sleep(0.2)
        pub.loop_stop()
        pub.disconnect()
    events = pa.Table.from_batches([e.batch for e in collector.of("events")]).to_pylist()
    loss = [e for e in events if e["kind"] == "data_loss"]
    assert [json.loads(e["detail"])["lost"] for e in loss] == [1, 3, 5]
    assert sum(json.loads(e["detail"])["lost"] for e in loss) == len(dropped)
    assert collector.n_samples() == 1 + total - len(dropped)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        migrate(conn, flavor="postgres")
    writer = HistorianWriter(HistorianSettings.model_validate({"dsn": pg_dsn}), dsn=pg_dsn)
    try:
        for env in collector.of("events"):
            await writer.write(env)
    finally:
        await writer.close()
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute("SELECT message, detail FROM events WHERE kind = 'data_loss'").fetchall()
    stored = [(d if isinstance(d, dict) else json.loads(d))["lost"] for _, d in rows]
    assert sorted(stored) == [1, 3, 5]
    print(f"\n{total} Sparkplug messages numbered, {len(dropped)} withheld in 3 gaps; "
          f"{len(loss)} data_loss events, {sum(stored)} messages counted lost in the historian")
