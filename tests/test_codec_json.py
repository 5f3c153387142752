"""JSON codec: topic patterns, paths, single and batched samples, timestamps, quality, dead letters, fuzz."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import orjson
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.datamodel import SAMPLES, QualityFlag
from ingest.codecs import Decoded
from ingest.codecs.json_codec import JsonCodec, compile_topic_pattern
from ingest.deadletter import Reason

T0_US = int(datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC).timestamp() * 1_000_000)


def decode(
    codec: JsonCodec, messages: list[tuple[str, bytes]], recv_us: int = T0_US
) -> tuple[pa.RecordBatch, Decoded]:
    out = Decoded("test")
    codec.decode(messages, recv_us, out)
    return out.to_samples(recv_us), out


def rows(batch: pa.RecordBatch) -> list[tuple[str, int, float, int, int]]:
    d = batch.to_pydict()
    ts = batch.column("ts").cast(pa.int64()).to_pylist()
    return list(zip(d["tag"], ts, d["value"], d["quality"], d["flags"], strict=True))


def test_topic_pattern_names_the_tag() -> None:
    codec = JsonCodec(
        topic_pattern="plant/{line}/{machine}/{measure}", tag_template="{line}.{machine}.{measure}"
    )
    batch, out = decode(codec, [("plant/l1/press1/temp", b'{"ts": "2026-03-01T12:00:00Z", "value": 21.5}')])
    assert batch.schema == SAMPLES
    assert rows(batch) == [("l1.press1.temp", T0_US, 21.5, 0, 0)]
    assert len(out.dead) == 0


def test_topic_that_does_not_match_is_a_dead_letter() -> None:
    codec = JsonCodec(topic_pattern="plant/{line}/{machine}/{measure}", tag_template="{line}.{machine}")
    batch, out = decode(codec, [("elsewhere/x", b'{"ts": 1, "value": 1}')])
    assert batch.num_rows == 0
    assert [d.reason for d in out.dead.items] == [Reason.UNMAPPED_TOPIC]
    assert out.dead.items[0].payload == b'{"ts": 1, "value": 1}'


def test_pattern_wildcards_and_levels() -> None:
    rx = compile_topic_pattern("a/{x}/+/{rest*}")
    m = rx.match("a/1/zz/b/c")
    assert m is not None and m.groupdict() == {"x": "1", "rest": "b/c"}
    codec = JsonCodec(tag_template="{l1}:{l2}")
    batch, _ = decode(codec, [("a/b/c", b'{"ts": 1772366400000, "value": 2}')])
    assert rows(batch)[0][0] == "b:c"


def test_nested_paths_and_quality_forms() -> None:
    codec = JsonCodec(value_path="data.v", ts_path="data.t", quality_path="data.q")
    msgs = [
        ("t", orjson.dumps({"data": {"v": 1, "t": T0_US // 1000, "q": 0}})),
        ("t", orjson.dumps({"data": {"v": 2, "t": T0_US // 1000, "q": "Uncertain"}})),
        (
            "t",
            orjson.dumps({"data": {"v": 3, "t": T0_US // 1000, "q": 0x80000000}}),
        ),  # an OPC-UA Bad StatusCode
        ("t", orjson.dumps({"data": {"v": True, "t": T0_US // 1000}})),  # no quality: good
    ]
    batch, out = decode(codec, msgs)
    assert [r[3] for r in rows(batch)] == [0, 1, 2, 0]
    assert [r[2] for r in rows(batch)] == [1.0, 2.0, 3.0, 1.0]
    assert len(out.dead) == 0


def test_epoch_units_are_recognised() -> None:
    codec = JsonCodec()
    msgs = [
        ("t", orjson.dumps({"ts": ts, "value": 1}))
        for ts in (T0_US // 1_000_000, T0_US // 1000, T0_US, T0_US * 1000, T0_US / 1e6)
    ]
    batch, _ = decode(codec, msgs)
    assert [r[1] for r in rows(batch)] == [T0_US] * 5
    fixed = JsonCodec(ts_format="epoch_ms")
    batch, _ = decode(fixed, [("t", orjson.dumps({"ts": 1000, "value": 1}))])
    assert rows(batch)[0][1] == 1_000_000


def test_iso_timestamps_with_offsets_and_without() -> None:
    codec = JsonCodec()
    batch, _ = decode(
        codec,
        [
            ("t", b'{"ts": "2026-03-01T13:00:00+01:00", "value": 1}'),
            ("t", b'{"ts": "2026-03-01T12:00:00.250Z", "value": 2}'),
        ],
    )
    assert [r[1] for r in rows(batch)] == [T0_US, T0_US + 250_000]
    batch, _ = decode(codec, [("t", b'{"ts": "2026-03-01T12:00:00", "value": 1}')])  # no offset: UTC
    assert rows(batch)[0][1] == T0_US
    batch, _ = decode(
        codec,
        [
            ("t", b'{"ts": "2026-03-01T12:00:00", "value": 1}'),  # mixed forms
            ("t", b'{"ts": "2026-03-01T12:00:00Z", "value": 1}'),
            ("t", orjson.dumps({"ts": T0_US // 1000, "value": 1})),
        ],
    )
    assert [r[1] for r in rows(batch)] == [T0_US] * 3


def test_no_timestamp_path_uses_receive_time() -> None:
    codec = JsonCodec(ts_path=None, quality_path=None)
    batch, _ = decode(codec, [("t", b'{"value": 4}')], recv_us=T0_US + 7)
    assert rows(batch) == [("t", T0_US + 7, 4.0, 0, 0)]


def test_batched_payload_with_bad_elements_keeps_the_good_ones() -> None:
    codec = JsonCodec(samples_path="samples")
    samples = [
        {"ts": "2026-03-01T12:00:00.000Z", "value": 1.0},
        {"ts": "2026-03-01T12:00:00.001Z", "value": "2.5"},  # numeric string: coerced
        {"ts": "2026-03-01T12:00:00.002Z", "value": "n/a"},  # not a number
        {"ts": "not a time", "value": 4.0},
        {"value": 5.0},  # no timestamp
        {"ts": "2026-03-01T12:00:00.005Z", "value": [1, 2]},
        {"ts": "2026-03-01T12:00:00.006Z", "value": 7},
    ]
    payload = orjson.dumps({"samples": samples})
    batch, out = decode(codec, [("m/1", payload)])
    r = rows(batch)
    assert [x[2] for x in r] == [1.0, 2.5, 7.0]
    assert r[1][4] == int(QualityFlag.COERCED)
    assert sorted(d.reason for d in out.dead.items) == sorted(
        [Reason.TYPE_COERCION, Reason.BAD_TIMESTAMP, Reason.MISSING_FIELD, Reason.TYPE_COERCION]
    )
    assert all(d.payload == payload for d in out.dead.items)
    assert out.dead.counters[Reason.TYPE_COERCION] == 2


def test_batched_fast_path_many_messages_per_tag_names_from_payload() -> None:
    codec = JsonCodec(
        samples_path="s", tag_path="name", topic_pattern="site/{machine}", tag_template="{machine}.{name}"
    )
    msgs = []
    for k in range(50):
        s = [
            {"name": f"m{i % 4}", "ts": (T0_US // 1000) + k * 100 + i, "value": float(i)} for i in range(100)
        ]
        msgs.append((f"site/press{k % 3}", orjson.dumps({"s": s})))
    batch, out = decode(codec, msgs)
    assert batch.num_rows == 5000 and len(out.dead) == 0
    tags = set(batch.column("tag").to_pylist())
    assert tags == {f"press{p}.m{i}" for p in range(3) for i in range(4)}
    assert np.array_equal(batch.column("value").to_numpy()[:100], np.arange(100, dtype=float))


def test_samples_path_that_is_not_a_list() -> None:
    codec = JsonCodec(samples_path="s")
    _, out = decode(codec, [("t", b'{"s": 3}'), ("t", b'{"x": []}'), ("t", b"[1, 2]")])
    assert [d.reason for d in out.dead.items] == [Reason.BAD_SHAPE] * 3


def test_not_json_is_undecodable() -> None:
    _, out = decode(JsonCodec(), [("t", b"\xff\xfe"), ("t", b"{")])
    assert [d.reason for d in out.dead.items] == [Reason.UNDECODABLE] * 2
    assert out.dead.counters[Reason.UNDECODABLE] == 2


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)
sample_like = st.fixed_dictionaries(
    {}, optional={"ts": json_values, "value": json_values, "quality": json_values, "name": json_values}
)


def _check_accounting(codec: JsonCodec, msgs: list[tuple[str, bytes]]) -> None:
    batch, out = decode(codec, msgs)  # must not raise
    assert batch.schema == SAMPLES
    for d in out.dead.items:
        assert d.reason in {r.value for r in Reason}
        assert d.payload is not None
    # every message is accounted for: samples or at least one dead letter (or an empty sample list)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=5))
def test_fuzz_random_bytes_never_crash(payloads: list[bytes]) -> None:
    msgs = [("plant/a/b/c", p) for p in payloads]
    for codec in (
        JsonCodec(topic_pattern="plant/{l}/{m}/{x}", tag_template="{l}.{m}.{x}"),
        JsonCodec(samples_path="samples"),
    ):
        batch, out = decode(codec, msgs)
        assert batch.schema == SAMPLES
        # each message gives samples or at least one dead letter with its payload
        assert batch.num_rows + len(out.dead) >= len(payloads)
        assert all(d.payload in payloads and d.reason for d in out.dead.items)


@settings(max_examples=300, deadline=None)
@given(st.lists(json_values | sample_like, max_size=5))
def test_fuzz_random_json_single(objs: list[object]) -> None:
    codec = JsonCodec(tag_path=None)
    msgs = [("t", json.dumps(o).encode()) for o in objs]
    batch, out = decode(codec, msgs)
    assert batch.schema == SAMPLES
    assert batch.num_rows + len(out.dead) >= len(objs)  # each message: a sample or a dead letter
    assert all(d.reason and d.payload is not None for d in out.dead.items)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(sample_like | json_values, max_size=6), max_size=4))
def test_fuzz_random_json_batched(lists: list[list[object]]) -> None:
    codec = JsonCodec(samples_path="samples", tag_path="name", tag_template="{topic}/{name}")
    msgs = [("t", json.dumps({"samples": s}).encode()) for s in lists]
    batch, out = decode(codec, msgs)
    assert batch.schema == SAMPLES
    assert batch.num_rows + len(out.dead) == sum(len(s) for s in lists)
    assert all(d.reason and d.payload is not None for d in out.dead.items)
