"""Sparkplug B codec: births and aliases, data, seq gaps and rebirth requests, deaths, bdSeq, STATE, fuzz."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.core.datamodel import SAMPLES, Quality, QualityFlag
from ingest.codecs import Decoded
from ingest.codecs.sparkplug.codec import SparkplugCodec
from ingest.codecs.sparkplug.payload import (
    BDSEQ_METRIC,
    REBIRTH_METRIC,
    DataType,
    make_payload,
    metric_value,
    pb,
    state_payload,
)
from ingest.deadletter import Reason

G, N = "g1", "node1"
T = 1_772_366_400_000  # ms


def nbirth(bdseq: int = 0, seq: int = 0) -> tuple[str, bytes]:
    return (
        f"spBv1.0/{G}/NBIRTH/{N}",
        make_payload(
            [
                (BDSEQ_METRIC, None, DataType.Int64, bdseq),
                (REBIRTH_METRIC, None, DataType.Boolean, False),
                ("uptime", 1, DataType.Int32, 5),
            ],
            seq=seq,
            timestamp_ms=T,
        ),
    )


def dbirth(seq: int, device: str = "d1") -> tuple[str, bytes]:
    return (
        f"spBv1.0/{G}/DBIRTH/{N}/{device}",
        make_payload(
            [
                ("temp", 10, DataType.Double, 20.0),
                ("count", 11, DataType.Int16, -3),
                ("on", 12, DataType.Boolean, True),
                ("label", 13, DataType.String, "x"),
            ],
            seq=seq,
            timestamp_ms=T,
        ),
    )


def ddata(seq: int, temp: float, device: str = "d1", **kw: Any) -> tuple[str, bytes]:
    return (
        f"spBv1.0/{G}/DDATA/{N}/{device}",
        make_payload([(None, 10, DataType.Double, temp)], seq=seq, timestamp_ms=T + 100, **kw),
    )


def ndeath(bdseq: int) -> tuple[str, bytes]:
    return (
        f"spBv1.0/{G}/NDEATH/{N}",
        make_payload([(BDSEQ_METRIC, None, DataType.Int64, bdseq)], seq=None, timestamp_ms=T + 500),
    )


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def run(codec: SparkplugCodec, *msgs: tuple[str, bytes]) -> tuple[pa.RecordBatch, Decoded]:
    out = Decoded("sp")
    codec.decode(list(msgs), T * 1000, out)
    return out.to_samples(T * 1000), out


def values(batch: pa.RecordBatch) -> dict[str, float]:
    return dict(zip(batch.column("tag").to_pylist(), batch.column("value").to_pylist(), strict=True))


def test_births_define_aliases_and_data_resolves_them() -> None:
    codec = SparkplugCodec()
    batch, out = run(codec, nbirth(), dbirth(1), ddata(2, 21.5))
    assert batch.schema == SAMPLES
    tags = batch.column("tag").to_pylist()
    assert tags == [
        "g1/node1/uptime",
        "g1/node1/d1/temp",
        "g1/node1/d1/count",
        "g1/node1/d1/on",
        "g1/node1/d1/temp",
    ]
    assert batch.column("value").to_pylist() == [5.0, 20.0, -3.0, 1.0, 21.5]
    assert batch.column("ts").cast(pa.int64()).to_pylist()[-1] == (T + 100) * 1000
    assert out.commands == [] and len(out.dead) == 0
    assert codec.counters["skipped"] == 1  # the string metric


def test_tag_templates_are_configurable() -> None:
    codec = SparkplugCodec(tag_template="{node}.{device}.{metric}", node_tag_template="{node}.{metric}")
    batch, _ = run(codec, nbirth(), dbirth(1))
    assert batch.column("tag").to_pylist()[:2] == ["node1.uptime", "node1.d1.temp"]


def test_seq_gap_requests_a_rebirth_and_the_rebirth_restores_aliases() -> None:
    clock = Clock()
    codec = SparkplugCodec(clock=clock, rebirth_interval_s=5.0)
    run(codec, nbirth(), dbirth(1), ddata(2, 1.0))
    batch, out = run(codec, ddata(4, 2.0))  # seq 3 was lost
    assert values(batch) == {"g1/node1/d1/temp": 2.0}  # the alias is still known: the value is kept
    assert len(out.commands) == 1
    cmd = out.commands[0]
    assert cmd.topic == "spBv1.0/g1/NCMD/node1" and cmd.qos == 0
    p = pb.Payload.FromString(cmd.payload)
    assert [(m.name, metric_value(m, m.datatype)) for m in p.metrics] == [(REBIRTH_METRIC, 1.0)]
    assert codec.counters["seq_gaps"] == 1
    assert any("sequence gap" in e.message for e in out.events)
    # a second gap soon after: no second request until the interval has passed
    _, out2 = run(codec, ddata(9, 3.0))
    assert out2.commands == []
    # the node is born again: seq starts over, aliases are back, no more requests
    batch, out3 = run(codec, nbirth(), dbirth(1), ddata(2, 4.0), ddata(3, 5.0))
    assert out3.commands == [] and len(out3.dead) == 0
    assert batch.column("value").to_pylist()[-2:] == [4.0, 5.0]


def test_unknown_alias_is_a_dead_letter_and_asks_for_rebirth() -> None:
    codec = SparkplugCodec()
    _, out = run(codec, ddata(0, 1.0))  # data before any birth
    assert [d.reason for d in out.dead.items] == [Reason.UNKNOWN_ALIAS]
    assert len(out.commands) == 1
    assert out.dead.items[0].payload == ddata(0, 1.0)[1]


def test_ndeath_marks_the_nodes_tags_stale() -> None:
    codec = SparkplugCodec()
    run(codec, nbirth(bdseq=7), dbirth(1), ddata(2, 30.0))
    batch, out = run(codec, ndeath(7))
    stale = values(batch)
    assert stale["g1/node1/d1/temp"] == 30.0 and "g1/node1/uptime" in stale
    assert set(batch.column("flags").to_pylist()) == {int(QualityFlag.STALE)}
    assert set(batch.column("quality").to_pylist()) == {int(Quality.UNCERTAIN)}
    assert set(batch.column("ts").cast(pa.int64()).to_pylist()) == {(T + 500) * 1000}
    assert any("died" in e.message for e in out.events)
    # data from the dead node before its next birth travels as STALE
    batch, _ = run(codec, ddata(3, 31.0))
    assert batch.column("flags").to_pylist() == [int(QualityFlag.STALE)]


def test_ndeath_of_an_older_session_is_ignored() -> None:
    codec = SparkplugCodec()
    run(codec, nbirth(bdseq=3), dbirth(1), ddata(2, 1.0))
    batch, _ = run(codec, ndeath(2))
    assert batch.num_rows == 0 and codec.counters["ndeath_ignored"] == 1
    batch, _ = run(codec, ddata(3, 2.0))
    assert batch.column("flags").to_pylist() == [0]


def test_ddeath_marks_only_that_device() -> None:
    codec = SparkplugCodec()
    run(codec, nbirth(), dbirth(1, "d1"), dbirth(2, "d2"), ddata(3, 1.0, "d1"), ddata(4, 2.0, "d2"))
    topic = f"spBv1.0/{G}/DDEATH/{N}/d2"
    batch, _ = run(codec, (topic, make_payload([], seq=5, timestamp_ms=T)))
    assert {t.split("/")[2] for t in batch.column("tag").to_pylist()} == {"d2"}


def test_historical_metrics_are_kept_and_marked() -> None:
    codec = SparkplugCodec()
    batch, _ = run(codec, nbirth(), dbirth(1), ddata(2, 9.0, historical=True))
    assert batch.column("flags").to_pylist()[-1] == int(QualityFlag.LATE)
    assert codec.nodes[(G, N)].last["g1/node1/d1/temp"][0] == 20.0  # the birth value, not the historical one


def test_signed_integers_and_state_messages() -> None:
    p = pb.Payload()
    m = p.metrics.add()
    m.datatype = DataType.Int8
    m.int_value = 0xFFFFFFFF
    assert metric_value(m, DataType.Int8) == -1.0
    m.int_value = 0xFF
    assert metric_value(m, DataType.Int8) == -1.0
    m.long_value = (1 << 64) - 2
    assert metric_value(m, DataType.Int64) == -2.0
    codec = SparkplugCodec()
    _, out = run(codec, ("spBv1.0/STATE/host9", state_payload(False, 1)))
    assert codec.host_states == {"host9": False} and out.events


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=200),
    st.sampled_from(["NBIRTH", "DBIRTH", "NDATA", "DDATA", "NDEATH", "DDEATH", "STATE"]),
)
def test_fuzz_random_bytes_never_crash(payload: bytes, mtype: str) -> None:
    codec = SparkplugCodec()
    run(codec, nbirth(), dbirth(1))
    topic = (
        "spBv1.0/STATE/h"
        if mtype == "STATE"
        else f"spBv1.0/{G}/{mtype}/{N}" + ("/d1" if mtype[0] == "D" else "")
    )
    batch, out = run(codec, (topic, payload))
    assert batch.schema == SAMPLES
    for d in out.dead.items:
        assert d.reason and d.payload == payload


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.text(max_size=5)),
            st.one_of(st.none(), st.integers(0, 20)),
            st.sampled_from(list(DataType)),
            st.integers(-(2**31), 2**31 - 1),
        ),
        max_size=8,
    )
)
def test_fuzz_random_metrics(metrics: list[tuple[str | None, int | None, DataType, int]]) -> None:
    codec = SparkplugCodec()
    run(codec, nbirth(), dbirth(1))
    batch, _ = run(codec, (f"spBv1.0/{G}/DDATA/{N}/d1", make_payload(metrics, seq=2)))
    assert batch.schema == SAMPLES
