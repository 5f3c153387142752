"""Historian writer benchmark: 1M samples from one Arrow batch through ``HistorianWriter`` against a raw
psycopg binary COPY of the same rows into the same table, in the same run.

    .venv/bin/python bench/bench_writer.py [--dsn DSN] [--rows 1000000] [--rounds 5]

``--dsn`` is a superuser DSN of a PostgreSQL server (default ``$FE_BENCH_PG_DSN``, else
``postgresql://postgres@127.0.0.1:5432/postgres``); the benchmark creates (and drops at the end) the
database ``fe_bench_writer`` there and initialises the historian in it (plain PostgreSQL flavor:
partitioned ``samples`` with BRIN index).

Both sides write the 14 columns of ``samples`` (context columns NULL) into the same table, which is
truncated before every run. Raw side: ``cursor.copy("COPY samples (...) FROM STDIN (FORMAT BINARY)")`` with
``set_types`` and ``write_row`` over rows already built as Python tuples (building them is not timed,
which favours the raw side). Writer side: ``HistorianWriter.write_sync(Envelope)`` from the Arrow batch,
timed in full (ledger row, encoding, COPY, commit). Runs alternate raw / writer for ``--rounds`` rounds
(other processes share these CPUs); medians are reported, with the ratio writer / raw.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse, urlunparse

import numpy as np
import psycopg
import pyarrow as pa

from edge.core.datamodel import samples_from_arrays
from edge.core.envelope import Envelope
from edge.sinks.historian.admin import init_historian
from edge.sinks.historian.pgbinary import CopyEncoder
from edge.sinks.historian.settings import HistorianSettings
from edge.sinks.historian.tables import TABLES, table_columns
from edge.sinks.historian.writer import HistorianWriter

DB = "fe_bench_writer"
COLUMNS = [c.name for c in TABLES["samples"].columns]
TYPES = [c.pg_type for c in TABLES["samples"].columns]


def with_db(dsn: str, db: str) -> str:
    return urlunparse(urlparse(dsn)._replace(path=f"/{db}"))


def make_batch(n: int, tags: int) -> pa.RecordBatch:
    rng = np.random.default_rng(7)
    start = int(time.time() * 1e6) - n * 1000
    ts = start + np.arange(n, dtype=np.int64) * 1000
    names = np.array([f"site/area/line{i % 4}/cell{i % 10}/machine{i}/vibration_rms" for i in range(tags)])
    return samples_from_arrays(ts, pa.array(names[np.arange(n) % tags]), rng.normal(size=n),
                               source="opcua", quality=np.zeros(n, np.int16), flags=np.zeros(n, np.int32),
                               recv_ts_us=ts + 250)


def python_rows(batch: pa.RecordBatch) -> list[tuple[Any, ...]]:
    cols: list[list[Any]] = []
    for name in COLUMNS:
        if name in batch.schema.names:
            cols.append(batch.column(name).to_pylist())
        else:
            cols.append([None] * batch.num_rows)
    return list(zip(*cols, strict=True))


def truncate(conn: psycopg.Connection[Any]) -> None:
    conn.execute("TRUNCATE samples, ingest_ledger")


def raw_copy(conn: psycopg.Connection[Any], rows: list[tuple[Any, ...]]) -> float:
    t = time.perf_counter()
    stmt = f"COPY samples ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)"
    with conn.transaction(), conn.cursor() as cur, cur.copy(stmt) as copy:
        copy.set_types(TYPES)
        for row in rows:
            copy.write_row(row)
    return time.perf_counter() - t


def writer_copy(writer: HistorianWriter, batch: pa.RecordBatch, batch_id: str) -> float:
    t = time.perf_counter()
    assert writer.write_sync(Envelope("samples", batch, batch_id))
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--dsn", default=os.environ.get("FE_BENCH_PG_DSN",
                                                    "postgresql://postgres@127.0.0.1:5432/postgres"))
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--tags", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args(argv)

    with psycopg.connect(args.dsn, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DB}")
    dsn = with_db(args.dsn, DB)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            init_historian(conn, HistorianSettings.model_validate({}), flavor="postgres")
            server = str((conn.execute("SELECT version()").fetchone() or ("?",))[0])
            batch = make_batch(args.rows, args.tags)
            rows = python_rows(batch)
            writer = HistorianWriter(HistorianSettings.model_validate({}), conn=conn)
            raw_s: list[float] = []
            writer_s: list[float] = []
            encode_s: list[float] = []
            # warm-up (not counted): one small write each way
            truncate(conn)
            raw_copy(conn, rows[:10_000])
            writer_copy(writer, batch.slice(0, 10_000), "warmup")
            for r in range(args.rounds):
                truncate(conn)
                raw_s.append(raw_copy(conn, rows))
                truncate(conn)
                writer_s.append(writer_copy(writer, batch, f"bench-{r}"))
                count = conn.execute("SELECT count(*) FROM samples").fetchone()
                assert count == (args.rows,), count
                _, cols = table_columns("samples", batch)
                t = time.perf_counter()
                for _part in CopyEncoder(cols, batch.num_rows).chunks():
                    pass
                encode_s.append(time.perf_counter() - t)
            assert writer.method == "copy"
    finally:
        with psycopg.connect(args.dsn, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")

    raw_med, writer_med, enc_med = (statistics.median(x) for x in (raw_s, writer_s, encode_s))
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "server": server,
        "rows": args.rows,
        "tags": args.tags,
        "rounds": args.rounds,
        "raw_copy_s": [round(x, 3) for x in raw_s],
        "writer_s": [round(x, 3) for x in writer_s],
        "writer_encode_only_s": [round(x, 3) for x in encode_s],
        "raw_copy_rows_per_s": round(args.rows / raw_med),
        "writer_rows_per_s": round(args.rows / writer_med),
        "writer_encode_only_rows_per_s": round(args.rows / enc_med),
        "ratio_writer_to_raw": round(raw_med / writer_med, 2),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"server: {server}")
        print(f"{args.rows:,} samples, {args.tags} tags, {args.rounds} interleaved rounds, medians "
              f"(load average {result['load_avg_1m']})")
        print("| path | median s | rows/s |")
        print("| --- | --- | --- |")
        print(f"| raw psycopg binary COPY (write_row, prebuilt tuples) | {raw_med:.3f} | "
              f"{result['raw_copy_rows_per_s']:,} |")
        print(f"| HistorianWriter.write_sync (Arrow in, ledger, COPY) | {writer_med:.3f} | "
              f"{result['writer_rows_per_s']:,} |")
        print(f"| (writer's encoding alone, no server) | {enc_med:.3f} | "
              f"{result['writer_encode_only_rows_per_s']:,} |")
        print(f"ratio writer / raw: {result['ratio_writer_to_raw']} (target >= 0.7)")
        print(f"raw runs: {result['raw_copy_s']}; writer runs: {result['writer_s']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
