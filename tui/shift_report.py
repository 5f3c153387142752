"""The shift report of one line and day (optionally one shift): alarms, how engineers labelled them, the
false-alarm rate, the equipment with most alarms, and the MES context changes. Built from the historian by
:func:`shift_report` on an async connection; ``edge report shift`` and the TUI's report screen both use it,
and :mod:`tui.report_render` writes it as Markdown or HTML.

The line is a line name (``line2``) or an ISA-95 path; its equipment are the assets under it. The day is a
UTC date. A shift is the MES context's ``shift`` value: the alarms counted are those whose context snapshot
names that shift.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import psycopg

from tui.alarm_models import ContextChange, EquipmentTally, ShiftReport
from tui.historian_rows import has_relation

TOP_EQUIPMENT = 10
LINE_MATCH = "(starts_with(i.asset, %(line)s || '/') OR strpos(i.asset, '/' || %(line)s || '/') > 0)"


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start, start + timedelta(days=1)


async def shift_report(
    conn: psycopg.AsyncConnection[Any], line: str, day: date, shift: str | None = None
) -> ShiftReport:
    lo, hi = day_bounds(day)
    line = line.strip("/")
    p = {"line": line, "lo": lo, "hi": hi, "shift": shift}
    cur = await conn.execute(
        f"""WITH raised AS (
                SELECT i.insight_id, i.ts, i.asset::text AS asset, i.model::text AS model,
                       lower(i.severity) AS sev,
                       lag(lower(i.severity)) OVER (PARTITION BY i.asset, i.model ORDER BY i.ts) AS prev,
                       i.context
                FROM insights i
                WHERE {LINE_MATCH} AND i.ts >= %(lo)s - interval '1 hour' AND i.ts < %(hi)s)
            SELECT r.asset, r.sev, r.prev, f.action
            FROM raised r
            LEFT JOIN LATERAL (SELECT fb.action FROM operator_feedback fb WHERE fb.insight_id = r.insight_id
                               ORDER BY fb.ts DESC, fb.id DESC LIMIT 1) f ON true
            WHERE r.ts >= %(lo)s AND r.sev IN ('warning', 'alarm')
              AND (%(shift)s::text IS NULL OR r.context->>'shift' = %(shift)s::text)""",
        p,
    )
    alarms = episodes = warnings = 0
    labels = {"true_fault": 0, "false_alarm": 0, "ack": 0, "none": 0}
    per: dict[str, list[int]] = {}
    for asset, sev, prev, action in await cur.fetchall():
        if sev == "warning":
            warnings += 1
            continue
        alarms += 1
        first = prev != "alarm"
        episodes += first
        key = action if action in labels else "none"
        labels[key] += 1
        t = per.setdefault(asset, [0, 0, 0, 0, 0])
        t[0] += 1
        t[1] += first
        t[2] += key == "true_fault"
        t[3] += key == "false_alarm"
        t[4] += key == "none"
    tallies = sorted((EquipmentTally(a, *v) for a, v in per.items()), key=lambda t: (-t.alarms, t.asset))
    return ShiftReport(await line_path(conn, line), day, shift, lo, hi, alarms, episodes, warnings, labels,
                       tuple(tallies[:TOP_EQUIPMENT]), await context_changes(conn, p))


async def line_path(conn: psycopg.AsyncConnection[Any], line: str) -> str:
    """The ISA-95 path of ``line`` (a name such as ``line2`` or a path), from an asset under it; the name
    itself when the historian has none."""
    cur = await conn.execute(
        f"SELECT i.asset::text FROM insights i WHERE {LINE_MATCH} LIMIT 1", {"line": line})
    row = await cur.fetchone()
    if row is None:
        return line
    asset = str(row[0])
    if asset.startswith(line + "/"):
        return line
    return asset[: asset.index("/" + line + "/") + len(line) + 1]


async def context_changes(conn: psycopg.AsyncConnection[Any], p: dict[str, Any]) -> tuple[ContextChange, ...]:
    """MES context changes of the day on the line, its equipment, or the scopes above it (a site-wide
    shift change), each with the value it replaced."""
    if not await has_relation(conn, "mes_context"):
        return ()
    full = await line_path(conn, p["line"])
    cur = await conn.execute(
        """SELECT m.valid_from, m.scope, m.key, m.value,
                  (SELECT m2.value FROM mes_context m2 WHERE m2.scope = m.scope AND m2.key = m.key
                     AND m2.valid_from < m.valid_from ORDER BY m2.valid_from DESC LIMIT 1)
           FROM mes_context m
           WHERE m.valid_from >= %(lo)s AND m.valid_from < %(hi)s
             AND (m.scope = %(full)s OR starts_with(m.scope, %(full)s || '/')
                  OR starts_with(%(full)s, m.scope || '/'))
           ORDER BY m.valid_from, m.scope, m.key""",
        {**p, "full": full},
    )
    rows = await cur.fetchall()
    return tuple(ContextChange(ts, scope, key, value, prev) for ts, scope, key, value, prev in rows)
