"""The on-disk spool: durable, ordered, bounded, and never broken by a torn segment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from edge.core.datamodel import EVENTS, batch_from_rows, samples_from_arrays, utcnow
from edge.core.envelope import Envelope, batch_id_for
from edge.core.metrics import Metrics
from edge.core.settings import SpoolSettings
from edge.sinks.historian.spool import Spool, SpoolFull


def samples(i: int, n: int = 100) -> Envelope:
    ts = np.arange(n, dtype=np.int64) + i * n
    tags = [f"tag-{(i + k) % 7}" for k in range(n)]
    batch = samples_from_arrays(ts, tags, ts.astype(np.float64) * 0.5, source=f"src-{i % 3}")
    return Envelope("samples", batch, batch_id_for("test", i))


def settings(tmp_path: Path, **kw: Any) -> SpoolSettings:
    return SpoolSettings(dir=tmp_path / "spool", **kw)


def drain(spool: Spool) -> list[Envelope]:
    out: list[Envelope] = []
    while (seg := spool.oldest()) is not None:
        out.extend(seg.read())
        spool.remove(seg)
    return out


def test_replays_in_order_after_reopen(tmp_path: Path) -> None:
    sent = [samples(i) for i in range(30)]
    spool = Spool(settings(tmp_path, segment_bytes=1 << 16), metrics=Metrics()).open()
    for env in sent:
        spool.append(env)
    ev = Envelope("events", batch_from_rows([{"ts": utcnow(), "kind": "spool", "source": "t",
                                              "message": "m", "detail": None}], EVENTS), "ev1")
    spool.append(ev)
    spool.append(samples(30))
    assert spool.segment_count >= 3  # rolled by size, and by kind
    spool.close()  # like a process that stops; nothing is lost

    again = Spool(settings(tmp_path, segment_bytes=1 << 16), metrics=Metrics()).open()
    assert again.rows == 30 * 100 + 1 + 100
    got = drain(again)
    assert [e.batch_id for e in got] == [e.batch_id for e in sent] + ["ev1", samples(30).batch_id]
    assert [e.kind for e in got][-2:] == ["events", "samples"]
    for a, b in zip(sent, got, strict=False):
        assert a.batch.to_pylist() == b.batch.to_pylist()
        assert b.batch.schema.equals(a.batch.schema)
    assert again.empty() and again.bytes == 0
    assert list((tmp_path / "spool").glob("*.arrow")) == []


def test_torn_last_segment_keeps_whole_batches(tmp_path: Path) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    spool = Spool(settings(tmp_path), metrics=Metrics()).open()
    for i in range(5):
        spool.append(samples(i))
    # A crash in the middle of the sixth write: the file ends in half a message.
    seg = sorted((tmp_path / "spool").glob("*.arrow"))[-1]
    spool.append(samples(5))
    size = seg.stat().st_size
    spool.close()
    with seg.open("r+b") as fh:
        fh.truncate(size - 100)

    again = Spool(settings(tmp_path), metrics=Metrics(), on_event=lambda m, d: events.append((m, d))).open()
    assert any("torn" in m for m, _ in events)
    got = drain(again)
    assert [e.batch_id for e in got] == [samples(i).batch_id for i in range(5)]


def test_garbage_segment_is_removed_with_an_event(tmp_path: Path) -> None:
    d = tmp_path / "spool"
    d.mkdir()
    (d / f"{7:016d}.arrow").write_bytes(b"\x00\x01not arrow at all")
    (d / "junk.tmp").write_bytes(b"x")
    events: list[str] = []
    spool = Spool(settings(tmp_path), metrics=Metrics(), on_event=lambda m, d: events.append(m)).open()
    assert spool.empty()
    assert events and "unreadable" in events[0]
    spool.append(samples(1))  # numbering continues after what was found
    assert (d / f"{8:016d}.arrow").exists()


def test_refuse_new_when_full(tmp_path: Path) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    m = Metrics()
    spool = Spool(settings(tmp_path, max_bytes=1 << 20, when_full="refuse_new"), metrics=m,
                  on_event=lambda msg, d: events.append((msg, d))).open()
    accepted = 0
    with pytest.raises(SpoolFull):
        for i in range(10_000):
            spool.append(samples(i, 2000))
            accepted += 1
    assert spool.bytes <= 1 << 20
    with pytest.raises(SpoolFull):  # still full, and still only one event for the episode
        spool.append(samples(99_999, 2000))
    full = [msg for msg, _ in events if "full" in msg]
    assert full == ["spool full; refusing new data (sources are held back)"]
    assert m.get("spool", "full", "refuse_new") == 1
    got = drain(spool)  # what was accepted is intact
    assert [e.batch_id for e in got] == [samples(i, 2000).batch_id for i in range(accepted)]


def test_drop_oldest_when_full(tmp_path: Path) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    m = Metrics()
    spool = Spool(settings(tmp_path, max_bytes=1 << 20, when_full="drop_oldest", segment_bytes=1 << 17),
                  metrics=m, on_event=lambda msg, d: events.append((msg, d))).open()
    n = 200
    for i in range(n):
        spool.append(samples(i, 2000))
        assert spool.bytes <= 1 << 20
    assert [msg for msg, _ in events] == ["spool full; dropping the oldest segments"]  # one per episode
    assert m.get("spool", "full", "drop_oldest") == 1
    got = drain(spool)
    ids = [e.batch_id for e in got]
    # what is left is the newest tail, contiguous and in order
    first = [samples(i, 2000).batch_id for i in range(n)].index(ids[0])
    assert ids == [samples(i, 2000).batch_id for i in range(first, n)]
    assert m.get("spool", "dropped") == first * 2000
    assert events[-1][0] == "spool no longer dropping data"  # drained: the episode ends with its totals
    assert events[-1][1]["dropped_rows"] == first * 2000


def test_batch_bigger_than_the_spool_is_refused(tmp_path: Path) -> None:
    spool = Spool(settings(tmp_path, max_bytes=1 << 20, when_full="drop_oldest"), metrics=Metrics()).open()
    spool.append(samples(0))
    big = samples(1, 200_000)
    with pytest.raises(SpoolFull):
        spool.append(big)
    assert [e.batch_id for e in drain(spool)] == [samples(0).batch_id]


def test_dictionary_batches_with_other_dictionaries_share_a_segment(tmp_path: Path) -> None:
    spool = Spool(settings(tmp_path), metrics=Metrics()).open()
    a = samples_from_arrays([1, 2], pa.array(["x", "y"]), [1.0, 2.0], source="s")
    b = samples_from_arrays([3], pa.array(["z"]), [3.0], source="t")
    spool.append(Envelope("samples", a, "a"))
    spool.append(Envelope("samples", b, "b"))
    assert spool.segment_count == 1
    got = drain(spool)
    assert got[0].batch.column("tag").to_pylist() == ["x", "y"]
    assert got[1].batch.column("tag").to_pylist() == ["z"]
    assert got[1].batch.column("source").to_pylist() == ["t"]
