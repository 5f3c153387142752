"""The models screen's lifecycle reads: engineers' labels per model and equipment, active suppressions, and
a shadow run's champion against its challenger (the figures of ``edge models compare``).

A mixin of :class:`tui.historian_source.HistorianSource`: each read is one bounded call (``self._run``).
The comparison is computed in SQL here because the TUI may not import ``inference``; it follows
``inference.compare`` (windows paired by equipment and window start, gated pairs left out, a fault window
overlaps an insight whose latest label is ``true_fault``) and a test holds the two to the same numbers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import psycopg

T = TypeVar("T")


@dataclass(frozen=True)
class LabelCounts:
    true_faults: int = 0
    false_alarms: int = 0
    acks: int = 0
    suppressions: int = 0  # active now


@dataclass(frozen=True)
class RoleFigures:
    windows: int
    alarm_rate: float | None
    precision: float | None
    recall: float | None


@dataclass(frozen=True)
class CompareBlock:
    windows: int
    agreement: float | None
    champion: RoleFigures
    challenger: RoleFigures


@dataclass(frozen=True)
class CompareView:
    model: str
    since: datetime
    until: datetime
    champion_version: str | None
    challenger_version: str | None
    paired_windows: int
    true_fault_periods: int
    total: CompareBlock | None
    by_asset: tuple[tuple[str, CompareBlock], ...] = ()


LABELS_SQL = """
WITH latest AS (
    SELECT DISTINCT ON (f.insight_id) f.insight_id, f.action FROM operator_feedback f
    WHERE f.action IN ('true_fault', 'false_alarm') ORDER BY f.insight_id, f.ts DESC
), acked AS (
    SELECT DISTINCT f.insight_id, 'ack'::text AS action FROM operator_feedback f WHERE f.action = 'ack'
), labelled AS (SELECT * FROM latest UNION ALL SELECT * FROM acked)
SELECT i.asset, i.model, l.action, count(*) FROM labelled l
JOIN LATERAL (SELECT asset::text AS asset, model::text AS model, ts FROM insights
              WHERE insight_id = l.insight_id ORDER BY ts DESC LIMIT 1) i ON true
WHERE i.ts <= %(now)s
GROUP BY 1, 2, 3
"""

SUPPRESSIONS_SQL = """
SELECT asset::text, model::text, count(*) FROM alarm_suppressions
WHERE lifted_at IS NULL AND until > %(now)s AND starts_at <= %(now)s GROUP BY 1, 2
"""

COMPARE_SQL = """
WITH r AS (
    SELECT coalesce(role, 'champion') AS role, model_version::text AS version, asset::text AS asset,
           window_start, window_end, severity = 'alarm' AS alarm, gated
    FROM insights WHERE model = %(model)s AND ts >= %(since)s AND ts < %(until)s
), pairs AS (
    SELECT c.asset, c.window_start, c.window_end, c.alarm AS ca, h.alarm AS ha, NOT (c.gated OR h.gated) AS ok
    FROM r c JOIN r h ON h.asset = c.asset AND h.window_start = c.window_start AND h.role = 'challenger'
    WHERE c.role = 'champion'
), faults AS (
    SELECT * FROM (
        SELECT DISTINCT ON (f.insight_id) i.asset::text AS asset, i.window_start AS s, i.window_end AS e,
               f.action
        FROM operator_feedback f JOIN insights i ON i.insight_id = f.insight_id
        WHERE i.asset IN (SELECT asset FROM r) AND i.window_end > %(since)s AND i.window_start < %(until)s
          AND f.action IN ('true_fault', 'false_alarm')
        ORDER BY f.insight_id, f.ts DESC) latest_label
    WHERE action = 'true_fault'
), p AS (
    SELECT pairs.*, EXISTS (SELECT 1 FROM faults WHERE faults.asset = pairs.asset
                            AND pairs.window_start < faults.e AND pairs.window_end > faults.s) AS fault
    FROM pairs
)
SELECT asset, count(*), count(*) FILTER (WHERE ok), count(*) FILTER (WHERE ok AND ca = ha),
       count(*) FILTER (WHERE ok AND ca), count(*) FILTER (WHERE ok AND ca AND fault),
       count(*) FILTER (WHERE ok AND ha), count(*) FILTER (WHERE ok AND ha AND fault),
       count(*) FILTER (WHERE ok AND fault),
       (SELECT string_agg(DISTINCT version, ', ' ORDER BY version) FROM r WHERE role = 'champion'),
       (SELECT string_agg(DISTINCT version, ', ' ORDER BY version) FROM r WHERE role = 'challenger'),
       (SELECT count(*) FROM faults)
FROM p GROUP BY asset ORDER BY asset
"""

VERSIONS_SQL = """
SELECT coalesce(role, 'champion'), string_agg(DISTINCT model_version::text, ', ' ORDER BY model_version::text)
FROM insights WHERE model = %(model)s AND ts >= %(since)s AND ts < %(until)s GROUP BY 1
"""


def _ratio(n: int, d: int) -> float | None:
    return None if d == 0 else n / d


def block(counts: tuple[int, ...]) -> CompareBlock:
    """From (windows, agree, champion alarms, of them faults, challenger alarms, of them faults, faults)."""
    n, agree, c_alarm, c_hit, h_alarm, h_hit, fault = counts
    return CompareBlock(
        n, _ratio(agree, n),
        RoleFigures(n, _ratio(c_alarm, n), _ratio(c_hit, c_alarm), _ratio(c_hit, fault)),
        RoleFigures(n, _ratio(h_alarm, n), _ratio(h_hit, h_alarm), _ratio(h_hit, fault)),
    )


class LifecycleReads:
    """Mixed into ``HistorianSource``, which provides the bounded ``_run``."""

    _run: Callable[..., Awaitable[Any]]

    async def label_counts(self, now: datetime) -> dict[tuple[str, str], LabelCounts]:
        """Per (equipment, model): insights up to ``now`` (insight time, the screen's clock) whose latest
        label is a true fault or a false alarm, acked insights, and the suppressions active at ``now``."""

        async def q(conn: psycopg.AsyncConnection[Any]) -> dict[tuple[str, str], LabelCounts]:
            acc: dict[tuple[str, str], dict[str, int]] = {}
            cur = await conn.execute(LABELS_SQL, {"now": now})
            for asset, model, action, n in await cur.fetchall():
                acc.setdefault((asset, model), {})[action] = int(n)
            cur = await conn.execute("SELECT to_regclass('alarm_suppressions') IS NOT NULL")
            row = await cur.fetchone()
            if row and row[0]:
                cur = await conn.execute(SUPPRESSIONS_SQL, {"now": now})
                for asset, model, n in await cur.fetchall():
                    acc.setdefault((asset, model), {})["suppressions"] = int(n)
            return {k: LabelCounts(v.get("true_fault", 0), v.get("false_alarm", 0), v.get("ack", 0),
                                   v.get("suppressions", 0)) for k, v in acc.items()}

        result: dict[tuple[str, str], LabelCounts] = await self._run(q)
        return result

    async def model_compare(self, model: str, since: datetime, until: datetime) -> CompareView:
        """Champion against challenger of ``model`` over [since, until), total and per equipment."""

        async def q(conn: psycopg.AsyncConnection[Any]) -> CompareView:
            args = {"model": model, "since": since, "until": until}
            cur = await conn.execute(COMPARE_SQL, args)
            rows = await cur.fetchall()
            if not rows:
                cur = await conn.execute(VERSIONS_SQL, args)
                versions = dict(await cur.fetchall())
                return CompareView(model, since, until, versions.get("champion"), versions.get("challenger"),
                                   0, 0, None)
            per = [(r[0], tuple(int(x) for x in r[2:9])) for r in rows]
            total = tuple(sum(c[i] for _, c in per) for i in range(7))
            return CompareView(model, since, until, rows[0][9], rows[0][10], sum(int(r[1]) for r in rows),
                               int(rows[0][11]), block(total), tuple((a, block(c)) for a, c in per))

        result: CompareView = await self._run(q)
        return result
