"""Operator feedback on an insight (ack, true fault, false alarm), and with a false alarm, optionally, the
suppression of its repeats (the TUI's other write, lifting a suppression, is ``lift_suppression`` in
``lifecycle_source.py``).

Written through ``record_operator_feedback()`` (migration 0030) and ``record_alarm_suppression()``
(migration 0045), two of the three functions ``edge_reader`` may execute (the third,
``lift_alarm_suppression()``, since 0046): each checks its input, stamps server time and the calling role,
writes its row, and a trigger writes the audit event in the same transaction. A label and its suppression
commit together or not at all.
"""

from __future__ import annotations

import getpass
import os
from typing import Any

import psycopg

from tui.models import Feedback, FeedbackAction

MAX_COMMENT = 2000
MAX_SUPPRESS_HOURS = 720.0  # what record_alarm_suppression() accepts


def default_operator() -> str:
    """Who is at the keyboard: ``$USER``, else the login name, else "operator"."""
    user = os.environ.get("USER") or os.environ.get("LOGNAME")
    if user:
        return user
    try:
        return getpass.getuser()
    except Exception:
        return "operator"


def validate(fb: Feedback) -> Feedback:
    """The feedback, checked and trimmed; ValueError on what the table would refuse."""
    who = fb.who.strip()
    if not who or len(who) > 200:
        raise ValueError("operator name must be 1 to 200 characters")
    if not fb.insight_id:
        raise ValueError("no insight selected")
    action = FeedbackAction(fb.action)
    comment = fb.comment.strip()[:MAX_COMMENT]
    hours = fb.suppress_hours
    if hours is not None:
        if action is not FeedbackAction.FALSE_ALARM:
            raise ValueError("only a false alarm can suppress repeats")
        if not 0 < hours <= MAX_SUPPRESS_HOURS:
            raise ValueError(f"suppress repeats for more than 0 and at most {MAX_SUPPRESS_HOURS:g} h")
    return Feedback(fb.insight_id, action, who, comment, fb.asset, hours)


def parse_hours(text: str) -> float | None:
    """The dialog's "suppress repeats for N h": empty is none; ValueError on anything but a number."""
    text = text.strip().lower().removesuffix("h").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"not a number of hours: {text!r}") from None


async def insert_feedback(conn: psycopg.AsyncConnection[Any], fb: Feedback) -> int:
    """Store the feedback (and its suppression, if asked); returns the feedback's id. The time is the
    server's, the asset the insight's."""
    fb = validate(fb)
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT record_operator_feedback(%s, %s, %s, %s)",
            (fb.insight_id, fb.who, fb.action.value, fb.comment),
        )
        row = await cur.fetchone()
        fid = int(row[0]) if row else 0
        if fb.suppress_hours is not None:
            await conn.execute("SELECT record_alarm_suppression(%s, %s, %s, %s)",
                               (fid, fb.who, fb.suppress_hours, fb.comment))
    return fid
