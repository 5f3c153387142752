"""Shared helpers of the MES tests (no tests here): a historian schema in a fresh database, events, rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg

from contextualize.mes_events import MesEvent, decode_event

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
LINE = "acme/plant1/packaging/line2"
EQ1 = f"{LINE}/cell1/filler"
EQ2 = f"{LINE}/cell1/capper"
OTHER = "acme/plant1/packaging/line3/cell1/filler"


def migrate(dsn: str) -> None:
    """The historian's migrations (plain PostgreSQL flavor), 0010-0019 included."""
    from edge.historian.migrate import migrate as historian_migrate

    with psycopg.connect(dsn, autocommit=True) as conn:
        historian_migrate(conn, flavor="postgres")


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def iso(minutes: float) -> str:
    return at(minutes).isoformat().replace("+00:00", "Z")


def event(type_: str, minutes: float, scope: str = LINE, **fields: Any) -> MesEvent:
    return decode_event(payload(type_, minutes, scope, **fields))


def payload(type_: str, minutes: float, scope: str = LINE, **fields: Any) -> bytes:
    return orjson.dumps({"type": type_, "ts": iso(minutes), "scope": scope, **fields})


def insert_samples(dsn: str, rows: list[tuple[str, float]], tag: str = "t1") -> None:
    """rows: (asset, minutes after T0)."""
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO samples (ts, recv_ts, tag, value, quality, flags, source, asset, measure, unit) "
            "VALUES (%s, %s, %s, %s, 0, 0, 'test', %s, 'temperature', 'degC')",
            [
                (
                    at(m),
                    at(m),
                    tag,
                    float(n),
                    a,
                )
                for n, (a, m) in enumerate(rows)
            ],
        )


def insert_insights(dsn: str, rows: list[tuple[str, float]]) -> None:
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO insights (insight_id, ts, asset, model, model_version, model_sha256, score, "
            "threshold, "
            "severity, window_start, window_end, context, quality_flags, gated) "
            "VALUES (%s, %s, %s, 'm', '1', '', 0.5, 1.0, 'info', %s, %s, '{}', 0, false)",
            [(f"i{n}", at(m), a, at(m - 1), at(m)) for n, (a, m) in enumerate(rows)],
        )
