"""Reads of an equipment's own history from the historian, for the promotion gate, retraining and the
shadow comparison: samples with their MES context, and the engineers' labels (``operator_feedback`` on
insights, migration 0030) as labelled periods."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from edge.core.datamodel import CONTEXT_COLUMNS, CONTEXTUALIZED_SAMPLES, DICT_STR

LABEL_ACTIONS = ("true_fault", "false_alarm")


@dataclass(frozen=True)
class LabelledPeriod:
    asset: str
    start_us: int
    end_us: int
    action: str  # true_fault or false_alarm


def _us(t: datetime) -> int:
    return int(t.timestamp() * 1_000_000)


def _dict(values: Sequence[Any]) -> pa.Array:
    return pa.array(values, type=pa.string()).dictionary_encode().cast(DICT_STR)


def read_samples(dsn: str, assets: Sequence[str], since: datetime, until: datetime) -> pa.RecordBatch:
    """Samples of ``assets`` in [since, until) as one CONTEXTUALIZED_SAMPLES batch, in time order."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT ts, recv_ts, tag::text, value, quality, flags, source::text, asset::text, measure::text, "
            "unit::text, work_order::text, product::text, batch::text, shift::text FROM samples "
            "WHERE asset = ANY(%s) AND ts >= %s AND ts < %s ORDER BY ts",
            (list(assets), since, until),
        ).fetchall()
    if not rows:
        raise ValueError(
            f"no samples of {', '.join(assets)} between {since.isoformat()} and {until.isoformat()} in the "
            "historian (check --asset, --since and --until: edge historian status shows what is stored)"
        )
    cols = list(zip(*rows, strict=True))
    ts = pa.array(np.fromiter((_us(t) for t in cols[0]), dtype=np.int64, count=len(rows)))
    recv = pa.array(np.fromiter((_us(t) for t in cols[1]), dtype=np.int64, count=len(rows)))
    arrays: list[pa.Array] = [
        ts.cast(CONTEXTUALIZED_SAMPLES.field("ts").type),
        recv.cast(CONTEXTUALIZED_SAMPLES.field("recv_ts").type),
        _dict(cols[2]),
        pa.array(cols[3], type=pa.float64()),
        pa.array(cols[4], type=pa.int16()),
        pa.array(cols[5], type=pa.int32()),
        _dict(cols[6]),
    ]
    arrays += [_dict(cols[7 + i]) for i in range(len(CONTEXT_COLUMNS))]
    return pa.RecordBatch.from_arrays(arrays, schema=CONTEXTUALIZED_SAMPLES)


def read_labels(dsn: str, assets: Sequence[str], since: datetime, until: datetime) -> list[LabelledPeriod]:
    """The windows of labelled insights of ``assets`` overlapping [since, until): each insight's latest
    true_fault or false_alarm label (an ack is no label)."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT DISTINCT ON (f.insight_id) i.asset::text, i.window_start, i.window_end, f.action "
            "FROM operator_feedback f JOIN insights i ON i.insight_id = f.insight_id "
            "WHERE i.asset = ANY(%s) AND i.window_end > %s AND i.window_start < %s AND f.action = ANY(%s) "
            "ORDER BY f.insight_id, f.ts DESC",
            (list(assets), since, until, list(LABEL_ACTIONS)),
        ).fetchall()
    return sorted(
        (LabelledPeriod(a, _us(s), _us(e), act) for a, s, e, act in rows),
        key=lambda p: (p.asset, p.start_us),
    )


def count_labels(dsn: str, assets: Sequence[str], action: str, since: datetime | None) -> int:
    """How many ``action`` labels engineers gave on insights of ``assets`` whose window ended at or after
    ``since`` (None: all). Insight time, not the label's wall-clock time: the same clock as a replay's."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM operator_feedback f JOIN insights i ON i.insight_id = f.insight_id "
            "WHERE i.asset = ANY(%s) AND f.action = %s AND (%s::timestamptz IS NULL OR i.window_end >= %s)",
            (list(assets), action, since, since),
        ).fetchone()
    return int(row[0]) if row else 0
