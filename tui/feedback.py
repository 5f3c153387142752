"""The only writes the terminal UI makes: operator feedback on an insight (ack, true fault, false alarm).

Written through ``record_operator_feedback()`` (migration 0030), the one thing ``edge_reader`` may execute:
it checks the insight, stamps server time and the calling role, inserts into ``operator_feedback``, and a
trigger writes the audit event (events kind ``operator``) in the same transaction.
"""

from __future__ import annotations

import getpass
import os
from typing import Any

import psycopg

from tui.models import Feedback, FeedbackAction

MAX_COMMENT = 2000


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
    return Feedback(fb.insight_id, action, who, comment, fb.asset)


async def insert_feedback(conn: psycopg.AsyncConnection[Any], fb: Feedback) -> int:
    """Store the feedback; returns its id. The time is the server's, the asset the insight's."""
    fb = validate(fb)
    cur = await conn.execute(
        "SELECT record_operator_feedback(%s, %s, %s, %s)",
        (fb.insight_id, fb.who, fb.action.value, fb.comment),
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0
