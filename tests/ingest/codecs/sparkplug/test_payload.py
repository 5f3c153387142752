"""Sparkplug B payloads: metric values written and read back, signed integers, the host's STATE."""

from __future__ import annotations

import orjson

from ingest.codecs.sparkplug.payload import (
    NAMESPACE,
    REBIRTH_METRIC,
    DataType,
    bdseq_of,
    make_payload,
    metric_value,
    pb,
    rebirth_command,
    state_payload,
)


def test_values_round_trip_with_their_datatypes() -> None:
    metrics = [("i8", None, DataType.Int8, -5), ("i64", None, DataType.Int64, -(2**40)),
               ("d", None, DataType.Double, 1.5), ("b", None, DataType.Boolean, True),
               ("s", None, DataType.String, "text")]
    p = pb.Payload.FromString(make_payload(metrics, seq=3, timestamp_ms=1000))
    assert p.seq == 3 and p.timestamp == 1000
    got = [metric_value(m, m.datatype) for m in p.metrics]
    assert got == [-5.0, float(-(2**40)), 1.5, 1.0, None]


def test_bdseq_rebirth_and_state() -> None:
    p = pb.Payload.FromString(make_payload([("bdSeq", None, DataType.Int64, 7)], seq=0))
    assert bdseq_of(p) == 7
    cmd = rebirth_command("g", "n")
    assert cmd.topic == f"{NAMESPACE}/g/NCMD/n" and cmd.qos == 0
    assert pb.Payload.FromString(cmd.payload).metrics[0].name == REBIRTH_METRIC
    assert orjson.loads(state_payload(True, 42)) == {"online": True, "timestamp": 42}
