"""Typed read queries over the historian; the same SQL runs on TimescaleDB and on plain PostgreSQL.

Every function takes an open psycopg connection (``edge_reader`` is enough) and returns frozen dataclasses.
Times are timezone-aware ``datetime`` in UTC. ``samples_1m`` / ``samples_1h`` (columns ``bucket, tag,
min_value, max_value, avg_value, n``) are a continuous aggregate on TimescaleDB and a materialized view on
plain PostgreSQL: both hold what was last refreshed (``edge.sinks.historian.admin.refresh_aggregates``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg import sql

Conn = psycopg.Connection[Any]


@dataclass(frozen=True)
class LatestValue:
    tag: str
    ts: datetime
    value: float | None
    quality: int
    asset: str | None
    unit: str | None


@dataclass(frozen=True)
class SamplePoint:
    ts: datetime
    value: float | None
    quality: int
    flags: int


@dataclass(frozen=True)
class AggregatePoint:
    bucket: datetime
    tag: str
    min_value: float | None
    max_value: float | None
    avg_value: float | None
    n: int


@dataclass(frozen=True)
class InsightRow:
    insight_id: str
    ts: datetime
    asset: str
    model: str
    model_version: str
    score: float | None
    threshold: float
    severity: str
    window_start: datetime
    window_end: datetime
    top_features: Any  # decoded JSON
    context: Any  # decoded JSON
    quality_flags: int
    gated: bool
    revised: bool
    revision: int


@dataclass(frozen=True)
class EventRow:
    ts: datetime
    kind: str
    source: str
    asset: str | None
    message: str
    detail: Any  # decoded JSON


Cond = tuple[str, list[Any]] | None  # a condition and its parameters; None: no condition


def _where(*conds: Cond) -> tuple[sql.Composable, list[Any]]:
    """`` WHERE a AND b ...`` of the given conditions (None ones left out) and their parameters in order."""
    given = [c for c in conds if c is not None]
    params = [p for _, ps in given for p in ps]
    if not given:
        return sql.SQL(""), params
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(sql.SQL(text) for text, _ in given), params


def _since(since: datetime | None) -> Cond:
    return None if since is None else ("ts >= %s", [since])


def latest_values(
    conn: Conn, tags: Sequence[str] | None = None, since: datetime | None = None
) -> list[LatestValue]:
    """The newest sample of each tag (of ``tags``, or all), looking back to ``since`` (None: all time —
    give a bound on big tables so time partitions / chunks are pruned)."""
    where, params = _where(None if tags is None else ("tag = ANY(%s)", [list(tags)]), _since(since))
    q = sql.SQL("SELECT DISTINCT ON (tag) tag, ts, value, quality, asset, unit FROM samples{} "
                "ORDER BY tag, ts DESC").format(where)
    return [LatestValue(str(r[0]), r[1], r[2], int(r[3]), r[4], r[5]) for r in conn.execute(q, params)]


def samples_range(conn: Conn, tag: str, start: datetime, end: datetime,
                  limit: int | None = None) -> list[SamplePoint]:
    """Samples of ``tag`` with ``start <= ts < end``, oldest first."""
    q = "SELECT ts, value, quality, flags FROM samples WHERE tag = %s AND ts >= %s AND ts < %s ORDER BY ts"
    params: list[Any] = [tag, start, end]
    if limit is not None:
        q += " LIMIT %s"
        params.append(limit)
    return [SamplePoint(r[0], r[1], int(r[2]), int(r[3])) for r in conn.execute(q, params)]


def aggregates(conn: Conn, tags: Sequence[str] | None, start: datetime, end: datetime,
               resolution: Literal["1m", "1h"] = "1m") -> list[AggregatePoint]:
    """Per-bucket min, max, avg and count of ``tags`` (None: all) from ``samples_1m`` or ``samples_1h``,
    buckets with ``start <= bucket < end``, ordered by tag then bucket."""
    view = {"1m": "samples_1m", "1h": "samples_1h"}.get(resolution)
    if view is None:
        raise ValueError(f"resolution must be '1m' or '1h', got {resolution!r}")
    where, params = _where(("bucket >= %s", [start]), ("bucket < %s", [end]),
                           None if tags is None else ("tag = ANY(%s)", [list(tags)]))
    q = sql.SQL("SELECT bucket, tag, min_value, max_value, avg_value, n FROM {}{} "
                "ORDER BY tag, bucket").format(sql.Identifier(view), where)
    return [AggregatePoint(r[0], str(r[1]), r[2], r[3], r[4], int(r[5])) for r in conn.execute(q, params)]


def recent_insights(conn: Conn, asset: str | None = None, since: datetime | None = None,
                    limit: int = 100) -> list[InsightRow]:
    """Newest insights first (of ``asset`` and its sub-assets when given: ``asset`` or ``asset/...``)."""
    where, params = _where(
        None if asset is None else ("(asset = %s OR asset LIKE %s)", [asset, asset.rstrip("/") + "/%"]),
        _since(since))
    q = sql.SQL(
        "SELECT insight_id, ts, asset, model, model_version, score, threshold, severity, window_start, "
        "window_end, top_features, context, quality_flags, gated, revised, revision FROM insights{} "
        "ORDER BY ts DESC, insight_id LIMIT %s").format(where)
    params.append(limit)
    return [InsightRow(*r) for r in conn.execute(q, params)]


def recent_events(conn: Conn, kind: str | None = None, since: datetime | None = None,
                  limit: int = 100) -> list[EventRow]:
    """Newest events first, optionally of one ``kind`` (``edge.core.datamodel.EventKind``)."""
    where, params = _where(None if kind is None else ("kind = %s", [str(kind)]), _since(since))
    q = sql.SQL("SELECT ts, kind, source, asset, message, detail FROM events{} "
                "ORDER BY ts DESC, message LIMIT %s").format(where)
    params.append(limit)
    return [EventRow(*r) for r in conn.execute(q, params)]


def dead_letter_counts(conn: Conn, since: datetime | None = None) -> dict[str, int]:
    """Number of dead letters per reason (since ``since``), largest first."""
    where, params = _where(_since(since))
    q = sql.SQL("SELECT reason, count(*) FROM dead_letters{} GROUP BY reason ORDER BY 2 DESC, 1").format(
        where)
    return {str(r[0]): int(r[1]) for r in conn.execute(q, params)}
