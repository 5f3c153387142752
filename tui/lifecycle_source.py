"""The models screen's lifecycle reads: engineers' labels per model and equipment, the active suppressions
(and lifting one), retraining runs, and a shadow run's champion against its challenger.

A mixin of :class:`tui.historian_source.HistorianSource`: each read is one bounded call (``self._run``).
The comparison is ``edge models compare``'s own code: the app hands in ``inference.compare.compare`` as a
:data:`tui.compare_view.Comparer` (``use_comparer``; the TUI may not import ``inference``), run in a worker
thread on the reader's DSN and bounded in time like every read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import psycopg

from tui.compare_view import Comparer, CompareView, from_result, nothing
from tui.data_source import Unavailable
from tui.historian_rows import has_relation
from tui.models import LabelCounts, RetrainRow, SuppressionRow

T = TypeVar("T")


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

ACTIVE_SQL = """
SELECT s.id, s.asset::text, s.model::text, s.features, s.starts_at, s.until, s.who, s.comment,
       (SELECT count(*) FROM insights i WHERE i.suppression_id = s.id)
FROM alarm_suppressions s
WHERE s.lifted_at IS NULL AND s.until > %(now)s AND s.starts_at <= %(now)s ORDER BY s.id DESC
"""

RETRAINS_SQL = """
SELECT run_id, model, scope, trigger, who, started, state, updated, since, until, windows, version, based_on,
       seconds, error
FROM model_retrains_latest WHERE started <= %(now)s ORDER BY started DESC LIMIT %(limit)s
"""


class LifecycleReads:
    """Mixed into ``HistorianSource``, which provides the bounded ``_run``."""

    _run: Callable[..., Awaitable[Any]]
    dsn: str
    comparer: Comparer | None = None
    compare_timeout_s: float = 30.0

    def use_comparer(self, comparer: Comparer, timeout_s: float = 30.0) -> None:
        """Compare with ``comparer`` (the app passes ``inference.compare.compare``)."""
        self.comparer, self.compare_timeout_s = comparer, timeout_s

    async def label_counts(self, now: datetime) -> dict[tuple[str, str], LabelCounts]:
        """Per (equipment, model): insights up to ``now`` (insight time, the screen's clock) whose latest
        label is a true fault or a false alarm, acked insights, and the suppressions active at ``now``."""

        async def q(conn: psycopg.AsyncConnection[Any]) -> dict[tuple[str, str], LabelCounts]:
            acc: dict[tuple[str, str], dict[str, int]] = {}
            cur = await conn.execute(LABELS_SQL, {"now": now})
            for asset, model, action, n in await cur.fetchall():
                acc.setdefault((asset, model), {})[action] = int(n)
            if await has_relation(conn, "alarm_suppressions"):
                cur = await conn.execute(SUPPRESSIONS_SQL, {"now": now})
                for asset, model, n in await cur.fetchall():
                    acc.setdefault((asset, model), {})["suppressions"] = int(n)
            return {k: LabelCounts(v.get("true_fault", 0), v.get("false_alarm", 0), v.get("ack", 0),
                                   v.get("suppressions", 0)) for k, v in acc.items()}

        result: dict[tuple[str, str], LabelCounts] = await self._run(q)
        return result


    async def active_suppressions(self, now: datetime) -> list[SuppressionRow]:
        """Suppressions active at ``now``, newest first, with how many insights each has kept from MES."""

        async def q(conn: psycopg.AsyncConnection[Any]) -> list[SuppressionRow]:
            if not await has_relation(conn, "alarm_suppressions"):
                return []
            cur = await conn.execute(ACTIVE_SQL, {"now": now})
            return [SuppressionRow(int(r[0]), r[1], r[2], tuple(r[3] or ()), r[4], r[5], r[6], r[7] or "",
                                   int(r[8])) for r in await cur.fetchall()]

        result: list[SuppressionRow] = await self._run(q)
        return result

    async def lift_suppression(self, suppression_id: int, who: str, reason: str) -> None:
        """Lift through ``lift_alarm_suppression()`` (0045, the reader may since 0046), as ``edge models
        suppress lift`` does: server time, who and why are stamped and audited by the database."""

        async def q(conn: psycopg.AsyncConnection[Any]) -> None:
            async with conn.transaction():
                await conn.execute("SELECT lift_alarm_suppression(%s, %s, %s)", (suppression_id, who, reason))

        await self._run(q)

    async def retrains(self, now: datetime, limit: int = 5) -> list[RetrainRow]:
        """The newest retraining runs started up to ``now``, each in its latest state."""

        async def q(conn: psycopg.AsyncConnection[Any]) -> list[RetrainRow]:
            if not await has_relation(conn, "model_retrains_latest"):
                return []
            cur = await conn.execute(RETRAINS_SQL, {"now": now, "limit": limit})
            return [RetrainRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
                               None if r[10] is None else int(r[10]), r[11], r[12],
                               None if r[13] is None else float(r[13]), r[14]) for r in await cur.fetchall()]

        result: list[RetrainRow] = await self._run(q)
        return result

    async def model_compare(self, model: str, since: datetime, until: datetime) -> CompareView:
        """Champion against challenger of ``model`` over [since, until), as ``edge models compare``."""
        if self.comparer is None:
            return nothing(model, since, until, "no comparison here: `edge tui` wires `edge models compare`")
        try:
            res = await asyncio.wait_for(asyncio.to_thread(self.comparer, self.dsn, model, since, until),
                                         self.compare_timeout_s)
        except ValueError as exc:
            return nothing(model, since, until, str(exc))
        except TimeoutError:
            why = f"the comparison took longer than {self.compare_timeout_s:g} s"
            return nothing(model, since, until, why)
        except psycopg.Error as exc:
            raise Unavailable(f"compare: {exc}") from exc
        return from_result(model, since, until, res)
