"""Shared pieces of the historian tests: batches with NULLs and dictionary columns, and reading rows back."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse, urlunparse

import numpy as np
import psycopg
import pyarrow as pa
import pytest

from edge.datamodel import (
    CONTEXTUALIZED_SAMPLES,
    DEAD_LETTERS,
    EVENTS,
    INSIGHTS,
    batch_from_rows,
    features_schema,
    samples_from_arrays,
)
from edge.historian.admin import init_historian
from edge.historian.settings import HistorianSettings

T0 = 1_700_000_000_000_000  # 2023-11-14T22:13:20Z in microseconds
SAMPLE_COLS = ["ts", "recv_ts", "tag", "value", "quality", "flags", "source", "asset", "measure", "unit",
               "work_order", "product", "batch", "shift"]


def us(t: int) -> datetime:
    return datetime.fromtimestamp(t / 1e6, UTC).replace(microsecond=t % 1_000_000)


def samples_batch(n: int = 1000, tags: int = 7, seed: int = 1) -> pa.RecordBatch:
    """A plain samples batch (dictionary tag/source), with some NULL values and odd floats."""
    rng = np.random.default_rng(seed)
    ts = T0 + np.arange(n, dtype=np.int64) * 1000 + rng.integers(0, 999, n)
    names = np.array([f"line{i % 2}/cell{i}/vib_ü{'x' * i}" for i in range(tags)])
    values = rng.normal(size=n)
    values[::11] = np.inf
    values[1::13] = -0.0
    values[2::17] = 1e308
    batch = samples_from_arrays(ts, pa.array(names[np.arange(n) % tags]), values, source="sim-α",
                                quality=rng.integers(0, 3, n), flags=rng.integers(0, 255, n),
                                recv_ts_us=ts + 5)
    # NULL values every 5th row
    mask = pa.array(np.arange(n) % 5 == 0)
    value = pa.compute.if_else(mask, pa.scalar(None, pa.float64()), batch.column("value"))
    return batch.set_column(3, "value", value)


def context_batch() -> pa.RecordBatch:
    rows: list[dict[str, Any]] = []
    for i in range(12):
        rows.append({
            "ts": T0 + i, "recv_ts": T0 + i + 7, "tag": f"t{i % 3}",
            "value": None if i % 4 == 0 else i * 0.5,
            "quality": i % 3, "flags": i, "source": "opcua" if i % 2 else "mqtt",
            "asset": None if i == 5 else f"site/area/line{i % 2}",
            "measure": "temperature" if i % 3 else None,
            "unit": "degC", "work_order": None if i < 6 else "WO-1", "product": "P'1\"x" if i % 2 else None,
            "batch": "" if i == 3 else f"B{i // 4}", "shift": None,
        })
    return batch_from_rows(rows, CONTEXTUALIZED_SAMPLES)


def insights_batch(n: int = 4, prefix: str = "ins") -> pa.RecordBatch:
    rows = []
    for i in range(n):
        rows.append({
            "insight_id": f"{prefix}-{i}", "ts": T0 + i * 1_000_000, "asset": f"site/line{i % 2}/m1",
            "model": "iforest", "model_version": "1.2.0", "model_sha256": "ab" * 32,
            "score": None if i == 1 else 0.25 * i, "threshold": 0.6,
            "severity": "warning" if i % 2 else "info",
            "window_start": T0 + i * 1_000_000 - 10_000_000, "window_end": T0 + i * 1_000_000,
            "top_features": json.dumps([{"feature": "rms", "contribution": 0.5 + i}]),
            "context": None if i == 2 else json.dumps({"work_order": "WO-1", "batch": f"B{i}"}),
            "quality_flags": i, "gated": i == 3,
        })
    return batch_from_rows(rows, INSIGHTS)


def events_batch() -> pa.RecordBatch:
    rows = [
        {"ts": T0 + 1, "kind": "connection", "source": "opcua", "asset": None, "message": "lost",
         "detail": None},
        {"ts": T0 + 2, "kind": "data_quality", "source": "gate", "asset": "site/l1", "message": "stuck",
         "detail": json.dumps({"tag": "t1", "n": 3})},
        {"ts": T0 + 3, "kind": "audit", "source": "cli", "asset": "site/l2", "message": "init ✓",
         "detail": json.dumps({"nested": {"a": [1, 2]}})},
    ]
    return batch_from_rows(rows, EVENTS)


def dead_letters_batch() -> pa.RecordBatch:
    rows = [
        {"ts": T0 + 1, "source": "mqtt", "tag": None, "reason": "decode", "detail": "bad json",
         "payload": b"\x00\xff{"},
        {"ts": T0 + 2, "source": "mqtt", "tag": "t1", "reason": "decode", "detail": None, "payload": None},
        {"ts": T0 + 3, "source": "opcua", "tag": "t2", "reason": "range", "detail": "x" * 300,
         "payload": b""},
    ]
    return batch_from_rows(rows, DEAD_LETTERS)


def features_batch() -> pa.RecordBatch:
    schema = features_schema(["rms", "kurtosis", "band_1"])
    rows = [
        {"window_start": T0, "window_end": T0 + 10_000_000, "asset": "site/l1/m1", "n_samples": 100,
         "good_fraction": 1.0, "flags": 0, "rms": 1.5, "kurtosis": None, "band_1": 0.25},
        {"window_start": T0 + 10_000_000, "window_end": T0 + 20_000_000, "asset": "site/l1/m2",
         "n_samples": 90,
         "good_fraction": 0.9, "flags": 4, "rms": 2.5, "kurtosis": 3.0, "band_1": float("nan")},
    ]
    return batch_from_rows(rows, schema)


def expected_rows(batch: pa.RecordBatch, columns: list[str]) -> list[tuple[Any, ...]]:
    """Rows of ``batch`` as Python tuples in ``columns`` order (missing columns: None), timestamps as UTC
    datetimes, sorted like :func:`stored_rows`."""
    names = set(batch.schema.names)
    cols = []
    for c in columns:
        if c in names:
            arr = batch.column(c)
            if pa.types.is_timestamp(arr.type):
                cols.append([None if v is None else us(v) for v in arr.cast(pa.int64()).to_pylist()])
            else:
                cols.append(arr.to_pylist())
        else:
            cols.append([None] * batch.num_rows)
    return sorted(zip(*cols, strict=True), key=_key)


def _key(row: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple(repr(v) for v in row)


def stored_rows(conn: psycopg.Connection[Any], table: str, columns: list[str]) -> list[tuple[Any, ...]]:
    rows = conn.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
    return sorted((tuple(_norm(v) for v in r) for r in rows), key=_key)


def _norm(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.astimezone(UTC)
    if isinstance(v, memoryview):
        return bytes(v)
    return v


def same(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> bool:
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b, strict=True):
        for va, vb in zip(ra, rb, strict=True):
            if isinstance(va, float) and isinstance(vb, float) and math.isnan(va) and math.isnan(vb):
                continue
            if va != vb or (isinstance(va, float) and math.copysign(1, va) != math.copysign(1, vb)):
                return False
    return True


@pytest.fixture(params=["postgres", pytest.param("timescaledb", marks=pytest.mark.timescale)])
def historian(request: pytest.FixtureRequest) -> Iterator[tuple[psycopg.Connection[Any], str]]:
    """An initialised historian on both flavors: (superuser autocommit connection, flavor)."""
    if request.param == "postgres":
        dsn = request.getfixturevalue("pg_dsn")
        with psycopg.connect(dsn, autocommit=True) as conn:
            init_historian(conn, HistorianSettings.model_validate({}), flavor="postgres")
            yield conn, "postgres"
    else:
        conn = request.getfixturevalue("timescale_conn")
        init_historian(conn, HistorianSettings.model_validate({}), flavor="timescaledb")
        yield conn, "timescaledb"


DENIED = (psycopg.errors.InsufficientPrivilege, psycopg.errors.DependentObjectsStillExist)


def as_user(dsn: str, user: str) -> str:
    """``dsn`` with ``user`` as the login (no password: trust auth in the tests)."""
    u = urlparse(dsn)
    return urlunparse(u._replace(netloc=f"{user}@{u.hostname}:{u.port or 5432}"))


def denied(c: psycopg.Connection[Any], statement: str) -> bool:
    """True if the server refuses ``statement`` for lack of privilege (rolled back either way)."""
    try:
        with c.transaction():
            c.execute(statement)
    except DENIED:
        return True
    return False
