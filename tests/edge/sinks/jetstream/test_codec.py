from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from edge.core.datamodel import (
    CONTEXTUALIZED_SAMPLES,
    EVENTS,
    batch_from_rows,
    event_row,
    samples_from_arrays,
)
from edge.core.envelope import Envelope
from edge.sinks.jetstream.codec import (
    MSG_ID,
    data_stream,
    data_subject,
    decode,
    encode,
    fleet_stream,
    heartbeat_subject,
    insights_wildcard,
    site_batch_id,
    token,
)


def _samples(n: int = 500) -> pa.RecordBatch:
    return samples_from_arrays(np.arange(n) * 1000 + 1_700_000_000_000_000, [f"t{i % 7}" for i in range(n)],
                               np.random.default_rng(1).random(n), source="opcua-1")


@pytest.mark.parametrize("compression", ["none", "lz4", "zstd"])
def test_a_batch_round_trips_with_its_kind_and_site_wide_id(compression: str) -> None:
    batch = _samples()
    payload, headers = encode(Envelope("samples", batch, "abc"), "box-1", compression=compression)
    assert headers == {MSG_ID: "box-1.abc", "Fe-Kind": "samples", "Fe-Box": "box-1"}
    got = decode(payload)
    assert got.box == "box-1"
    assert got.envelope.kind == "samples"
    assert got.envelope.batch_id == site_batch_id("box-1", "abc") == "box-1.abc"
    assert got.envelope.batch.equals(batch)
    assert got.envelope.batch.schema.metadata is None


@pytest.mark.parametrize(("compression", "magic"), [("lz4", b"FEL4"), ("zstd", b"FEZS")])
def test_compressed_payload_is_one_frame_behind_its_magic_and_smaller(compression: str, magic: bytes) -> None:
    batch = _samples(2000)
    plain, _ = encode(Envelope("samples", batch, "x"), "b")
    packed, _ = encode(Envelope("samples", batch, "x"), "b", compression=compression)
    assert plain[:4] == b"\xff\xff\xff\xff"  # an Arrow IPC stream: never mistaken for a compressed one
    assert packed[:4] == magic and int.from_bytes(packed[4:12], "little") == len(plain)
    assert len(packed) < len(plain) / 2
    assert decode(packed).envelope.batch.equals(decode(plain).envelope.batch)
    with pytest.raises(ValueError):
        decode(packed[:-20])  # truncated: refused, not half read


def test_per_buffer_compressed_streams_of_earlier_boxes_still_decode() -> None:
    batch = _samples(100)
    meta = {"fe.kind": "samples", "fe.batch_id": "old.1", "fe.box": "old"}
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="lz4")
    with pa.ipc.new_stream(sink, batch.schema.with_metadata(meta), options=options) as w:
        w.write_batch(batch)
    got = decode(sink.getvalue().to_pybytes())
    assert got.box == "old" and got.envelope.batch_id == "old.1" and got.envelope.batch.equals(batch)


def test_contextualized_and_events_batches_keep_their_schema() -> None:
    batch = _samples(10)
    ctx = pa.RecordBatch.from_arrays(
        [*batch.columns, *[pa.nulls(10, f.type) for f in CONTEXTUALIZED_SAMPLES][len(batch.columns):]],
        schema=CONTEXTUALIZED_SAMPLES)
    assert decode(encode(Envelope("samples", ctx, "x"), "b")[0]).envelope.batch.schema.equals(
        CONTEXTUALIZED_SAMPLES)
    ev = batch_from_rows([event_row("audit", "hello", {"a": 1}, source="edge")], EVENTS)
    out = decode(encode(Envelope("events", ev, "e1"), "b")[0]).envelope
    assert out.kind == "events" and out.batch.to_pylist() == ev.to_pylist()


def test_arrow_is_smaller_than_json_per_sample() -> None:
    import json

    batch = _samples(10_000)
    payload, _ = encode(Envelope("samples", batch, "x"), "b", compression="lz4")
    as_json = sum(len(json.dumps(r, default=str)) for r in batch.to_pylist())
    assert len(payload) < as_json / 4


def test_subjects_are_one_token_per_level() -> None:
    assert data_subject("plant.a", "line 1", "box*1", "insights") == "fe.plant_a.data.line_1.box_1.insights"
    assert insights_wildcard("plant-a") == "fe.plant-a.data.*.*.insights"
    assert heartbeat_subject("plant-a", "b.1") == "fe.plant-a.fleet.heartbeat.b_1"
    assert data_stream("plant-a") == "FE_PLANT-A" and fleet_stream("p") == "FE_P_FLEET"
    assert token("") == "_"


def test_a_payload_without_its_batch_id_is_refused() -> None:
    sink = pa.BufferOutputStream()
    batch = _samples(3)
    with pa.ipc.new_stream(sink, batch.schema) as w:
        w.write_batch(batch)
    with pytest.raises(ValueError, match="batch_id"):
        decode(sink.getvalue().to_pybytes())
