"""The MES context store and the historian: ``mes_context`` (the intervals) and ``mes_event_log`` (each
event once).

At start the store is loaded with the open intervals and those closed within a history window; a late event
from before that first reads the older intervals it reaches back to. After a mutation the touched rows of
``mes_context`` are rewritten from the earliest change on, in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from contextualize.mes_events import MesEvent, MesEventType, dt_to_us, us_to_dt
from contextualize.mes_store import MesContextStore
from contextualize.mes_timeline import ContextChange, Interval


def load_store(conn: Any, history_days: float = 30.0) -> MesContextStore:
    """A store with the open intervals and those that ended within ``history_days``, read from ``mes_context``
    (psycopg connection), and the ids of recent events (so redeliveries after a restart change nothing)."""
    store = MesContextStore()
    load_into(conn, store, history_days)
    return store


def load_into(conn: Any, store: MesContextStore, history_days: float = 30.0) -> int:
    """Replace what ``store`` holds with the intervals in ``mes_context`` (see :func:`load_store`); returns
    how many intervals were loaded."""
    row = conn.execute("SELECT now() - make_interval(secs => %s)", (history_days * 86400.0,)).fetchone()
    horizon = row[0]
    rows = conn.execute(
        "SELECT scope, key, value, valid_from, valid_to, coalesce(source_event, '') FROM mes_context "
        "WHERE valid_to IS NULL OR valid_to >= %s",
        (horizon,),
    ).fetchall()
    store.load((_interval(r) for r in rows), horizon=dt_to_us(horizon))
    for eid, h in conn.execute(
        "SELECT event_id, content_hash FROM mes_event_log WHERE ts >= now() - make_interval(secs => %s)",
        (history_days * 86400.0,),
    ).fetchall():
        store.remember_event(eid, h)
    return len(rows)


def _interval(r: Sequence[Any]) -> Interval:
    return Interval(r[0], r[1], r[2], dt_to_us(r[3]), None if r[4] is None else dt_to_us(r[4]), r[5])


def ensure_history(conn: Any, store: MesContextStore, since_us: int) -> int:
    """Make sure the store holds every interval that ends at or after ``since_us`` (a late event older than
    the history loaded at start), reading the missing ones from ``mes_context``. Returns how many."""
    horizon = store.horizon
    if horizon is None or since_us >= horizon:
        return 0
    rows = conn.execute(
        "SELECT scope, key, value, valid_from, valid_to, coalesce(source_event, '') FROM mes_context "
        "WHERE valid_to IS NOT NULL AND valid_to >= %s AND valid_to < %s",
        (us_to_dt(since_us), us_to_dt(horizon)),
    ).fetchall()
    store.add_history((_interval(r) for r in rows), since_us)
    return len(rows)


def history_needed(conn: Any, ev: MesEvent) -> int:
    """How far back an event reaches: its time, or for a correction the first start of its work order."""
    if ev.type is not MesEventType.CORRECTION:
        return ev.ts_us
    row = conn.execute(
        "SELECT min(valid_from) FROM mes_context WHERE scope = %s AND key = 'work_order' AND value = %s",
        (ev.scope, ev.work_order),
    ).fetchone()
    return ev.ts_us if row is None or row[0] is None else min(ev.ts_us, dt_to_us(row[0]))


def persist(conn: Any, store: MesContextStore, changes: Sequence[ContextChange]) -> int:
    """Rewrite the rows of ``mes_context`` that ``changes`` touched (in the caller's transaction)."""
    lows: dict[tuple[str, str], int] = {}
    for c in changes:
        sk = (c.scope, c.key)
        lows[sk] = min(lows.get(sk, c.start), c.start)
    written = 0
    for (scope, key), lo in lows.items():
        ivs = store.intervals(scope, key, since=lo)
        since = min([lo, *(iv.valid_from for iv in ivs)])
        conn.execute(
            "DELETE FROM mes_context WHERE scope = %s AND key = %s AND (valid_to IS NULL OR valid_to >= %s)",
            (scope, key, us_to_dt(since)),
        )
        if ivs:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO mes_context (scope, key, value, valid_from, valid_to, recorded_at, "
                    "source_event) VALUES (%s, %s, %s, %s, %s, now(), %s)",
                    [
                        (
                            iv.scope,
                            iv.key,
                            iv.value,
                            us_to_dt(iv.valid_from),
                            None if iv.valid_to is None else us_to_dt(iv.valid_to),
                            iv.event_id or None,
                        )
                        for iv in ivs
                    ],
                )
            written += len(ivs)
    return written


def log_event(conn: Any, ev: MesEvent, source: str) -> None:
    """Keep the decoded event (idempotency across restarts, and the trail of what the MES said)."""
    conn.execute(
        "INSERT INTO mes_event_log (event_id, ts, scope, type, content_hash, body, source) "
        "VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s) ON CONFLICT (event_id) DO UPDATE SET ts = excluded.ts, "
        "scope = excluded.scope, type = excluded.type, content_hash = excluded.content_hash, "
        "body = excluded.body, received_at = now(), source = excluded.source",
        (
            ev.event_id,
            ev.ts,
            ev.scope,
            str(ev.type),
            ev.content_hash(),
            orjson.dumps(ev.to_json()).decode(),
            source,
        ),
    )
