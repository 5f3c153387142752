"""The optional Sparkplug B insights node, decoded by ingest's Sparkplug host codec (births, aliases, seq)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from edge.core.datamodel import INSIGHTS, batch_from_rows
from ingest.codecs import Command, Decoded
from ingest.codecs.sparkplug.codec import SparkplugCodec
from ingest.codecs.sparkplug.node import SparkplugInsightsNode, device_id, is_rebirth_request
from ingest.codecs.sparkplug.payload import (
    REBIRTH_METRIC,
    DataType,
    make_payload,
    pb,
    rebirth_command,
)

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
ASSET = "site/line1/pump1"


def _insights(scores: list[float], model: str = "pca", asset: str = ASSET,
              start_s: int = 0) -> pa.RecordBatch:
    rows: list[dict[str, Any]] = []
    for i, score in enumerate(scores):
        ts = T0 + timedelta(seconds=start_s + i)
        rows.append({
            "insight_id": f"{model}-{start_s + i}", "ts": ts, "asset": asset, "model": model,
            "model_version": "1", "model_sha256": "0" * 64, "score": score, "threshold": 1.0,
            "severity": "alarm" if score >= 1.0 else "ok", "window_start": ts - timedelta(seconds=10),
            "window_end": ts, "top_features": "[]", "context": "{}", "quality_flags": 0, "gated": i == 0})
    return batch_from_rows(rows, INSIGHTS)


def _ms(seconds: int) -> float:
    return (T0 + timedelta(seconds=seconds)).timestamp()


def _decode(codec: SparkplugCodec, msgs: list[Command]) -> dict[tuple[str, float], float]:
    out = Decoded("sp")
    codec.decode([(m.topic, m.payload) for m in msgs], 4_000_000, out)
    assert not out.commands, "the host asked for a rebirth: seq or aliases were wrong"
    assert len(out.dead) == 0, out.dead.take()
    return {(r["tag"], r["ts"].timestamp()): r["value"] for r in out.to_samples(4_000_000).to_pylist()}


def test_node_messages_decode_with_the_host_codec() -> None:
    node = SparkplugInsightsNode("plant", "edge1")
    will = node.will()
    assert will.topic == "spBv1.0/plant/NDEATH/edge1" and will.qos == 1
    msgs = [*node.births(1000), *node.messages(_insights([0.5, 2.0]), 2000),
            *node.messages(_insights([0.3], start_s=5), 3000)]
    dev = device_id(ASSET)
    assert dev == "site.line1.pump1"
    assert [m.topic for m in msgs] == [
        "spBv1.0/plant/NBIRTH/edge1",
        f"spBv1.0/plant/DBIRTH/edge1/{dev}",
        f"spBv1.0/plant/DDATA/edge1/{dev}",
        f"spBv1.0/plant/DDATA/edge1/{dev}",
    ]
    assert [pb.Payload.FromString(m.payload).seq for m in msgs] == [0, 1, 2, 3]
    assert all(m.qos == 0 and not m.retain for m in msgs)
    got = _decode(SparkplugCodec(), msgs)
    # metric timestamps are the insights' times; the latest of the first batch (t0 + 1 s) wins
    assert got[(f"plant/edge1/{dev}/pca/score", _ms(1))] == 2.0
    assert got[(f"plant/edge1/{dev}/pca/alarm", _ms(1))] == 1.0
    assert got[(f"plant/edge1/{dev}/pca/gated", _ms(1))] == 0.0
    assert got[(f"plant/edge1/{dev}/pca/score", _ms(5))] == 0.3
    assert (f"plant/edge1/{dev}/pca/score", _ms(0)) not in got  # only the latest per batch goes out
    # the DBIRTH names every metric with its alias, null before the first value; the DDATA uses aliases only
    birth = pb.Payload.FromString(msgs[1].payload)
    assert [(m.name, m.datatype, m.is_null) for m in birth.metrics] == [
        ("pca/score", DataType.Double, True), ("pca/threshold", DataType.Double, True),
        ("pca/severity", DataType.String, True), ("pca/alarm", DataType.Boolean, True),
        ("pca/gated", DataType.Boolean, True)]
    aliases = {m.alias: m.name for m in birth.metrics}
    assert len(aliases) == 5
    data = pb.Payload.FromString(msgs[2].payload)
    assert all(not m.name and m.alias in aliases for m in data.metrics)
    assert {aliases[m.alias]: m.string_value for m in data.metrics if m.datatype == DataType.String} == {
        "pca/severity": "alarm"}


def test_new_connection_bumps_bdseq_and_restarts_seq() -> None:
    node = SparkplugInsightsNode("g", "n")
    node.will()
    node.births()
    for i in range(300):
        node.messages(_insights([1.0], start_s=i))
    assert node.seq == (1 + 1 + 300) % 256  # NBIRTH, DBIRTH, 300 DDATA: wrapped at 256
    node.will()
    assert node.bdseq == 1
    births = node.births()
    # the rebirth: NBIRTH (seq 0, bdSeq 1), then the device again with its current values
    assert [m.topic.split("/")[2] for m in births] == ["NBIRTH", "DBIRTH"]
    nbirth = pb.Payload.FromString(births[0].payload)
    assert nbirth.seq == 0
    assert {m.name: (m.long_value if m.name == "bdSeq" else m.boolean_value) for m in nbirth.metrics} == {
        "bdSeq": 1, REBIRTH_METRIC: False}
    assert node.seq == 2
    # an explicit bdSeq (kept by the publisher across restarts) wins; the NDEATH carries it
    death = node.will(41)
    assert node.bdseq == 41
    assert [m.long_value for m in pb.Payload.FromString(death.payload).metrics] == [41]
    assert not pb.Payload.FromString(death.payload).HasField("seq")


def test_births_carry_the_current_state_and_keep_aliases() -> None:
    node = SparkplugInsightsNode("plant", "edge1")
    node.will()
    first = [*node.births(), *node.messages(_insights([0.2, 1.5])),
             *node.messages(_insights([0.7], model="iforest", start_s=3))]
    # a new model on a born device: the device is born again (old model's values, new model null) first
    assert [m.topic.split("/")[2] for m in first] == ["NBIRTH", "DBIRTH", "DDATA", "DBIRTH", "DDATA"]
    second_birth = pb.Payload.FromString(first[3].payload)
    values = {m.name: (None if m.is_null else m.double_value) for m in second_birth.metrics
              if m.name.endswith("/score")}
    assert values == {"iforest/score": None, "pca/score": 1.5}
    aliases_before = {m.name: m.alias for m in second_birth.metrics}
    assert len(set(aliases_before.values())) == 10  # unique across the node

    # an older insight committed late does not take the state back
    assert node.messages(_insights([9.0], start_s=0)) == []

    codec = SparkplugCodec()
    again = node.births(5000)
    got = _decode(codec, again)
    dev = device_id(ASSET)
    assert got[(f"plant/edge1/{dev}/pca/score", _ms(1))] == 1.5
    assert got[(f"plant/edge1/{dev}/iforest/score", _ms(3))] == 0.7
    assert got[(f"plant/edge1/{dev}/iforest/alarm", _ms(3))] == 0.0
    rebirth = pb.Payload.FromString(again[1].payload)
    assert {m.name: m.alias for m in rebirth.metrics} == aliases_before  # same aliases after a rebirth
    # and data after the rebirth decodes against that birth
    more = _decode(codec, node.messages(_insights([3.0], start_s=9)))
    assert more[(f"plant/edge1/{dev}/pca/score", _ms(9))] == 3.0


def test_observe_fills_the_state_without_messages() -> None:
    node = SparkplugInsightsNode("plant", "edge1")
    node.observe(_insights([0.4, 0.9], asset="site/line1/pump2"))
    assert node.devices == ["site.line1.pump2"]
    node.will()
    births = node.births()
    assert [m.topic for m in births] == ["spBv1.0/plant/NBIRTH/edge1",
                                         "spBv1.0/plant/DBIRTH/edge1/site.line1.pump2"]
    got = _decode(SparkplugCodec(), births)
    assert got[("plant/edge1/site.line1.pump2/pca/score", _ms(1))] == 0.9


def test_rebirth_request_is_recognised() -> None:
    assert is_rebirth_request(rebirth_command("plant", "edge1").payload)
    assert not is_rebirth_request(make_payload([(REBIRTH_METRIC, None, DataType.Boolean, False)], seq=None))
    assert not is_rebirth_request(make_payload([("Node Control/Reboot", None, DataType.Boolean, True)],
                                               seq=None))
    assert not is_rebirth_request(b"\xff\xfe not protobuf")
