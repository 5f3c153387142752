"""Relabel what the historian already holds when MES context changes for a range (a late or corrected event).

For each :class:`~contextualize.mes_timeline.ContextChange` (scope, key, [start, end), old -> new) the rows of
``samples`` (by ``ts``) and ``insights`` (by ``window_end``) whose asset lies under that scope and whose
stored value differs from the store's effective value are updated, and only those. Where a more specific
scope under the changed one sets the key itself, its assets are relabelled by their own effective value
(equipment overrides line). Insights that change get ``revised = true`` and ``revision + 1`` (once per
transaction, however many keys change). Each change is recorded as an ``audit`` event: what changed, from
what to what, over which range, and how many rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from contextualize.mes_events import JOIN_KEYS, us_to_dt
from contextualize.mes_store import MesContextStore
from contextualize.mes_timeline import ContextChange
from edge.core.datamodel import EventKind

_SCOPE_SQL = "(asset = %(g)s OR starts_with(asset, %(g)s || '/'))"


@dataclass
class RelabelReport:
    samples: int = 0
    insights: int = 0
    changes: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class HistorianColumns:
    """What the historian tables look like here (found once per connection)."""

    samples: frozenset[str]
    insights: frozenset[str]
    insights_context_type: str | None  # "jsonb", "json", "text" or None (no context column)

    @classmethod
    def probe(cls, conn: Any) -> HistorianColumns:
        rows = conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name IN ('samples', 'insights')"
        ).fetchall()
        samples = frozenset(r[1] for r in rows if r[0] == "samples")
        insights = frozenset(r[1] for r in rows if r[0] == "insights")
        ctx = next((r[2] for r in rows if r[0] == "insights" and r[1] == "context"), None)
        return cls(samples, insights, ctx)


def _groups(store: MesContextStore, scope: str, key: str) -> list[tuple[str, list[str]]]:
    """The changed scope and every more specific scope under it that sets ``key`` itself, each with the
    scopes under it to leave out (they are relabelled by their own group)."""
    subs = [s for s in store.scopes(key) if s.startswith(scope + "/")]
    out = []
    for g in [scope, *subs]:
        out.append((g, [s for s in subs if s.startswith(g + "/")]))
    return out


def relabel(
    conn: Any,
    store: MesContextStore,
    changes: Sequence[ContextChange],
    *,
    source: str = "mes",
    columns: HistorianColumns | None = None,
    audit: bool = True,
) -> RelabelReport:
    """Apply ``changes`` to stored samples and insights in the caller's transaction; returns row counts."""
    cols = columns or HistorianColumns.probe(conn)
    report = RelabelReport()
    for ch in changes:
        if ch.key not in JOIN_KEYS:
            continue
        n_samples = n_insights = 0
        for g, excluded in _groups(store, ch.scope, ch.key):
            for a, b, value in store.effective_segments(g, ch.key, ch.start, ch.end):
                params: dict[str, Any] = {
                    "g": g,
                    "a": us_to_dt(a),
                    "b": None if b is None else us_to_dt(b),
                    "v": value,
                    "k": ch.key,
                }
                where_ex = ""
                for n, ex in enumerate(excluded):
                    params[f"x{n}"] = ex
                    where_ex += f" AND asset <> %(x{n})s AND NOT starts_with(asset, %(x{n})s || '/')"
                if ch.key in cols.samples and "ts" in cols.samples:
                    n_samples += _update_samples(conn, ch.key, where_ex, params)
                if cols.insights:
                    n_insights += _update_insights(conn, cols, ch.key, where_ex, params)
        report.samples += n_samples
        report.insights += n_insights
        detail = {**ch.as_dict(), "samples_updated": n_samples, "insights_updated": n_insights}
        report.changes.append(detail)
        if audit and (n_samples or n_insights):
            record_event(
                conn,
                EventKind.AUDIT,
                source,
                ch.scope,
                f"{ch.key} {ch.old!r} -> {ch.new!r} from {detail['valid_from']}"
                f"{' to ' + detail['valid_to'] if detail['valid_to'] else ' on'}: "
                f"{n_samples} samples, {n_insights} insights relabelled",
                detail,
            )
    return report


def _time_sql(col: str, params: dict[str, Any]) -> str:
    return f"{col} >= %(a)s" + ("" if params["b"] is None else f" AND {col} < %(b)s")


def _update_samples(conn: Any, key: str, where_ex: str, params: dict[str, Any]) -> int:
    sql = (
        f"UPDATE samples SET {key} = %(v)s WHERE {_SCOPE_SQL}{where_ex} AND {_time_sql('ts', params)} "
        f"AND {key} IS DISTINCT FROM %(v)s"
    )
    return int(conn.execute(sql, params).rowcount)


def _update_insights(
    conn: Any, cols: HistorianColumns, key: str, where_ex: str, params: dict[str, Any]
) -> int:
    t_col = "window_end" if "window_end" in cols.insights else "ts"
    sets, differs = [], []
    if key in cols.insights:
        sets.append(f"{key} = %(v)s")
        differs.append(f"{key} IS DISTINCT FROM %(v)s")
    if cols.insights_context_type is not None:
        cast = "" if cols.insights_context_type == "jsonb" else f"::{cols.insights_context_type}"
        sets.append(
            "context = jsonb_set(coalesce(context::jsonb, '{}'::jsonb), ARRAY[%(k)s], "
            f"coalesce(to_jsonb(%(v)s::text), 'null'::jsonb)){cast}"
        )
        differs.append("(context::jsonb ->> %(k)s) IS DISTINCT FROM %(v)s")
    if not sets:
        return 0
    if "revised" in cols.insights:
        sets.append("revised = true")
    if "revision" in cols.insights:  # once per transaction, however many keys of the row change
        sets.append(
            "revision = CASE WHEN insights.xmin = pg_current_xact_id()::xid "
            "THEN insights.revision ELSE coalesce(insights.revision, 0) + 1 END"
        )
    sql = (
        f"UPDATE insights SET {', '.join(sets)} WHERE {_SCOPE_SQL}{where_ex} "
        f"AND {_time_sql(t_col, params)} AND ({' OR '.join(differs)})"
    )
    return int(conn.execute(sql, params).rowcount)


def record_event(
    conn: Any, kind: str, source: str, asset: str | None, message: str, detail: dict[str, Any]
) -> None:
    """One row in the historian's ``events`` table (kind ``audit``, ``mes_context``...)."""
    conn.execute(
        "INSERT INTO events (ts, kind, source, asset, message, detail) VALUES (now(), %s, %s, %s, %s, %s)",
        (str(kind), source, asset, message, orjson.dumps(detail).decode()),
    )
