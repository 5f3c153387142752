"""Insights written through the real historian writer for the suppression tests: alarm rows with chosen
leading features, so the database's matching (migration 0045) sees what the inference stage would send."""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pyarrow as pa

from edge.core.datamodel import INSIGHTS
from edge.core.envelope import Envelope
from edge.sinks.historian.writer import HistorianWriter


@dataclass(frozen=True)
class Row:
    ts: datetime
    features: Sequence[str]
    severity: str = "alarm"
    asset: str = "acme/plant1/line1/press1"
    model: str = "press"
    insight_id: str = ""


def insights_batch(rows: Sequence[Row]) -> pa.RecordBatch:
    """The rows as one INSIGHTS batch (what the inference stage emits), ids made where not given."""
    ids = [r.insight_id or uuid.uuid4().hex for r in rows]
    n = len(rows)

    def d(values: Sequence[str]) -> pa.Array:
        return pa.array(values, type=pa.string()).dictionary_encode().cast(INSIGHTS.field("asset").type)

    tops = [json.dumps([{"feature": f, "contribution": round(1.0 / (i + 1), 3)}
                        for i, f in enumerate(r.features)]) for r in rows]
    batch = pa.RecordBatch.from_arrays([
        pa.array(ids, type=pa.string()),
        pa.array([r.ts for r in rows], type=INSIGHTS.field("ts").type),
        d([r.asset for r in rows]), d([r.model for r in rows]), d(["1"] * n), d(["sha"] * n),
        pa.array([3.0] * n), pa.array([1.0] * n), d([r.severity for r in rows]),
        pa.array([r.ts - timedelta(seconds=10) for r in rows], type=INSIGHTS.field("ts").type),
        pa.array([r.ts for r in rows], type=INSIGHTS.field("ts").type),
        pa.array(tops, type=pa.string()), pa.array(["{}"] * n, type=pa.string()),
        pa.array([0] * n, type=pa.int32()), pa.array([False] * n),
    ], schema=INSIGHTS)
    return batch


def write_insights(dsn: str, rows: Sequence[Row], role: str | None = None) -> list[str]:
    """The rows as one insights batch through ``HistorianWriter``; their ids, in order."""
    batch = insights_batch(rows)
    ids: list[str] = batch.column("insight_id").to_pylist()
    writer = HistorianWriter(dsn=dsn)
    try:
        assert writer.write_sync(Envelope("insights", batch, uuid.uuid4().hex))
    finally:
        writer.close_sync()
    if role is not None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE insights SET role = %s WHERE insight_id = ANY(%s)", (role, ids))
    return ids


def label(dsn: str, insight_id: str, action: str = "false_alarm", who: str = "anna") -> int:
    """An engineer's label, as the TUI stores it; the feedback id."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT record_operator_feedback(%s, %s, %s, 'seen before')",
                           (insight_id, who, action)).fetchone()
    assert row is not None
    return int(row[0])


def flags(dsn: str, ids: Collection[str]) -> dict[str, tuple[Any, Any, bool]]:
    """Per insight id: (suppressed, suppression_id, still queued for MES)."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT i.insight_id, i.suppressed, i.suppression_id, o.seq IS NOT NULL FROM insights i "
            "LEFT JOIN insights_outbox o ON o.insight_id = i.insight_id AND o.ts = i.ts "
            "WHERE i.insight_id = ANY(%s)", (list(ids),)).fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}
