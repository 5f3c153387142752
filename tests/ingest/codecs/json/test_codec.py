"""JSON codec: topic patterns, paths, single and batched samples, timestamps, quality, dead letters, fuzz."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime

import numpy as np
import orjson
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.core.datamodel import SAMPLES, QualityFlag
from ingest.codecs import Decoded
from ingest.codecs.json.codec import JsonCodec
from ingest.codecs.json.paths import compile_topic_pattern
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


def test_epoch_numbers_beyond_int64_microseconds_are_bad_timestamps_not_wrapped() -> None:
    for fmt, ts in (("epoch_s", 10**15), ("epoch_ms", 1e18), ("epoch_us", 2.0**63), ("epoch_s", -(10**14))):
        for arrow_json in (False, True):
            codec = JsonCodec(ts_format=fmt, samples_path="samples", arrow_json=arrow_json)  # type: ignore[arg-type]
            msg = orjson.dumps({"samples": [{"ts": ts, "value": 1}, {"ts": 1000, "value": 2}]})
            batch, out = decode(codec, [("t", msg), ("t", msg)])
            assert [d.reason for d in out.dead.items] == [Reason.BAD_TIMESTAMP] * 2, (fmt, ts)
            assert batch.num_rows == 2 and rows(batch)[0][2] == 2.0
    # unsigned nanoseconds above 2**63 still fit once divided
    batch, out = decode(JsonCodec(ts_format="epoch_ns"), [("t", b'{"ts": %d, "value": 1}' % (2**63 + 5000))])
    assert rows(batch)[0][1] == (2**63 + 5000) // 1000 and not out.dead.items


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
        JsonCodec(samples_path="samples", arrow_json=True),
        JsonCodec(samples_path="samples", arrow_json=True, arrow_threads=True),
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


# -- the pyarrow.json path for batched payloads (samples_path set, several messages a call) ---------------


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _int_rows(batch: pa.RecordBatch) -> list[tuple[object, ...]]:
    cols = [batch.column(c).cast(pa.int64()) if c == "ts" else batch.column(c) for c in
            ("tag", "ts", "value", "quality", "flags")]
    return list(zip(*(c.to_pylist() for c in cols), strict=True))


def _batched_codec(**kw: object) -> JsonCodec:
    kw = {"arrow_json": True, **kw}
    return JsonCodec(
        topic_pattern="plant/{line}/{machine}/{measure}",
        tag_template="{line}.{machine}.{measure}",
        samples_path="samples",
        **kw,  # type: ignore[arg-type]
    )


def _same_as_per_message(
    codec_kw: Mapping[str, object], msgs: list[tuple[str, bytes]]
) -> tuple[JsonCodec, Decoded]:
    """Decodes with the Arrow path and with the per-message path; asserts the same rows and dead letters."""
    fast = _batched_codec(**codec_kw)
    batch, out = decode(fast, msgs)
    ref_batch, ref_out = decode(_batched_codec(arrow_json=False, **codec_kw), msgs)
    assert sorted(_int_rows(batch)) == sorted(_int_rows(ref_batch))
    assert sorted((d.reason, d.payload) for d in out.dead.items) == sorted(
        (d.reason, d.payload) for d in ref_out.dead.items
    )
    return fast, out


def test_arrow_path_decodes_a_call_of_batched_messages() -> None:
    msgs = [
        (
            f"plant/l1/m{i % 3}/vib",
            orjson.dumps(
                {"samples": [{"ts": _iso(T0_US + i * 1000 + k), "value": k * 0.5 + i, "quality": 0} for k in
                             range(100)]}
            ),
        )
        for i in range(20)
    ]
    codec, out = _same_as_per_message({}, msgs)
    assert codec._arrow is not None and codec._arrow.arrow_calls == 1 and codec._arrow.fallback_calls == 0
    assert out.num_rows == 2000 and len(out.dead) == 0
    batch = out.to_samples(T0_US)
    assert batch.schema == SAMPLES
    r = rows(batch)
    assert r[0] == ("l1.m0.vib", T0_US, 0.0, 0, 0)
    assert r[101] == ("l1.m1.vib", T0_US + 1000, 1.5, 0, 0)


def test_arrow_path_timestamps_with_offsets_without_and_bad_ones() -> None:
    msgs = [
        ("plant/a/b/c", b'{"samples": [{"ts": "2026-03-01T13:00:00+01:00", "value": 1},'
                        b' {"ts": "2026-03-01T07:00:00.5-05:00", "value": 2}]}'),
        ("plant/a/b/c", b'{"samples": [{"ts": "2026-03-01T12:00:00.250Z", "value": 3}]}'),
    ]
    codec, out = _same_as_per_message({}, msgs)
    assert codec._arrow is not None and codec._arrow.arrow_calls == 1
    assert [r[1] for r in rows(out.to_samples(T0_US))] == [T0_US, T0_US + 500_000, T0_US + 250_000]
    # no offset (UTC), mixed with offsets, and one that is not a time: only that one is a dead letter
    # the reader parses them (ts_kind "timestamp"); one that is not a time makes it fail the call, which then
    # goes per message, and the next calls read strings and cast them: only the bad one is a dead letter
    bad = b'{"samples": [{"ts": "2026-03-01T12:00:00", "value": 4}, {"ts": "soon", "value": 5}]}'
    codec, out = _same_as_per_message({}, [*msgs, ("plant/a/b/c", bad)])
    assert codec._arrow is not None and codec._arrow.fallback_calls == 1 and codec._arrow.ts_kind == "string"
    _, out = decode(codec, [*msgs, ("plant/a/b/c", bad)])
    assert codec._arrow.arrow_calls == 1
    assert [r[1] for r in rows(out.to_samples(T0_US))] == [T0_US, T0_US + 500_000, T0_US + 250_000, T0_US]
    assert [(d.reason, d.payload) for d in out.dead.items] == [(Reason.BAD_TIMESTAMP, bad)]


def test_arrow_path_epoch_numbers_are_learned() -> None:
    ms = [
        ("plant/a/b/c", orjson.dumps({"samples": [{"ts": T0_US // 1000 + k, "value": k}]})) for k in range(3)
    ]
    codec = _batched_codec()
    batch, _ = decode(codec, ms)  # strings expected: Arrow rejects the call, the per-message path takes it
    assert [r[1] for r in rows(batch)] == [T0_US, T0_US + 1000, T0_US + 2000]
    assert codec._arrow is not None and codec._arrow.fallback_calls == 1 and codec._arrow.ts_kind == "int"
    batch, _ = decode(codec, ms)
    assert codec._arrow.arrow_calls == 1
    assert [r[1] for r in rows(batch)] == [T0_US, T0_US + 1000, T0_US + 2000]
    for kw, ts in (({"ts_format": "epoch_ns"}, T0_US * 1000), ({}, T0_US / 1e6), ({}, T0_US)):
        msgs = [("plant/a/b/c", orjson.dumps({"samples": [{"ts": ts, "value": 1}]}))] * 2
        codec, out = _same_as_per_message(kw, msgs)
        decode(codec, msgs)
        assert codec._arrow is not None and codec._arrow.arrow_calls >= 1
        assert [r[1] for r in rows(out.to_samples(T0_US))] == [T0_US, T0_US]


def test_arrow_path_mixed_good_and_bad_messages_in_one_call() -> None:
    good = orjson.dumps({"samples": [{"ts": "2026-03-01T12:00:00Z", "value": 1.5, "quality": 0x80000000}]})
    no_value = b'{"samples": [{"ts": "2026-03-01T12:00:00Z"}, {"ts": "2026-03-01T12:00:00Z", "value": 2}]}'
    null_value = b'{"samples": [{"ts": "2026-03-01T12:00:00Z", "value": null}]}'
    no_ts = b'{"samples": [{"value": 3}]}'
    no_list = b'{"other": 1}'
    null_quality = (
        b'{"samples": [{"ts": "2026-03-01T12:00:00Z", "value": 4, "quality": null},'
        b' {"ts": "2026-03-01T12:00:00Z"}]}'
    )
    msgs = [
        ("plant/a/b/c", good),
        ("plant/a/b/c", no_value),
        ("plant/a/b/d", null_value),
        ("plant/a/b/c", no_ts),
        ("plant/a/b/c", no_list),
        ("elsewhere", good),
        ("plant/a/b/e", b"not json"),
        ("plant/a/b/e", b'{"samples": [{"ts": "2026-03-01T12:00:00Z", "value": 6}]}\n'),
        ("plant/a/b/f", null_quality),
        ("plant/a/b/g", b'{"samples": []}'),
    ]
    codec, out = _same_as_per_message({}, msgs)
    assert codec._arrow is not None and codec._arrow.arrow_calls == 1  # none of these makes Arrow fail
    assert sorted(r[2:4] for r in rows(out.to_samples(T0_US))) == [(1.5, 2), (2.0, 0), (4.0, 0), (6.0, 0)]
    assert sorted(d.reason for d in out.dead.items) == sorted(
        [Reason.MISSING_FIELD, Reason.TYPE_COERCION, Reason.MISSING_FIELD, Reason.BAD_SHAPE,
         Reason.UNMAPPED_TOPIC, Reason.UNDECODABLE, Reason.MISSING_FIELD]
    )
    # what Arrow rejects (a numeric string, a boolean, a wrong shape) sends the whole call per message
    msgs += [
        ("plant/a/b/h", b'{"samples": [{"ts": "2026-03-01T12:00:00Z", "value": "2.5"}]}'),
        ("plant/a/b/h", b'{"samples": [{"ts": "2026-03-01T12:00:00Z", "value": true}]}'),
        ("plant/a/b/h", b'{"samples": 3}'),
    ]
    codec, out = _same_as_per_message({}, msgs)
    assert codec._arrow is not None and codec._arrow.fallback_calls == 1
    assert out.dead.counters[Reason.BAD_SHAPE] == 2


def test_arrow_path_nested_paths_and_no_timestamp() -> None:
    msgs = [
        ("plant/a/b/c", orjson.dumps({"d": {"s": [{"v": {"x": k}, "q": {"c": k % 3}} for k in range(4)]}}))
        for _ in range(3)
    ]
    kw: dict[str, object] = {
        "samples_path": "d.s", "value_path": "v.x", "ts_path": None, "quality_path": "q.c"
    }
    fast = JsonCodec(arrow_json=True, **kw)  # type: ignore[arg-type]
    batch, _ = decode(fast, msgs, recv_us=T0_US + 1)
    ref, _ = decode(JsonCodec(arrow_json=False, **kw), msgs, recv_us=T0_US + 1)  # type: ignore[arg-type]
    assert fast._arrow is not None and fast._arrow.arrow_calls == 1
    assert rows(batch) == rows(ref)
    assert [r[1:4] for r in rows(batch)][:4] == [(T0_US + 1, float(k), k % 3) for k in range(4)]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.lists(sample_like | json_values, max_size=6).map(lambda s: {"samples": s})
        | json_values
        | st.fixed_dictionaries(
            {"samples": st.lists(
                st.fixed_dictionaries(
                    {"ts": st.sampled_from(["2026-03-01T12:00:00Z", "2026-03-01T12:00:00", "x", "2026-03-01",
                                            "2026-03-01 12:00:00+02:00", "2026-03-01T12:00:00.123456789Z",
                                            "2026-03-01T12:00Z", "2026-03-01T12:00:00+0530", ""])
                     | st.integers(-(2**64), 2**64) | st.floats(),
                     "value": st.floats() | st.integers(-(2**65), 2**65) | st.none()},
                    optional={"quality": st.integers(-(2**40), 2**40) | st.none()},
                ),
                max_size=4,
            )}
        ),
        max_size=6,
    )
)
def test_fuzz_arrow_path_matches_per_message_path(objs: list[object]) -> None:
    msgs = [("plant/a/b/c", json.dumps(o).encode()) for o in objs]
    _same_as_per_message({}, msgs)


def test_arrow_path_large_payloads_and_threads() -> None:
    big = {"samples": [{"ts": _iso(T0_US + k), "value": float(k), "quality": 1} for k in range(30_000)]}
    msgs = [("plant/a/b/c", orjson.dumps(big)), ("plant/a/b/d", orjson.dumps(big))]  # 2 x 1.3 MB
    assert len(msgs[0][1]) > 1 << 20
    for threads in (False, True):
        codec, out = _same_as_per_message({"arrow_threads": threads}, msgs)
        assert codec._arrow is not None and codec._arrow.arrow_calls == 1
        assert out.num_rows == 60_000 and len(out.dead) == 0


# -- the msgspec typed path (single-key paths) against the orjson path ---------------------------------------


def _same_typed_as_orjson(codec_kw: Mapping[str, object], msgs: list[tuple[str, bytes]]) -> JsonCodec:
    """Decodes with the typed path and with orjson only; asserts the same rows (in order) and dead letters."""
    typed = JsonCodec(**codec_kw)  # type: ignore[arg-type]
    assert typed._typed is not None
    batch, out = decode(typed, msgs)
    ref_batch, ref_out = decode(JsonCodec(typed_decode=False, **codec_kw), msgs)  # type: ignore[arg-type]
    assert _int_rows(batch) == _int_rows(ref_batch)
    assert [(d.reason, d.detail, d.payload, d.tag) for d in out.dead.items] == [
        (d.reason, d.detail, d.payload, d.tag) for d in ref_out.dead.items
    ]
    return typed


_edge_numbers = st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 2**70, 0, -0.0,
                                 1e308, 5e-324, 1.5, True, False, None, "1.5", "good", "", 1_772_366_400_000])
_edge_sample = st.fixed_dictionaries(
    {},
    optional={"ts": _edge_numbers | st.sampled_from(["2026-03-01T12:00:00Z", "x", "2026-03-01T12:00:00"])
              | json_values,
              "value": _edge_numbers | json_values, "quality": _edge_numbers | json_values,
              "other": json_values},
)
_texts = st.sampled_from([b"", b"{", b"[]", b"NaN", b'{"value": NaN}', b'{"samples": [{"value": Infinity}]}',
                          b'{"value": 1, "value": "x"}', b'{"samples": [], "samples": 3}',
                          b'{"value": 1} x', b'\xef\xbb\xbf{"value": 1}', b'{"value": 01}',
                          b'{"ts": "\\ud800"}',
                          b'{"value": 1, "ts": "a\x01"}', b'{"samples": [{"value": 2, "ts": 1e400}]}'])


@settings(max_examples=400, deadline=None)
@given(st.lists(_edge_sample.map(lambda s: json.dumps(s).encode()) | _texts
                | json_values.map(lambda v: json.dumps(v).encode()), max_size=6))
def test_fuzz_typed_single_matches_orjson_path(payloads: list[bytes]) -> None:
    msgs = [(f"plant/l/m{i % 2}/x", p) for i, p in enumerate(payloads)]
    _same_typed_as_orjson({"topic_pattern": "plant/{l}/{m}/{x}", "tag_template": "{l}.{m}.{x}"}, msgs)
    _same_typed_as_orjson({"quality_path": None}, msgs)
    _same_typed_as_orjson({"ts_path": None, "value_path": "v"}, msgs)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(_edge_sample | json_values, max_size=5)
                .map(lambda s: json.dumps({"samples": s}).encode())
                | _texts | json_values.map(lambda v: json.dumps({"samples": v}).encode()), max_size=6))
def test_fuzz_typed_batched_matches_orjson_path(payloads: list[bytes]) -> None:
    msgs = [(f"plant/l/m{i % 2}/x", p) for i, p in enumerate(payloads)]
    _same_typed_as_orjson({"samples_path": "samples", "topic_pattern": "plant/{l}/{m}/{x}",
                           "tag_template": "{l}.{m}.{x}"}, msgs)
    _same_typed_as_orjson({"samples_path": "samples", "ts_format": "epoch_ms"}, msgs)


def test_typed_path_only_for_single_key_paths() -> None:
    assert JsonCodec(samples_path="samples")._typed is not None
    assert JsonCodec(value_path="data.v")._typed is None  # nested: orjson and getters
    assert JsonCodec(samples_path="data.0")._typed is None
    assert JsonCodec(tag_path="name", tag_template="{name}")._typed is None
    assert JsonCodec(value_path="v", ts_path="v")._typed is None


def test_typed_path_keeps_rows_of_fitting_messages_and_hands_the_rest_over() -> None:
    good = orjson.dumps({"samples": [{"ts": _iso(T0_US + k * 1000), "value": k, "quality": 1}
                                     for k in range(3)]})
    mixed = orjson.dumps({"samples": [{"ts": _iso(T0_US), "value": "1.5"},
                                      {"ts": _iso(T0_US), "value": None}]})
    codec = _same_typed_as_orjson({"samples_path": "samples"}, [("a", good), ("b", mixed), ("c", b"{")])
    batch, out = decode(codec, [("a", good), ("b", mixed), ("c", b"{")])
    assert [r[:4] for r in rows(batch)] == [("a", T0_US + k * 1000, float(k), 1) for k in range(3)] + [
        ("b", T0_US, 1.5, 0)]
    assert rows(batch)[3][4] & int(QualityFlag.COERCED)
    assert sorted(d.reason for d in out.dead.items) == [Reason.TYPE_COERCION, Reason.UNDECODABLE]
