"""What else happened on an alarm's equipment and its line in the window and just before it, read from the
historian when the alarm is looked at: MES context changes (product, batch, work order, shift),
data-quality events and gated windows, connection gaps (events, and holes in the samples), alarms on
neighbouring equipment of the line. ``headline`` says first what the alarm follows (a product change, a data
gap): the likeliest reason for an alarm that is not a fault."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg

from edge.core.datamodel import flag_names
from tui.alarm_models import AroundEvent
from tui.historian_rows import connection_state
from tui.widgets.fmt import clock

LOOKBACK = timedelta(minutes=10)  # "just before": a product change 10 minutes ago still shapes the window
SAMPLE_GAP = timedelta(seconds=5)  # no sample of the equipment for longer than this is a gap
CONTEXT_KEYS = ("product", "batch", "work_order", "shift")
GAP_KINDS = frozenset({"gap", "data_loss"})


def line_of(asset: str) -> str:
    """The line of an ISA-95 equipment path: its parent, or the parent's parent under a cell level."""
    parent = asset.rsplit("/", 1)[0] if "/" in asset else asset
    if parent.rsplit("/", 1)[-1].startswith("cell") and "/" in parent:
        parent = parent.rsplit("/", 1)[0]
    return parent


async def around(
    conn: psycopg.AsyncConnection[Any], tables: set[str], *, asset: str, start: datetime, end: datetime,
    context: dict[str, str | None], previous_context: dict[str, str | None] | None,
) -> list[AroundEvent]:
    """Everything the views say about the stretch [start - LOOKBACK, end], oldest first."""
    lo, line = start - LOOKBACK, line_of(asset)
    p = {"asset": asset, "line": line, "lo": lo, "hi": end}
    out: list[AroundEvent] = []
    seen_keys: set[str] = set()
    if "mes_context" in tables:
        cur = await conn.execute(
            """SELECT m.valid_from, m.scope, m.key, m.value,
                      (SELECT m2.value FROM mes_context m2 WHERE m2.scope = m.scope AND m2.key = m.key
                         AND m2.valid_from < m.valid_from ORDER BY m2.valid_from DESC LIMIT 1)
               FROM mes_context m
               WHERE m.valid_from > %(lo)s AND m.valid_from <= %(hi)s
                 AND (m.scope = %(asset)s OR starts_with(%(asset)s, m.scope || '/') OR m.scope = %(line)s
                      OR starts_with(m.scope, %(line)s || '/'))
               ORDER BY m.valid_from""", p)
        for ts, scope, key, value, prev in await cur.fetchall():
            seen_keys.add(key)
            where = "" if scope in (asset, line) or asset.startswith(scope + "/") else f" on {scope}"
            out.append(AroundEvent(ts, "mes", f"{key} {prev or '?'} → {value}{where}", scope))
    if previous_context is not None:  # the context snapshot changed between this model's windows
        for key in CONTEXT_KEYS:
            old, new = previous_context.get(key), context.get(key)
            if key not in seen_keys and old != new and (old or new):
                out.append(AroundEvent(start, "mes", f"{key} {old or '?'} → {new or '?'}", asset))
    cur = await conn.execute(
        """SELECT ts, kind::text, source::text, asset::text, message FROM events
           WHERE ts > %(lo)s AND ts <= %(hi)s
             AND kind IN ('data_quality', 'data_loss', 'connection', 'mes_context')
             AND (asset IS NULL OR asset = %(asset)s OR starts_with(asset, %(line)s || '/'))
           ORDER BY ts""", p)
    for ts, kind, source, ev_asset, message in await cur.fetchall():
        if kind == "connection":
            kind = "gap" if connection_state(message, {}) == "down" else "connection"
        elif kind == "mes_context":
            kind = "mes"
        out.append(AroundEvent(ts, kind, f"{source}: {message}", ev_asset))
    cur = await conn.execute(
        """SELECT ts, quality_flags FROM insights WHERE asset = %(asset)s AND gated
             AND ts > %(lo)s AND ts <= %(hi)s ORDER BY ts""", p)
    for ts, flags in await cur.fetchall():
        names = ", ".join(flag_names(int(flags or 0))) or "bad data"
        out.append(AroundEvent(ts, "gated", f"window held back (gated): {names}", asset))
    cur = await conn.execute(
        """SELECT t, gap FROM (SELECT ts AS t, ts - lag(ts) OVER (ORDER BY ts) AS gap
                               FROM (SELECT DISTINCT ts FROM samples
                                     WHERE asset = %(asset)s AND ts > %(lo)s AND ts <= %(hi)s) d) g
           WHERE gap > %(gap)s ORDER BY t""", {**p, "gap": SAMPLE_GAP})
    for ts, gap in await cur.fetchall():
        out.append(AroundEvent(ts, "gap", f"no samples for {gap.total_seconds():.0f} s (until {clock(ts)})",
                               asset))
    cur = await conn.execute(
        """SELECT asset::text, min(ts), count(*) FROM insights
           WHERE starts_with(asset, %(line)s || '/') AND asset <> %(asset)s AND lower(severity) = 'alarm'
             AND ts > %(lo)s AND ts <= %(hi)s GROUP BY 1 ORDER BY 2""", p)
    for other, first, n in await cur.fetchall():
        name = other.rsplit("/", 1)[-1]
        out.append(AroundEvent(first, "neighbour", f"alarm on {name} ({n} windows)", other))
    out.sort(key=lambda e: e.ts)
    return out


def headline(events: list[AroundEvent], end: datetime) -> tuple[str, ...]:
    """What the alarm follows, said first: the latest product change, then the latest data gap."""
    lines: list[str] = []
    product = [e for e in events if e.kind == "mes" and e.text.startswith("product ")]
    if product:
        e = product[-1]
        lines.append(f"follows a product change: {e.text.removeprefix('product ')} at {clock(e.ts)} "
                     f"({_before(end, e.ts)} before the window ended)")
    gaps = [e for e in events if e.kind in GAP_KINDS or e.kind == "data_quality"]
    if gaps:
        e = gaps[-1]
        lines.append(f"follows a data gap: {e.text} at {clock(e.ts)} ({_before(end, e.ts)} before the window "
                     "ended)")
    return tuple(lines)


def _before(end: datetime, ts: datetime) -> str:
    s = max(0.0, (end - ts).total_seconds())
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min"
