"""Insights for MES on the unified namespace: topic ``<asset path>/_insights/<model>`` and a JSON payload.

The payload follows ``inference/insight.schema.json`` (JSON Schema 2020-12; example in inference/README.md).
Publishing is the delivery engineer's MQTT publisher: QoS 1, and retain=True so the latest state per equipment
and model is what a newly connected MES client receives first. Timestamps are RFC 3339 UTC with microseconds;
``score`` is null when the model produced no finite score (the insight is then gated).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from edge.core.datamodel import INSIGHTS_TOPIC_LEVEL, flag_names

SCHEMA_PATH = Path(__file__).with_name("insight.schema.json")
SCHEMA_VERSION = 1
QOS = 1
RETAIN = True


def _clean(part: str) -> str:
    """An MQTT topic level without the characters MQTT reserves (wildcards, NUL) or empty levels."""
    out = part.replace("+", "_").replace("#", "_").replace("\x00", "")
    return "/".join(p for p in out.split("/") if p)


def insight_topic(asset: str, model: str, prefix: str = "") -> str:
    """``[prefix/]<asset path>/_insights/<model>``; ``asset`` is the ISA-95 path (``site/area/.../eq``).

    The same layout as :func:`contextualize.uns.insight_topic`, which raises on a name that is not a valid UNS
    segment; this one is for publishing and never raises: reserved characters and empty levels are cleaned."""
    levels = (_clean(prefix), _clean(asset), INSIGHTS_TOPIC_LEVEL, _clean(model).replace("/", "_"))
    parts = [p for p in levels if p]
    return "/".join(parts)


def _iso(v: datetime | None) -> str | None:
    if v is None:
        return None
    if v.tzinfo is None:
        v = v.replace(tzinfo=UTC)
    return v.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def insight_document(row: dict[str, Any]) -> dict[str, Any]:

    flags = int(row["quality_flags"])
    return {
        "schema": SCHEMA_VERSION,
        "insight_id": row["insight_id"],
        "ts": _iso(row["ts"]),
        "asset": row["asset"],
        "model": {"name": row["model"], "version": row["model_version"], "sha256": row["model_sha256"]},
        "score": row["score"],
        "threshold": row["threshold"],
        "severity": row["severity"],
        "window": {"start": _iso(row["window_start"]), "end": _iso(row["window_end"])},
        "top_features": json.loads(row["top_features"] or "[]"),
        "context": json.loads(row["context"] or "{}"),
        "quality": {"flags": flags, "names": flag_names(flags), "gated": bool(row["gated"])},
        **explanation_summary(row.get("explanation")),
    }


# what MES gets of an alarm's explanation (docs/explanations.md): the summary line and, per leading feature,
# its value against the training baseline; the historian keeps the whole explanation
SUMMARY_KEYS = ("feature", "value", "unit", "baseline_mean", "baseline_sd", "deviation", "z")


def explanation_summary(text: str | None) -> dict[str, Any]:
    """``{"explanation": {"summary", "features"}}`` of a row's explanation JSON; empty when it has none."""
    if not text:
        return {}
    doc = json.loads(text)
    if not isinstance(doc, dict):
        return {}
    feats = [{k: f.get(k) for k in SUMMARY_KEYS} for f in doc.get("features", []) if isinstance(f, dict)]
    return {"explanation": {"summary": str(doc.get("summary", "")), "features": feats}}


def with_explanation(batch: pa.RecordBatch, rows: list[dict[str, Any]] | Any) -> pa.RecordBatch:
    """``batch`` (rows of ``insights`` as JSON, e.g. the outbox's) with their ``explanation`` as a JSON text
    column, when any row has one."""
    found = [row.get("explanation") for row in rows]
    if all(v is None for v in found):
        return batch
    texts = [v if v is None or isinstance(v, str) else orjson.dumps(v).decode() for v in found]
    return batch.append_column("explanation", pa.array(texts, type=pa.string()))


def insight_payloads(insights: pa.RecordBatch, prefix: str = "") -> list[tuple[str, bytes]]:
    """(topic, JSON bytes) per insight row, in row order."""
    out: list[tuple[str, bytes]] = []
    for row in insights.to_pylist():
        doc = insight_document(row)
        out.append((insight_topic(str(row["asset"]), str(row["model"]), prefix), orjson.dumps(doc)))
    return out


def load_schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    return data
