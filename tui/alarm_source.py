"""One alarm explained, read in one bounded call: the insight with its stored explanation (the feature part,
computed at scoring), what happened around it (:mod:`tui.explain_context`), the similar past alarms
(:mod:`tui.similar_cases`) and its signals around the window against their training level."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg

from tui.alarm_models import AlarmDetail, ExplainedFeature, SignalTrace
from tui.data_source import QueryFailed
from tui.explain_context import around, headline
from tui.historian_rows import FEEDBACK_JOIN, INSIGHT_COLUMNS, as_json, insight_row
from tui.similar_cases import similar_cases

TRACE_POINTS = 60
MAX_TRACES = 4
MIN_SPAN = timedelta(seconds=30)


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) else None


def explained_features(doc: Any) -> tuple[ExplainedFeature, ...]:
    out: list[ExplainedFeature] = []
    for f in doc.get("features", []) if isinstance(doc, dict) else []:
        if isinstance(f, dict) and isinstance(f.get("value"), int | float):
            out.append(ExplainedFeature(
                str(f.get("feature")), str(f.get("signal") or ""), str(f.get("stat") or ""),
                float(f["value"]), f.get("unit"), _num(f.get("baseline_mean")), _num(f.get("baseline_sd")),
                _num(f.get("deviation")), _num(f.get("z")), _num(f.get("contribution"))))
    return tuple(out)


def _context(value: Any) -> dict[str, str | None]:
    data = as_json(value)
    if not isinstance(data, dict):
        return {}
    return {str(k): (None if v is None else str(v)) for k, v in data.items()}


async def load_alarm(conn: psycopg.AsyncConnection[Any], tables: set[str], insight_id: str) -> AlarmDetail:
    cur = await conn.execute(
        f"""SELECT {INSIGHT_COLUMNS}, i.window_start, i.window_end, i.explanation, i.context, i.gated
            FROM insights i {FEEDBACK_JOIN} WHERE i.insight_id = %(id)s ORDER BY i.ts DESC LIMIT 1""",
        {"id": insight_id},
    )
    row = await cur.fetchone()
    if row is None:
        raise QueryFailed(f"insight {insight_id} is not in the historian (pruned? press esc)")
    insight = insight_row(row)
    start, end, expl, ctx, gated = row[14:19]
    doc = as_json(expl) or {}
    context = _context(ctx)
    cur = await conn.execute(
        """SELECT context FROM insights WHERE asset = %(asset)s AND model = %(model)s AND ts < %(ts)s
           ORDER BY ts DESC LIMIT 1""",
        {"asset": insight.asset, "model": insight.model, "ts": insight.ts},
    )
    prev = await cur.fetchone()
    events = await around(conn, tables, asset=insight.asset, start=start, end=end, context=context,
                          previous_context=_context(prev[0]) if prev else None)
    similar = await similar_cases(conn, insight_id=insight.insight_id, ts=insight.ts, asset=insight.asset,
                                  model=insight.model, top_features=row[9])
    features = explained_features(doc)
    traces = await signal_traces(conn, insight.asset, start, end, features,
                                 doc.get("signals") if isinstance(doc, dict) else None)
    summary = str(doc.get("summary", "")) if isinstance(doc, dict) else ""
    return AlarmDetail(insight, start, end, summary, features, headline(events, end), tuple(events), similar,
                       traces, context, bool(gated))


async def signal_traces(
    conn: psycopg.AsyncConnection[Any], asset: str, start: datetime, end: datetime,
    features: tuple[ExplainedFeature, ...], levels: Any,
) -> tuple[SignalTrace, ...]:
    """Bucket averages of the equipment's signals from one window length before the window to half one after
    it; the leading features' signals first. A signal is a measure or a tag, as the model names it."""
    span = max(end - start, MIN_SPAN)
    lo, hi = start - span, end + span / 2
    bucket = (hi - lo) / TRACE_POINTS
    cur = await conn.execute(
        """SELECT tag::text, measure::text, unit::text, floor(extract(epoch FROM ts - %(lo)s) / %(b)s)::int,
                  avg(value)
           FROM samples WHERE asset = %(asset)s AND ts >= %(lo)s AND ts < %(hi)s AND value IS NOT NULL
           GROUP BY 1, 2, 3, 4 ORDER BY 4""",
        {"asset": asset, "lo": lo, "hi": hi, "b": bucket.total_seconds()},
    )
    series: dict[str, dict[int, list[float]]] = {}
    units: dict[str, str | None] = {}
    measures: set[str] = set()
    for tag, measure, unit, b, value in await cur.fetchall():
        measures.update({measure} - {None})
        for name in {tag, measure} - {None}:
            series.setdefault(name, {}).setdefault(int(b), []).append(float(value))
            units.setdefault(name, unit)
    levels = levels if isinstance(levels, dict) else {}
    # the model's own signals first, then the equipment's other measures (tags where it has none)
    order = [f.signal for f in features] + sorted(levels) + sorted(measures or series)
    out: list[SignalTrace] = []
    for name in dict.fromkeys(order):
        if name not in series or len(out) >= MAX_TRACES:
            continue
        buckets = sorted(series[name].items())
        level = levels.get(name) if isinstance(levels.get(name), dict) else {}
        out.append(SignalTrace(
            name, units.get(name) or (level.get("unit") if level else None),
            tuple(lo + bucket * (b + 0.5) for b, _ in buckets),
            tuple(sum(v) / len(v) for _, v in buckets),
            _num(level.get("mean")) if level else None, _num(level.get("sd")) if level else None))
    return tuple(out)
