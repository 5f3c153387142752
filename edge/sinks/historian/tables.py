"""The historian tables the writer fills, their columns and types, and how a batch maps onto them.

One :class:`TableSpec` per batch kind. A table column missing from the batch is written as NULL unless the
kind requires it; the feature columns of a features batch become one JSON object per row (feature sets differ
per model and need no schema change).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import pyarrow as pa

from edge.core.datamodel import FEATURE_KEY_FIELDS
from edge.sinks.historian.errors import HistorianWriteError


@dataclass(frozen=True)
class Column:
    name: str  # table column
    pg_type: str  # timestamptz, float8, int2, int4, bool, text, jsonb, bytea
    source: str | None = None  # Arrow column (default: same name); missing in the batch = NULL


@dataclass(frozen=True)
class TableSpec:
    table: str
    columns: tuple[Column, ...]
    conflict_free: bool = False  # True: always INSERT ... ON CONFLICT DO NOTHING (no COPY)


def _cols(*spec: str) -> tuple[Column, ...]:
    out = []
    for item in spec:
        name, pg_type = item.split(":")
        out.append(Column(name, pg_type))
    return tuple(out)


TABLES: dict[str, TableSpec] = {
    "samples": TableSpec("samples", _cols(
        "ts:timestamptz", "recv_ts:timestamptz", "tag:text", "value:float8", "quality:int2", "flags:int4",
        "source:text", "asset:text", "measure:text", "unit:text", "work_order:text", "product:text",
        "batch:text", "shift:text")),
    "features": TableSpec("features", _cols(
        "window_start:timestamptz", "window_end:timestamptz", "asset:text", "n_samples:int4",
        "good_fraction:float8", "flags:int4", "features:jsonb")),
    "insights": TableSpec("insights", _cols(
        "insight_id:text", "ts:timestamptz", "asset:text", "model:text", "model_version:text",
        "model_sha256:text", "score:float8", "threshold:float8", "severity:text", "window_start:timestamptz",
        "window_end:timestamptz", "top_features:jsonb", "context:jsonb", "quality_flags:int4", "gated:bool",
        "role:text", "explanation:jsonb"), conflict_free=True),
    "events": TableSpec("events", _cols(
        "ts:timestamptz", "kind:text", "source:text", "asset:text", "message:text", "detail:jsonb")),
    "dead_letters": TableSpec("dead_letters", _cols(
        "ts:timestamptz", "source:text", "tag:text", "reason:text", "detail:text", "payload:bytea")),
}
_REQUIRED: dict[str, frozenset[str]] = {
    "samples": frozenset({"ts", "recv_ts", "tag", "quality", "source"}),
    "features": frozenset({"window_start", "window_end", "asset", "n_samples", "good_fraction"}),
    "insights": frozenset({"insight_id", "ts", "asset", "model", "model_version", "model_sha256", "threshold",
                           "severity", "window_start", "window_end"}),
    "events": frozenset({"ts", "kind", "source", "message"}),
    "dead_letters": frozenset({"ts", "source", "reason"}),
}
_FEATURE_KEYS = frozenset(f.name for f in FEATURE_KEY_FIELDS)
def features_json(batch: pa.RecordBatch) -> pa.Array:
    """The feature columns of a features batch (all but the window keys) as one JSON object per row."""
    names = [n for n in batch.schema.names if n not in _FEATURE_KEYS]
    if not names:
        return pa.array(["{}"] * batch.num_rows, type=pa.string())
    cols = [batch.column(n).to_pylist() for n in names]
    rows = [orjson.dumps(dict(zip(names, vals, strict=True))).decode() for vals in zip(*cols, strict=True)]
    return pa.array(rows, type=pa.string())


def table_columns(kind: str, batch: pa.RecordBatch) -> tuple[TableSpec, list[tuple[pa.Array | None, str]]]:
    """The table for ``kind`` and, per table column, the batch's Arrow column (None: NULL) and PG type."""
    spec = TABLES.get(kind)
    if spec is None:
        raise HistorianWriteError(f"unknown batch kind {kind!r} (expected one of {', '.join(TABLES)})")
    names = set(batch.schema.names)
    missing = sorted(_REQUIRED[kind] - names)
    if missing:
        raise HistorianWriteError(f"{kind} batch lacks required column(s) {', '.join(missing)}")
    out: list[tuple[pa.Array | None, str]] = []
    for col in spec.columns:
        if kind == "features" and col.name == "features":
            out.append((features_json(batch), "jsonb"))
            continue
        src = col.source or col.name
        out.append((batch.column(src) if src in names else None, col.pg_type))
    return spec, out
