"""The one data model every stage speaks: Arrow schemas of samples, features, insights and events.

Like Telegraf's single ``Metric`` type, these schemas let any input meet any output. Timestamps are
microseconds in UTC. Strings that repeat (tags, assets, context keys) are dictionary columns.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")
DICT_STR = pa.dictionary(pa.int32(), pa.string())


class Quality(enum.IntEnum):
    """OPC-UA status class of a sample (the top two bits of a StatusCode)."""

    GOOD = 0
    UNCERTAIN = 1
    BAD = 2


class QualityFlag(enum.IntFlag):
    """Soft data-quality findings that travel with a sample (hard ones go to dead letters)."""

    NONE = 0
    OUT_OF_RANGE = 1
    STUCK = 2
    SPIKE = 4
    STALE = 8
    LATE = 16
    COERCED = 32
    UNMAPPED = 64
    UNCERTAIN_SOURCE = 128


# The unified namespace level under an equipment where its insights and events are published.
INSIGHTS_TOPIC_LEVEL = "_insights"
EVENTS_TOPIC_LEVEL = "_events"

# Window-level flag bits, above the per-sample QualityFlag bits.
WINDOW_LOW_COVERAGE = 1 << 16
WINDOW_BAD_SAMPLES = 1 << 17
WINDOW_MISSING_FEATURE = 1 << 18  # a feature the model needs is missing in this window (filled 0, gated)
WINDOW_UNSEEN_REGIME = 1 << 19  # the window's regime (product) has no statistics in the model: global ones


def flag_names(flags: int) -> list[str]:
    names = [f.name for f in QualityFlag if f.value and int(flags) & f.value and f.name]
    for bit, name in (
        (WINDOW_LOW_COVERAGE, "LOW_COVERAGE"),
        (WINDOW_BAD_SAMPLES, "BAD_SAMPLES"),
        (WINDOW_MISSING_FEATURE, "MISSING_FEATURE"),
        (WINDOW_UNSEEN_REGIME, "UNSEEN_REGIME"),
    ):
        if int(flags) & bit:
            names.append(name)
    return names


SAMPLE_FIELDS: list[pa.Field] = [
    pa.field("ts", TS, nullable=False),
    pa.field("recv_ts", TS, nullable=False),
    pa.field("tag", DICT_STR, nullable=False),
    pa.field("value", pa.float64()),
    pa.field("quality", pa.int16(), nullable=False),
    pa.field("flags", pa.int32(), nullable=False),
    pa.field("source", DICT_STR, nullable=False),
]
SAMPLES = pa.schema(SAMPLE_FIELDS)

CONTEXT_FIELDS: list[pa.Field] = [
    pa.field("asset", DICT_STR),
    pa.field("measure", DICT_STR),
    pa.field("unit", DICT_STR),
    pa.field("work_order", DICT_STR),
    pa.field("product", DICT_STR),
    pa.field("batch", DICT_STR),
    pa.field("shift", DICT_STR),
]
CONTEXT_COLUMNS = [f.name for f in CONTEXT_FIELDS]
CONTEXTUALIZED_SAMPLES = pa.schema(SAMPLE_FIELDS + CONTEXT_FIELDS)

# Feature columns are model specific; a features batch carries them as a map-free wide block after these.
FEATURE_KEY_FIELDS: list[pa.Field] = [
    pa.field("window_start", TS, nullable=False),
    pa.field("window_end", TS, nullable=False),
    pa.field("asset", DICT_STR, nullable=False),
    pa.field("n_samples", pa.int32(), nullable=False),
    pa.field("good_fraction", pa.float64(), nullable=False),
    pa.field("flags", pa.int32(), nullable=False),
]


def features_schema(feature_names: Sequence[str]) -> pa.Schema:
    """Schema of a features batch: window keys, then one float64 column per feature in order."""
    return pa.schema(FEATURE_KEY_FIELDS + [pa.field(n, pa.float64()) for n in feature_names])


INSIGHTS = pa.schema(
    [
        pa.field("insight_id", pa.string(), nullable=False),
        pa.field("ts", TS, nullable=False),
        pa.field("asset", DICT_STR, nullable=False),
        pa.field("model", DICT_STR, nullable=False),
        pa.field("model_version", DICT_STR, nullable=False),
        pa.field("model_sha256", DICT_STR, nullable=False),
        pa.field("score", pa.float64()),
        pa.field("threshold", pa.float64(), nullable=False),
        pa.field("severity", DICT_STR, nullable=False),
        pa.field("window_start", TS, nullable=False),
        pa.field("window_end", TS, nullable=False),
        pa.field("top_features", pa.string()),  # JSON list of {"feature", "contribution"}
        pa.field("context", pa.string()),  # JSON snapshot of the MES context at window_end
        pa.field("quality_flags", pa.int32(), nullable=False),
        pa.field("gated", pa.bool_(), nullable=False),
    ]
)


class EventKind(enum.StrEnum):
    DATA_QUALITY = "data_quality"
    CONNECTION = "connection"
    MES_CONTEXT = "mes_context"
    DRIFT = "drift"
    OPERATOR = "operator"
    AUDIT = "audit"
    SUPERVISOR = "supervisor"
    SPOOL = "spool"
    RUNTIME = "runtime"
    DATA_LOSS = "data_loss"


EVENTS = pa.schema(
    [
        pa.field("ts", TS, nullable=False),
        pa.field("kind", DICT_STR, nullable=False),
        pa.field("source", DICT_STR, nullable=False),
        pa.field("asset", DICT_STR),
        pa.field("message", pa.string(), nullable=False),
        pa.field("detail", pa.string()),  # JSON
    ]
)

DEAD_LETTERS = pa.schema(
    [
        pa.field("ts", TS, nullable=False),
        pa.field("source", DICT_STR, nullable=False),
        pa.field("tag", pa.string()),
        pa.field("reason", DICT_STR, nullable=False),
        pa.field("detail", pa.string()),
        pa.field("payload", pa.binary()),
    ]
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def empty(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([], schema=schema)


def batch_from_rows(rows: Sequence[Mapping[str, Any]], schema: pa.Schema) -> pa.RecordBatch:
    """Build a batch of ``schema`` from python rows (for tests, events and small batches; not hot paths)."""
    return pa.RecordBatch.from_pylist(list(rows), schema=schema)


def event_row(kind: str, message: str, detail: Mapping[str, Any] | None = None, *, source: str,
              asset: str | None = None, ts: datetime | int | None = None) -> dict[str, Any]:
    """One EVENTS row: ``ts`` a datetime or epoch microseconds (default now), ``detail`` stored as JSON."""
    import json

    return {"ts": utcnow() if ts is None else ts, "kind": str(kind), "source": source, "asset": asset,
            "message": message, "detail": json.dumps(dict(detail or {}), default=str)}


def events_batch(rows: Sequence[Mapping[str, Any]]) -> pa.RecordBatch:
    """EVENTS rows (from :func:`event_row`) as a batch."""
    return batch_from_rows(rows, EVENTS)


def samples_from_arrays(
    ts_us: Any,
    tags: Sequence[str] | pa.Array,
    values: Any,
    *,
    source: str,
    quality: Any = None,
    flags: Any = None,
    recv_ts_us: Any = None,
) -> pa.RecordBatch:
    """Build a samples batch from columnar arrays (numpy int64 microseconds, tag strings, float64 values)."""
    import numpy as np

    ts_arr = np.asarray(ts_us, dtype=np.int64)
    n = len(ts_arr)
    recv = np.asarray(recv_ts_us, dtype=np.int64) if recv_ts_us is not None else ts_arr
    tag_arr = tags if isinstance(tags, pa.Array) else pa.array(tags, type=pa.string())
    if not pa.types.is_dictionary(tag_arr.type):
        tag_arr = tag_arr.dictionary_encode()
    q = np.zeros(n, dtype=np.int16) if quality is None else np.asarray(quality, dtype=np.int16)
    f = np.zeros(n, dtype=np.int32) if flags is None else np.asarray(flags, dtype=np.int32)
    src = pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(n, dtype=np.int32)), pa.array([source], type=pa.string())
    )
    return pa.RecordBatch.from_arrays(
        [
            pa.array(ts_arr, type=pa.int64()).cast(TS),
            pa.array(recv, type=pa.int64()).cast(TS),
            tag_arr.cast(DICT_STR),
            pa.array(np.asarray(values, dtype=np.float64), type=pa.float64()),
            pa.array(q, type=pa.int16()),
            pa.array(f, type=pa.int32()),
            src,
        ],
        schema=SAMPLES,
    )
