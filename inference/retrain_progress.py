"""Retraining progress in the historian (``model_retrains``, migration 0047): a run is recorded ``running``
before its child starts and ``done`` or ``failed`` after, so ``edge models list`` and the TUI's models
screen (which reads only the historian, as ``edge_reader``) show a retrain while it runs and how it ended,
whoever started it (the command or the lifecycle manager).

``inference.retrain.retrain`` wraps its work in ``tracked``. Recording is best effort: a historian that
cannot take the row does not stop a retrain (the registry's audit log still has the result).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

COLUMNS = ("run_id", "state", "model", "scope", "trigger", "who", "based_on", "since", "until", "windows",
           "version", "seconds", "error")
LATEST_KEYS = ("run_id", "model", "scope", "trigger", "who", "started", "state", "updated", "since", "until",
               "windows", "version", "based_on", "seconds", "error")
LATEST_SQL = f"SELECT {', '.join(LATEST_KEYS)} FROM model_retrains_latest ORDER BY started DESC LIMIT %s"


def record(dsn: str, **row: Any) -> None:
    """One state row (keys from ``COLUMNS``); logged, not raised, when the historian refuses it."""
    import psycopg

    cols = [c for c in COLUMNS if row.get(c) is not None]
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
            marks = ", ".join(["%s"] * len(cols))
            conn.execute(f"INSERT INTO model_retrains ({', '.join(cols)}) VALUES ({marks})",
                         [row[c] for c in cols])
    except psycopg.Error as exc:
        log.warning("retraining progress not recorded in the historian: %s", exc)


def tracked(dsn: str, run: Callable[[], T], *, model: str, scope: str, trigger: str, who: str | None,
            based_on: str | None, now: datetime, lookback_s: float,
            result: Callable[[T], dict[str, Any]]) -> T:
    """``run()`` recorded as one retraining run: running, then done (``result(value)`` gives the columns
    windows, version, seconds) or failed (the exception's message; the exception goes on)."""
    base = {"run_id": uuid.uuid4().hex, "model": model, "scope": scope, "trigger": trigger, "who": who,
            "based_on": based_on, "since": now - timedelta(seconds=lookback_s), "until": now}
    record(dsn, state="running", **base)
    try:
        value = run()
    except Exception as exc:
        record(dsn, state="failed", error=str(exc)[:2000], **base)
        raise
    record(dsn, state="done", **base, **result(value))
    return value


def latest(dsn: str, limit: int = 5) -> list[dict[str, Any]]:
    """The newest runs in their latest state; [] when the historian has no ``model_retrains`` yet."""
    import psycopg

    with psycopg.connect(dsn, connect_timeout=5) as conn:
        row = conn.execute("SELECT to_regclass('model_retrains_latest') IS NOT NULL").fetchone()
        if not (row and row[0]):
            return []
        return [dict(zip(LATEST_KEYS, r, strict=True)) for r in conn.execute(LATEST_SQL, (limit,)).fetchall()]


def line(r: dict[str, Any]) -> str:
    """One run as a line of ``edge models list``."""
    out = (f"{r['model']} ({r['scope']}, {r['trigger']}) {r['state']} since "
           f"{r['started']:%Y-%m-%d %H:%M:%S}")
    if r.get("since") is not None and r.get("until") is not None:
        out += f", lookback {r['since']:%Y-%m-%d %H:%M} .. {r['until']:%Y-%m-%d %H:%M}"
    if r["state"] == "done":
        out += f": v{r['version']} from {r['windows']} windows in {r['seconds']} s, now the challenger"
    elif r["state"] == "failed":
        out += f": {r['error']}"
    return out
