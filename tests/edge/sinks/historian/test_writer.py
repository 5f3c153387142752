"""The writer: every batch kind round trips row for row (COPY and INSERT paths, both flavors), a batch id is
stored once, errors are typed."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pytest

from edge.core.datamodel import CONTEXTUALIZED_SAMPLES, SAMPLES, batch_from_rows, samples_from_arrays
from edge.core.envelope import Envelope, batch_id_for
from edge.sinks.historian.errors import HistorianUnavailable, HistorianWriteError
from edge.sinks.historian.pgbinary import encode_copy
from edge.sinks.historian.settings import HistorianSettings
from edge.sinks.historian.tables import table_columns
from edge.sinks.historian.writer import HistorianWriter, probe_method
from tests.fixtures.historian_helpers import (
    SAMPLE_COLS,
    T0,
    context_batch,
    dead_letters_batch,
    events_batch,
    expected_rows,
    features_batch,
    insights_batch,
    same,
    samples_batch,
    stored_rows,
    us,
)
from tests.fixtures.historian_helpers import historian as historian  # fixture

SETTINGS = HistorianSettings.model_validate({})


def _methods(flavor: str) -> list[str]:
    return ["copy", "insert"] if flavor == "postgres" else ["insert"]  # PGlite has no COPY


def _clear(conn: psycopg.Connection[Any]) -> None:
    for t in ("samples", "features", "insights", "events", "dead_letters", "ingest_ledger"):
        conn.execute(f"DELETE FROM {t}")


def test_probe_method_recognises_pglite() -> None:
    pglite = "PostgreSQL 17.5 on aarch64-unknown-linux-gnu, compiled by emcc (Emscripten gcc/clang-like)"
    assert probe_method(pglite) == "insert"
    assert probe_method("PostgreSQL 15.20 (Debian 15.20-0+deb12u1) on x86_64-pc-linux-gnu") == "copy"


def test_auto_probe_picks_copy_on_postgres_and_insert_on_pglite(
        historian: tuple[psycopg.Connection[Any], str]) -> None:
    conn, flavor = historian
    w = HistorianWriter(SETTINGS, conn=conn)
    assert w.method is None
    assert w.write_sync(Envelope("samples", samples_batch(10), "probe"))
    assert w.method == ("copy" if flavor == "postgres" else "insert")


def test_samples_round_trip_row_by_row(historian: tuple[psycopg.Connection[Any], str]) -> None:
    conn, flavor = historian
    for method in _methods(flavor):
        _clear(conn)
        w = HistorianWriter(SETTINGS, conn=conn, write_method=method)  # type: ignore[arg-type]
        plain = samples_batch(2000)
        ctx = context_batch()
        assert w.write_sync(Envelope("samples", plain, f"plain-{method}"))
        assert w.write_sync(Envelope("samples", ctx, f"ctx-{method}"))
        want = sorted(expected_rows(plain, SAMPLE_COLS) + expected_rows(ctx, SAMPLE_COLS), key=repr)
        got = stored_rows(conn, "samples", SAMPLE_COLS)
        got = sorted(got, key=repr)
        assert len(got) == 2012
        assert same(got, want), method
        # NULLs stayed NULLs, empty strings stayed empty strings, context of plain samples is NULL
        assert conn.execute("SELECT count(*) FROM samples WHERE value IS NULL").fetchone() == (400 + 3,)
        assert conn.execute("SELECT count(*) FROM samples WHERE batch = ''").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM samples WHERE asset IS NULL").fetchone() == (2000 + 1,)
        assert w.rows_written == 2012


def test_other_kinds_round_trip(historian: tuple[psycopg.Connection[Any], str]) -> None:
    conn, flavor = historian
    for method in _methods(flavor):
        _clear(conn)
        w = HistorianWriter(SETTINGS, conn=conn, write_method=method)  # type: ignore[arg-type]
        ev, dl, ins, feat = events_batch(), dead_letters_batch(), insights_batch(), features_batch()
        assert w.write_sync(Envelope("events", ev, "ev"))
        assert w.write_sync(Envelope("dead_letters", dl, "dl"))
        assert w.write_sync(Envelope("insights", ins, "ins"))
        assert w.write_sync(Envelope("features", feat, "feat"))

        cols = ["ts", "kind", "source", "asset", "message"]
        assert stored_rows(conn, "events", cols) == expected_rows(ev, cols)
        details = [r[0] for r in conn.execute("SELECT detail FROM events ORDER BY ts").fetchall()]
        assert details == [None, {"tag": "t1", "n": 3}, {"nested": {"a": [1, 2]}}]

        cols = ["ts", "source", "tag", "reason", "detail", "payload"]
        assert stored_rows(conn, "dead_letters", cols) == expected_rows(dl, cols)

        cols = ["insight_id", "ts", "asset", "model", "model_version", "model_sha256", "score", "threshold",
                "severity", "window_start", "window_end", "quality_flags", "gated"]
        assert stored_rows(conn, "insights", cols) == expected_rows(ins, cols)
        extra = conn.execute("SELECT insight_id, top_features, context, revised, revision FROM insights "
                             "ORDER BY insight_id").fetchall()
        assert extra[0] == ("ins-0", [{"feature": "rms", "contribution": 0.5}],
                            {"work_order": "WO-1", "batch": "B0"}, False, 0)
        assert extra[2][2] is None

        rows = conn.execute("SELECT window_start, asset, n_samples, good_fraction, flags, features "
                            "FROM features "
                            "ORDER BY window_start").fetchall()
        assert [(r[0], r[1], r[2], r[3], r[4]) for r in rows] == [
            (us(T0), "site/l1/m1", 100, 1.0, 0), (us(T0 + 10_000_000), "site/l1/m2", 90, 0.9, 4)]
        assert rows[0][5] == {"rms": 1.5, "kurtosis": None, "band_1": 0.25}
        assert rows[1][5] == {"rms": 2.5, "kurtosis": 3.0, "band_1": None}  # NaN has no JSON form


def test_same_batch_twice_is_stored_once(historian: tuple[psycopg.Connection[Any], str]) -> None:
    conn, flavor = historian
    for method in _methods(flavor):
        _clear(conn)
        w = HistorianWriter(SETTINGS, conn=conn, write_method=method)  # type: ignore[arg-type]
        batch = samples_batch(500)
        bid = batch_id_for("src", 1, 500)
        assert w.write_sync(Envelope("samples", batch, bid)) is True
        assert w.write_sync(Envelope("samples", batch, bid)) is False
        # a second writer (as after a restart) recognises it too
        assert HistorianWriter(SETTINGS, conn=conn, write_method=method).write_sync(  # type: ignore[arg-type]
            Envelope("samples", batch, bid)) is False
        assert conn.execute("SELECT count(*) FROM samples").fetchone() == (500,)
        ledger = conn.execute("SELECT batch_id, kind, rows FROM ingest_ledger").fetchall()
        assert ledger == [(bid, "samples", 500)]
        assert w.batches_skipped == 1
        # insights re-emitted in another batch are not duplicated either
        assert w.write_sync(Envelope("insights", insights_batch(3), "i1"))
        assert w.write_sync(Envelope("insights", insights_batch(4), "i2"))
        assert conn.execute("SELECT count(*) FROM insights").fetchone() == (4,)


def test_failed_batch_leaves_no_ledger_row(historian: tuple[psycopg.Connection[Any], str]) -> None:
    conn, flavor = historian
    for method in _methods(flavor):
        _clear(conn)
        w = HistorianWriter(SETTINGS, conn=conn, write_method=method)  # type: ignore[arg-type]
        bad = events_batch()
        bad = bad.set_column(5, "detail", pa.array(["{not json", None, None], pa.string()))
        with pytest.raises(HistorianWriteError, match="events batch bad"):
            w.write_sync(Envelope("events", bad, "bad"))
        assert conn.execute("SELECT count(*) FROM ingest_ledger").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (0,)
        # the connection is still usable and the corrected batch goes through under the same id
        assert w.write_sync(Envelope("events", events_batch(), "bad"))


def test_batch_validation_errors() -> None:
    with pytest.raises(HistorianWriteError, match="unknown batch kind"):
        table_columns("nope", samples_batch(1))
    no_tag = samples_batch(3).drop_columns(["tag"])
    with pytest.raises(HistorianWriteError, match="lacks required column"):
        table_columns("samples", no_tag)


def test_copy_stream_matches_psycopg_encoding(pg_dsn: str) -> None:
    """The numpy-built COPY stream loads the same rows as psycopg's own row-by-row binary COPY."""
    batch = context_batch()
    _, columns = table_columns("samples", batch)
    ddl = ("CREATE TABLE t (ts timestamptz, recv_ts timestamptz, tag text, value float8, quality int2, "
           "flags int4, source text, asset text, measure text, unit text, work_order text, product text, "
           "batch text, shift text)")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(ddl)
        conn.execute(ddl.replace("TABLE t", "TABLE u"))
        with conn.cursor() as cur, cur.copy("COPY t FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(encode_copy(columns, batch.num_rows))
        rows = expected_rows(batch, SAMPLE_COLS)
        with conn.cursor() as cur, cur.copy("COPY u FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["timestamptz", "timestamptz", "text", "float8", "int2", "int4"] + ["text"] * 8)
            for r in rows:
                copy.write_row(r)
        diff = conn.execute("SELECT count(*) FROM (SELECT * FROM t EXCEPT ALL SELECT * FROM u) x").fetchone()
        assert diff == (0,)
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (12,)


def test_copy_of_sliced_and_chunked_arrays(pg_dsn: str) -> None:
    """Arrow slices (non-zero offsets), chunk boundaries and a NULL dictionary index."""
    from edge.sinks.historian.pgbinary import CopyEncoder

    big = samples_batch(5000).slice(1234, 3000)
    tag = big.column("tag")
    idx = pa.array([None if i % 7 == 0 else i % 3 for i in range(3000)], pa.int32())
    nullable_tag = pa.DictionaryArray.from_arrays(idx, pa.array(["x", "yy", "zzz"]))
    _, columns = table_columns("samples", big)
    columns[2] = (tag, "text")
    columns[7] = (nullable_tag, "text")  # asset
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (ts timestamptz, recv_ts timestamptz, tag text, value float8, "
                     "quality int2, flags int4, source text, asset text, measure text, unit text, "
                     "work_order text, product text, batch text, shift text)")
        enc = CopyEncoder(columns, 3000, chunk_rows=777)
        with conn.cursor() as cur, cur.copy("COPY t FROM STDIN (FORMAT BINARY)") as copy:
            for part in enc.chunks():
                copy.write(part)
        got = conn.execute("SELECT ts, tag, value, asset FROM t").fetchall()
        assert len(got) == 3000
        want_ts = [us(v) for v in big.column("ts").cast(pa.int64()).to_pylist()]
        assert sorted(r[0] for r in got) == sorted(want_ts)
        assert [r[1] for r in got] == big.column("tag").to_pylist()
        vals = big.column("value").to_pylist()
        assert [r[2] for r in got] == vals
        assert [r[3] for r in got] == nullable_tag.to_pylist()


def test_plain_string_and_non_dictionary_columns(pg_dsn: str) -> None:
    """Samples whose tag/source are plain strings (not dictionary) and a value column without NULLs."""
    rows = [{"ts": T0 + i, "recv_ts": T0 + i, "tag": "t" * (i % 5), "value": float(i), "quality": 0,
             "flags": 0, "source": "s"} for i in range(50)]
    schema = pa.schema([f if f.name not in ("tag", "source") else pa.field(f.name, pa.string())
                        for f in SAMPLES])
    batch = pa.RecordBatch.from_pylist(rows, schema=schema)
    from edge.sinks.historian.admin import init_historian

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        init_historian(conn, SETTINGS)
        w = HistorianWriter(SETTINGS, conn=conn)
        assert w.write_sync(Envelope("samples", batch, "plain-strings"))
        assert same(stored_rows(conn, "samples", SAMPLE_COLS), expected_rows(batch, SAMPLE_COLS))


async def test_async_writer_round_trip_and_reconnect(pg_dsn: str) -> None:
    from edge.sinks.historian.admin import init_historian

    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        init_historian(admin, SETTINGS)
    w = HistorianWriter(SETTINGS, dsn=pg_dsn)
    n = 60_000  # above THREAD_ROWS: encoded in a worker thread
    ts = T0 + np.arange(n, dtype=np.int64)
    batch = samples_from_arrays(ts, pa.array(np.array(["a", "b", "c"])[np.arange(n) % 3]), np.arange(n) * 0.5,
                                source="s")
    assert await w.write(Envelope("samples", batch, "a1"))
    assert await w.write(Envelope("samples", batch, "a1")) is False
    assert w.method == "copy"
    # kill the writer's session: the next write raises HistorianUnavailable, the one after reconnects
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    small = context_batch()
    with pytest.raises(HistorianUnavailable):
        await w.write(Envelope("samples", small, "a2"))
    assert await w.write(Envelope("samples", small, "a2"))
    await w.close()
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        assert admin.execute("SELECT count(*) FROM samples").fetchone() == (n + 12,)
        assert admin.execute("SELECT count(*) FROM ingest_ledger").fetchone() == (2,)


def test_sync_writer_unreachable_server_is_unavailable() -> None:
    from tests.fixtures.services import free_port

    w = HistorianWriter(HistorianSettings.model_validate({"write_timeout_s": 2}),
                        dsn=f"postgresql://edge_writer@127.0.0.1:{free_port()}/nowhere")
    with pytest.raises(HistorianUnavailable, match="cannot connect"):
        w.write_sync(Envelope("samples", samples_batch(3), "x"))


async def test_async_unreachable_server_is_unavailable() -> None:
    from tests.fixtures.services import free_port

    w = HistorianWriter(HistorianSettings.model_validate({"write_timeout_s": 2}),
                        dsn=f"postgresql://edge_writer@127.0.0.1:{free_port()}/nowhere")
    with pytest.raises(HistorianUnavailable):
        await asyncio.wait_for(w.write(Envelope("events", events_batch(), "x")), 20)


def test_contextualized_schema_is_accepted_with_all_context_null(pg_dsn: str) -> None:
    from edge.sinks.historian.admin import init_historian

    rows = [{"ts": T0, "recv_ts": T0, "tag": "a", "value": 1.0, "quality": 0, "flags": 0, "source": "s",
             "asset": None, "measure": None, "unit": None, "work_order": None, "product": None, "batch": None,
             "shift": None}]
    batch = batch_from_rows(rows, CONTEXTUALIZED_SAMPLES)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        init_historian(conn, SETTINGS)
        assert HistorianWriter(SETTINGS, conn=conn).write_sync(Envelope("samples", batch, "c"))
        assert stored_rows(conn, "samples", SAMPLE_COLS) == expected_rows(batch, SAMPLE_COLS)
        assert json.dumps(conn.execute("SELECT count(*) FROM samples").fetchone()) == "[1]"


def test_sync_writer_reconnects_after_broken_connection(pg_dsn: str) -> None:
    from edge.sinks.historian.admin import init_historian

    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        init_historian(admin, SETTINGS)
    w = HistorianWriter(SETTINGS, dsn=pg_dsn)
    assert w.write_sync(Envelope("events", events_batch(), "s1"))
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    with pytest.raises(HistorianUnavailable):
        w.write_sync(Envelope("samples", samples_batch(10), "s2"))
    assert w.write_sync(Envelope("samples", samples_batch(10), "s2"))
    assert w.write_sync(Envelope("samples", samples_batch(10), "s2")) is False
    w.close_sync()
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        assert admin.execute("SELECT count(*) FROM samples").fetchone() == (10,)
