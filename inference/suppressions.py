"""Alarm suppressions from false-alarm labels (migration 0045): create one from a ``false_alarm`` feedback
row, list them, lift one. The database does the matching (a BEFORE INSERT trigger on ``insights``) and the
audit (an event per change); this module is the CLI's way in, through the same SECURITY DEFINER functions
the terminal UI calls, so server time and the calling role are stamped the same way."""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from datetime import datetime
from typing import Any

COLUMNS = ("id, created_at, who, asset::text, model::text, features, starts_at, until, comment, feedback_id, "
           "insight_id, lifted_at, lifted_by, lift_reason")


@dataclass(frozen=True)
class Suppression:
    id: int
    created_at: datetime
    who: str
    asset: str
    model: str
    features: tuple[str, ...]
    starts_at: datetime
    until: datetime
    comment: str
    feedback_id: int
    insight_id: str
    lifted_at: datetime | None
    lifted_by: str | None
    lift_reason: str | None
    suppressed: int = 0  # insights it has kept from MES

    def state(self, now: datetime) -> str:
        if self.lifted_at is not None:
            return "lifted"
        return "expired" if now >= self.until else "active"


def _who(who: str | None) -> str:
    return who or getpass.getuser()


def create(dsn: str, feedback_id: int, hours: float, *, who: str | None = None, comment: str = "",
           leading: int = 3) -> int:
    """A suppression from a false_alarm label; its id. ValueError when the database refuses it."""
    import psycopg

    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute("SELECT record_alarm_suppression(%s, %s, %s, %s, %s)",
                               (feedback_id, _who(who), hours, comment, leading)).fetchone()
    except psycopg.errors.RaiseException as exc:
        raise ValueError(str(exc).splitlines()[0]) from exc
    except (psycopg.errors.CheckViolation, psycopg.errors.ForeignKeyViolation) as exc:
        raise ValueError(str(exc).splitlines()[0]) from exc
    return int(row[0]) if row else 0


def lift(dsn: str, suppression_id: int, *, who: str | None = None, reason: str = "") -> None:
    """Lift an active suppression (audited); ValueError when there is none of that id."""
    import psycopg

    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SELECT lift_alarm_suppression(%s, %s, %s)", (suppression_id, _who(who), reason))
    except (psycopg.errors.NoDataFound, psycopg.errors.CheckViolation) as exc:
        raise ValueError(str(exc).splitlines()[0]) from exc


def _row(r: Any) -> Suppression:
    return Suppression(int(r[0]), r[1], r[2], r[3], r[4], tuple(r[5] or ()), r[6], r[7], r[8], int(r[9]),
                       r[10], r[11], r[12], r[13], int(r[14]))


def list_suppressions(dsn: str, *, asset: str | None = None,
                      include_lifted: bool = False) -> list[Suppression]:
    """Suppressions, newest first, each with how many insights it has flagged."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            f"SELECT {COLUMNS}, (SELECT count(*) FROM insights i WHERE i.suppression_id = s.id) "
            "FROM alarm_suppressions s WHERE (%(asset)s::text IS NULL OR asset LIKE %(like)s) "
            "AND (%(all)s OR lifted_at IS NULL) ORDER BY id DESC",
            {"asset": asset, "like": f"%{asset}%", "all": include_lifted},
        ).fetchall()
    return [_row(r) for r in rows]
